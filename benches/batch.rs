//! `subrt batch` against the loops a harness would write without it,
//! measured in the same run:
//!
//! - local batches of `true` at 1,000 and 10,000 submissions (`-j 4`, the
//!   store on disk) against the namespace floor, `seq N | xargs -P 4 -I{}
//!   unshare -p -f sh -c true`: the ratio at each size, and how the time
//!   per submission grows from one size to the next (sizes from
//!   `SUBRT_BENCH_BATCH_SIZES`, comma-separated);
//! - 1,000 local submissions of `true` (`-j 1`), the store on disk and in
//!   tmpfs: subrt's own cost per submission (wall time less the commands'
//!   own, from `--json`) against a shell loop of `subrt run -- true`
//!   (process start included) on the same store;
//! - 100 Docker submissions of `true` with `-j 4` against `xargs -P 4` of
//!   `docker run --rm IMAGE true` (needs the daemon; builds the test image).

#[path = "../tests/common/docker.rs"]
#[allow(dead_code)]
mod test_image;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_batch(dir: &Path, n: usize, environment: &str) -> std::path::PathBuf {
    let mut text = format!("environment = \"{environment}\"\n");
    for i in 0..n {
        text +=
            &format!("[[submissions]]\nid = \"s{i}\"\nworkdir = \".\"\ncommands = [\"true\"]\n");
    }
    let path = dir.join(format!("batch-{environment}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn subrt(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_subrt"));
    cmd.arg("--config")
        .arg(dir.join("config.toml"))
        .current_dir(dir);
    cmd
}

/// A fresh store folder in `/dev/shm`, where there is one.
fn shm_store() -> Option<std::path::PathBuf> {
    let shm = Path::new("/dev/shm");
    shm.is_dir()
        .then(|| shm.join(format!("subrt-bench-{}", std::process::id())))
}

/// `subrt batch -j 1` of `file` on `store`: seconds per submission in all,
/// and less the commands' own time (their `elapsed` in `--json`).
fn local_batch(dir: &Path, file: &Path, store: &Path, n: usize) -> (f64, f64) {
    let started = Instant::now();
    let out = subrt(dir)
        .env("SUBRT_STORE", store)
        .args(["batch", "-j", "1", "--json"])
        .arg(file)
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let commands: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["elapsed"].as_f64())
        .sum();
    (wall / n as f64, (wall - commands) / n as f64)
}

/// A shell loop's worth of `subrt run -- true` on `store`: seconds each.
fn local_loop(dir: &Path, store: &Path, n: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        let status = subrt(dir)
            .env("SUBRT_STORE", store)
            .args(["run", "--", "true"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    started.elapsed().as_secs_f64() / n as f64
}

/// Runs `command` to its end: whether it succeeded, and its largest
/// resident size in MiB.
// It is reaped by `wait4`, which std's `wait` does not give the rusage of.
#[allow(clippy::zombie_processes)]
fn status_and_rss(command: &mut Command) -> (bool, f64) {
    let child = command.spawn().unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 of our own child fills both.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    assert_eq!(
        unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) },
        pid
    );
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, usage.ru_maxrss as f64 / 1024.0)
}

/// Batches of growing size against the namespace floor of the same size.
fn flat_batches(dir: &Path) {
    let sizes: Vec<usize> = std::env::var("SUBRT_BENCH_BATCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("SUBRT_BENCH_BATCH_SIZES: numbers"))
        .collect();
    let mut first: Option<(usize, f64)> = None;
    for n in sizes {
        let file = write_batch(dir, n, "local");
        let store = dir.join(format!("store-{n}"));
        let started = Instant::now();
        let (ok, rss) = status_and_rss(
            subrt(dir)
                .env("SUBRT_STORE", &store)
                .args(["batch", "-j", "4"])
                .arg(&file)
                .stdout(Stdio::null()),
        );
        let batch = started.elapsed().as_secs_f64() / n as f64;
        assert!(ok);
        let started = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "seq {n} | xargs -P 4 -I{{}} unshare -p -f sh -c true"
            ))
            .status()
            .unwrap();
        let floor = started.elapsed().as_secs_f64() / n as f64;
        assert!(status.success());
        let growth = first.map_or(String::new(), |(m, per)| {
            format!("; per submission {:.2}x that at {m}", batch / per)
        });
        println!(
            "{n} local submissions of `true`, -j 4, store on disk: {:.3} ms each \
             (subrt's largest size {rss:.0} MiB); floor `xargs -P 4 unshare -p -f`: \
             {:.3} ms each; ratio {:.2}{growth}",
            batch * 1e3,
            floor * 1e3,
            batch / floor,
        );
        first.get_or_insert((n, batch));
        let _ = std::fs::remove_dir_all(&store);
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let image = test_image::test_image();
    let mut config = "[[environments]]\nname = \"local\"\ntype = \"local\"\n".to_owned();
    if let Some(image) = image {
        config += &format!(
            "[[environments]]\nname = \"docker\"\ntype = \"docker\"\ndocker = {{ image = \"{image}\" }}\n"
        );
    }
    std::fs::write(dir.path().join("config.toml"), config).unwrap();

    flat_batches(dir.path());

    let n = 1000;
    let file = write_batch(dir.path(), n, "local");
    // The store on the disk, as a user has it, and in memory: creating a
    // run's folder and files is the filesystem's work, and on ext4 it swings
    // with how many files were deleted lately (its allocator skips recently
    // freed inodes), so the second shows what is subrt's own.
    let stores = [
        ("on disk", Some(dir.path().join("store"))),
        ("in tmpfs", shm_store()),
    ];
    for (place, store) in stores.iter().filter_map(|(p, s)| Some((p, s.as_ref()?))) {
        let (wall, own) = local_batch(dir.path(), &file, store, n);
        let looped = local_loop(dir.path(), store, n);
        println!(
            "{n} local submissions of `true`, -j 1, store {place}: {:.2} ms each in all, \
             subrt's own {:.2} ms; shell loop of `subrt run`: {:.2} ms each; ratio {:.2}",
            wall * 1e3,
            own * 1e3,
            looped * 1e3,
            looped / wall
        );
        let _ = std::fs::remove_dir_all(store);
    }

    let Some(image) = image else {
        println!("no Docker daemon: the Docker half is skipped");
        return;
    };
    let n = 100;
    let file = write_batch(dir.path(), n, "docker");
    let started = Instant::now();
    let out = subrt(dir.path())
        .args(["batch", "-j", "4"])
        .arg(&file)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let batch: Duration = started.elapsed();
    assert!(out.success());
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "seq {n} | xargs -P 4 -I{{}} docker run --rm {image} true"
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let xargs = started.elapsed();
    println!(
        "{n} Docker submissions of `true`, -j 4: {:.2} s; xargs -P 4 docker run --rm: {:.2} s; ratio {:.2}",
        batch.as_secs_f64(),
        xargs.as_secs_f64(),
        xargs.as_secs_f64() / batch.as_secs_f64()
    );
}
