//! `subrt run` and `subrt specs` on the real binary.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{live_processes, random_bytes, subrt, unique_sleep};

fn run(args: &[&str]) -> std::process::Output {
    subrt().args(args).output().unwrap()
}

#[test]
fn a_timeout_exits_124_and_leaves_no_process() {
    let n = unique_sleep();
    let started = Instant::now();
    let out = run(&[
        "run",
        "--timeout",
        "1",
        "--",
        &format!("sh -c 'sleep {n} & wait'"),
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        live_processes(&format!("sleep {n}")).is_empty(),
        "a sleep survived"
    );
}

#[test]
fn a_million_random_bytes_come_out_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(1_000_000, 0x5eed);
    let file = dir.path().join("random.bin");
    std::fs::write(&file, &data).unwrap();
    let out = run(&["run", "--", "cat", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout == data,
        "stdout differs from the file ({} bytes)",
        out.stdout.len()
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn odd_bytes_and_split_characters_pass_through_both_streams() {
    let command = r"printf 'a\377\000b'; printf '\342\202' >&2; sleep 0.1; printf '\254' >&2";
    let out = run(&["run", "--", command]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"a\xff\0b");
    assert_eq!(out.stderr, "€".as_bytes());
}

#[test]
fn exit_statuses_are_the_commands() {
    assert_eq!(run(&["run", "--", "exit 3"]).status.code(), Some(3));
    assert_eq!(
        run(&["run", "--", "kill -KILL $$"]).status.code(),
        Some(137)
    );
    assert_eq!(run(&["run", "--", "true"]).status.code(), Some(0));
}

#[test]
fn stdin_comes_from_a_file_or_from_subrt_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input");
    std::fs::write(&file, "from file\n").unwrap();
    let out = run(&["run", "--stdin", file.to_str().unwrap(), "--", "cat"]);
    assert_eq!(out.stdout, b"from file\n");

    let mut child = subrt()
        .args(["run", "--stdin", "-", "--", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"PIPED\n");

    // Without --stdin the command reads EOF, not subrt's own stdin.
    let out = subrt()
        .args(["run", "--timeout", "5", "--", "cat; echo eof"])
        .stdin(Stdio::piped()) // kept open: reading it would hang
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"eof\n");
}

#[test]
fn json_prints_the_result() {
    let out = run(&[
        "run",
        "--json",
        "--",
        r"printf 'ok'; printf '\377' >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run_id"].as_str().map(str::len), Some(26), "a ULID: {v}");
    assert_eq!(v["exit_code"], 4);
    assert_eq!(v["stdout_bytes"], 2);
    assert_eq!(v["stderr_bytes"], 1);
    assert_eq!(v["killed"], false);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["stdout"]["text"], "ok");
    assert_eq!(v["stderr"]["base64"], "/w==");
    assert_eq!(v["stderr"]["bytes"], 1);
    assert_eq!(v["timed_out"], false);
    assert!(v["elapsed"].as_f64().unwrap() > 0.0);
}

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn setup_and_eval_commands_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
default_environment = "py"
[[environments]]
name = "py"
type = "local"
setup = { commands = ["echo setup"], eval_commands = ["echo eval-setup"] }
"#,
    );
    let config = config.to_str().unwrap();
    let out = run(&["--config", config, "run", "--", "echo cmd"]);
    assert_eq!(out.stdout, b"setup\ncmd\n");
    let out = run(&["--config", config, "run", "--eval", "--", "echo cmd"]);
    assert_eq!(out.stdout, b"setup\neval-setup\ncmd\n");
    let out = run(&["--config", config, "run", "--no-setup", "--", "echo cmd"]);
    assert_eq!(out.stdout, b"cmd\n");
}

#[test]
fn a_failing_setup_says_which_command_failed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[environments]]\nname = \"l\"\ntype = \"local\"\nsetup = { commands = [\"exit 5\"] }\n",
    );
    let out = run(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        "--",
        "echo never",
    ]);
    assert_eq!(out.status.code(), Some(5));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`exit 5`") && stderr.contains("did not run"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_config_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[environments]]\nname = \"l\"\ntype = \"local\"\nlocal = { shel = \"/bin/sh\" }\n",
    );
    let out = run(&["--config", config.to_str().unwrap(), "run", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = format!("{}:4:11", config.display());
    assert!(stderr.contains(&at), "no {at} in {stderr}");
    assert!(stderr.contains("shel"), "{stderr}");
    assert!(
        !stderr.contains("BACKTRACE"),
        "a user error is not a crash: {stderr}"
    );
}

#[test]
fn an_unknown_runtime_type_lists_the_registered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[environments]]\nname = \"k\"\ntype = \"k8s\"\n",
    );
    let out = run(&["--config", config.to_str().unwrap(), "run", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`k8s`") && stderr.contains("local"),
        "{stderr}"
    );
    let specs = run(&["--config", config.to_str().unwrap(), "specs"]);
    let listing = String::from_utf8_lossy(&specs.stdout);
    assert!(
        listing.contains("k8s") && listing.contains("unavailable"),
        "{listing}"
    );
}

#[test]
fn a_missing_working_dir_is_named() {
    let out = run(&["run", "--workdir", "/no/such/workspace", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/no/such/workspace") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn specs_lists_the_shipped_environments() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let out = run(&["--config", shipped, "specs"]);
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8_lossy(&out.stdout);
    let local = listing
        .lines()
        .find(|l| l.starts_with("local "))
        .expect("a local environment");
    assert!(local.contains("ready"), "{listing}");
    // Each environment's isolation, and plainly what isolating nothing means.
    assert!(local.contains(" none "), "{listing}");
    let sandbox = listing
        .lines()
        .find(|l| l.starts_with("sandbox "))
        .expect("the shipped sandboxed environment");
    assert!(sandbox.contains(" sandbox "), "{listing}");
    assert!(
        listing.contains("limits of sandbox: memory 512m, pids 256"),
        "{listing}"
    );
    assert!(
        listing.contains("isolation none (local): commands read and write whatever"),
        "{listing}"
    );
}

#[test]
fn sigterm_kills_the_command_and_exits_143() {
    let n = unique_sleep();
    let child = subrt()
        .args(["run", "--", &format!("sleep {n}")])
        .spawn()
        .unwrap();
    // The sleep itself, not subrt, whose arguments contain the same words:
    // subrt must have started the command, so its handlers are in place.
    let started = || {
        live_processes(&format!("sleep {n}"))
            .iter()
            .any(|c| c.starts_with("sleep"))
    };
    assert!(common::eventually(Duration::from_secs(2), started));
    // SAFETY: signalling a child we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(common::gone(&format!("sleep {n}")));
}

#[test]
fn without_a_config_runs_are_stored_in_the_user_state_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = subrt()
        .current_dir(cwd.path())
        .env("XDG_STATE_HOME", state.path())
        .args(["run", "--", "echo stored"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        !cwd.path().join("runs").exists(),
        "littered the current directory"
    );
    let runs: Vec<_> = std::fs::read_dir(state.path().join("subrt/runs"))
        .unwrap()
        .collect();
    assert_eq!(runs.len(), 1);
}

#[test]
fn several_words_are_an_argv_and_one_word_is_a_command_line() {
    let out = run(&[
        "run", "--no-log", "--", "printf", "%s|", "a b", "it's", "$HOME",
    ]);
    assert_eq!(out.stdout, b"a b|it's|$HOME|", "{out:?}");
    let out = run(&["run", "--no-log", "--", "echo $((1 + 2)) && echo two"]);
    assert_eq!(out.stdout, b"3\ntwo\n");
}

#[test]
fn run_takes_variables_and_assets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.csv"), "a,b\n").unwrap();
    let out = subrt()
        .current_dir(dir.path())
        .args([
            "run",
            "--no-log",
            "--var",
            "GREETING=hi there",
            "--asset",
            "data=data.csv",
        ])
        .args(["--", "echo \"$GREETING\"; cat {{static:data}}"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hi there\na,b\n", "{out:?}");
    let bad = run(&["run", "--port", "80", "--", "true"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HOST:CONTAINER"));
}

#[test]
fn a_command_gets_no_descriptor_that_subrt_inherited() {
    use std::os::unix::process::CommandExt;
    let mut cmd = subrt();
    cmd.args([
        "run",
        "--",
        "test -e /proc/self/fd/7 && echo inherited || echo closed",
    ]);
    // As a shell's `exec 7</dev/null` would: fd 7, open across exec.
    // SAFETY: open and dup2 are async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(|| {
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if fd < 0 || libc::dup2(fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "closed\n");
}

/// `subrt run --stdin` of a file in the working dir that is a link to a
/// host file: refused, nothing read; the operator's own file elsewhere is
/// read as named.
#[test]
fn a_stdin_file_linked_out_of_the_working_dir_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret");
    std::fs::write(&secret, "HOST-SECRET\n").unwrap();
    std::os::unix::fs::symlink(&secret, work.path().join("input.txt")).unwrap();
    let workdir = work.path().to_str().unwrap();
    let linked = work.path().join("input.txt");
    let out = run(&[
        "run",
        "--no-log",
        "--workdir",
        workdir,
        "--stdin",
        linked.to_str().unwrap(),
        "--",
        "cat",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("leads out of"), "{error}");
    let out = run(&[
        "run",
        "--no-log",
        "--workdir",
        workdir,
        "--stdin",
        secret.to_str().unwrap(),
        "--",
        "cat",
    ]);
    assert_eq!(out.stdout, b"HOST-SECRET\n", "the operator's own file");
}
