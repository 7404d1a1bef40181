//! Nothing of a submission outlives its session, whatever ends subrt: the
//! real binary, real signals, real processes. Local runtime (Docker's are
//! in `docker_cli.rs`).

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{escapes, eventually, live_processes, subrt};

/// `subrt run -- LINE`, its stdout piped, once it printed `started`.
fn start(line: &str) -> Child {
    let mut child = subrt()
        .args(["run", "--", line])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"started\n");
    // The double fork finishes after `started`.
    std::thread::sleep(Duration::from_millis(200));
    child
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: signalling a child we own.
    unsafe { libc::kill(child.id() as i32, signal) };
}

fn assert_all_gone(needles: &[String], after: &str) {
    for needle in needles {
        assert!(
            eventually(Duration::from_secs(2), || live_processes(needle).is_empty()),
            "`{needle}` survived {after}: {:?}",
            live_processes(needle)
        );
    }
}

fn assert_all_alive(needles: &[String]) {
    for needle in needles {
        assert!(
            live_processes(needle)
                .iter()
                .any(|c| c.starts_with("sleep")),
            "`{needle}` is not running before the test's blow"
        );
    }
}

#[test]
fn sigkill_of_subrt_run_leaves_nothing() {
    let (line, needles) = escapes(false);
    let mut child = start(&line);
    assert_all_alive(&needles);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_all_gone(&needles, "a SIGKILL of subrt run");
}

#[test]
fn terminating_signals_end_the_run_with_128_plus_n_and_leave_nothing() {
    for (sig, code) in [
        (libc::SIGTERM, 143),
        (libc::SIGINT, 130),
        (libc::SIGHUP, 129),
    ] {
        let (line, needles) = escapes(false);
        let child = start(&line);
        assert_all_alive(&needles);
        let sent = Instant::now();
        signal(&child, sig);
        let status = child.wait_with_output().unwrap().status;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{:?}",
            sent.elapsed()
        );
        assert_eq!(status.code(), Some(code), "signal {sig}: {status:?}");
        assert_all_gone(&needles, &format!("signal {sig}"));
    }
}

#[test]
fn a_signal_at_any_moment_ends_the_run_within_a_second() {
    // From before the session exists to the middle of the command.
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80, 160] {
        let n = common::unique_sleep();
        let child = subrt()
            .args(["run", "--", &format!("sleep {n}; echo late")])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let sent = Instant::now();
        signal(&child, libc::SIGINT);
        let out = child.wait_with_output().unwrap();
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "SIGINT after {delay_ms} ms took {:?}",
            sent.elapsed()
        );
        // Before the handlers exist the default action kills subrt (no
        // status code); after, subrt exits 130.
        assert!(
            matches!(out.status.code(), Some(130) | None),
            "SIGINT after {delay_ms} ms: {:?}",
            out.status
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("late"));
        assert!(
            common::gone(&format!("sleep {n}")),
            "sleep {n} left after {delay_ms} ms"
        );
    }
}

#[test]
fn the_process_group_fallback_says_so_and_is_weaker() {
    let project = common::Project::with_config(
        "[[environments]]\nname = \"weak\"\ntype = \"local\"\n\
         local = { containment = \"process-group\" }\n",
    );
    let n = common::unique_sleep();
    let out = project.run(&["run", "--", &format!("setsid sleep {n} >/dev/null 2>&1 &")]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("containment: process-group"), "{stderr}");
    // What the namespace prevents: the setsid sleep survived its session.
    let survivors = live_processes(&format!("sleep {n}"));
    let _ = Command::new("pkill")
        .args(["-f", &format!("sleep {n}")])
        .status();
    assert!(!survivors.is_empty(), "setsid escapes process groups");

    let specs = project.run(&["specs"]);
    let listing = String::from_utf8_lossy(&specs.stdout);
    assert!(listing.contains("process-group"), "{listing}");
}

#[test]
fn specs_and_the_run_log_say_which_containment_applies() {
    let specs = subrt().arg("specs").output().unwrap();
    let listing = String::from_utf8_lossy(&specs.stdout);
    // SAFETY: geteuid has no preconditions.
    let expected = if unsafe { libc::geteuid() } == 0 {
        "pid-namespace"
    } else {
        "process-group"
    };
    assert!(listing.contains(expected), "{listing}");

    let project =
        common::Project::with_config("[[environments]]\nname = \"local\"\ntype = \"local\"\n");
    assert!(project.run(&["run", "--", "true"]).status.success());
    let ls = project.run(&["ls", "--json"]);
    let run: serde_json::Value =
        serde_json::from_slice(ls.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(run["containment"], expected, "{run}");
}

#[test]
fn the_dashboard_without_a_terminal_says_so_in_one_line() {
    let out = Command::new("setsid")
        .arg(env!("CARGO_BIN_EXE_subrt"))
        .current_dir(std::env::temp_dir())
        .env(
            "XDG_STATE_HOME",
            std::env::temp_dir().join("subrt-test-state"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("terminal") && stderr.contains("subrt ls") && stderr.contains("subrt run"),
        "{stderr}"
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let project =
        common::Project::with_config("[[environments]]\nname = \"local\"\ntype = \"local\"\n");
    for _ in 0..3 {
        assert!(project.run(&["run", "--", "echo hi"]).status.success());
    }
    for args in [
        &["ls"][..],
        &["specs"],
        &["ls", "--json"],
        &["export", "last", "--format", "stdout"],
    ] {
        let mut child = project
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader went away, as `| head -c0`
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(matches!(out.status.code(), Some(0)), "{args:?}: {out:?}");
    }
}
