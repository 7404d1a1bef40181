//! Reading a huge run log stays within bounded memory. Alone in its binary
//! so that the child RSS it reads is the export's.

use std::process::{Command, Stdio};

/// Runs `cmd`, waits for it and returns (success, peak RSS in bytes).
#[allow(clippy::zombie_processes, reason = "wait4 below reaps the child")]
fn run_measured(cmd: &mut Command) -> (bool, u64) {
    let child = cmd.stdout(Stdio::null()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn exporting_from_a_gigabyte_log_stays_under_100_mb() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[[environments]]\nname = \"local\"\ntype = \"local\"\n",
    )
    .unwrap();
    let subrt = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_subrt"));
        cmd.current_dir(dir.path());
        cmd
    };
    // A GB of output, then a line to look for at the very end.
    let (ok, _) =
        run_measured(subrt().args(["run", "--", "head -c 1000M /dev/zero; echo the-end"]));
    assert!(ok);
    let log = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::metadata(log.join("stdout")).unwrap().len(),
        (1000 << 20) + 8,
        "the log holds every byte (under the 1 GiB bound)"
    );

    let out = dir.path().join("stdout.bin");
    let (ok, peak) = run_measured(
        subrt()
            .args(["export", "last", "--format", "stdout", "-o"])
            .arg(&out),
    );
    assert!(ok);
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        (1000 << 20) + "the-end\n".len() as u64
    );
    let mut tail = std::fs::File::open(&out).unwrap();
    std::io::Seek::seek(&mut tail, std::io::SeekFrom::End(-8)).unwrap();
    let mut last = String::new();
    std::io::Read::read_to_string(&mut tail, &mut last).unwrap();
    assert_eq!(last, "the-end\n");
    assert!(
        peak < 100_000_000,
        "export peaked at {} MB",
        peak / 1_000_000
    );

    let (ok, peak) = run_measured(subrt().args(["ls"]));
    assert!(ok);
    assert!(peak < 100_000_000, "ls peaked at {} MB", peak / 1_000_000);
}
