//! Run log version 2: raw stream files, the bound, crash safety, states
//! that tell the truth, a store with things in it that are not runs, and
//! version-1 logs still read. Real `subrt` processes throughout.

mod common;
#[path = "../benches/common/store.rs"]
mod synthetic_store;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{eventually, random_bytes};

fn project(store: &str) -> common::Project {
    common::Project::with_config(&format!(
        "[[environments]]\nname = \"local\"\ntype = \"local\"\n\
         environment = {{ include_os_env = true }}\n[store]\n{store}\n"
    ))
}

fn ls(project: &common::Project) -> Vec<serde_json::Value> {
    let out = project.run(&["ls", "--json"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Bytes the run's folder takes on disk (allocated blocks, not lengths).
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().blocks() * 512)
        .sum()
}

#[test]
fn streams_are_raw_files_and_export_is_byte_exact() {
    let project = project("");
    let data = random_bytes(300_000, 7);
    std::fs::write(project.dir.path().join("random.bin"), &data).unwrap();
    // Random bytes, invalid UTF-8, a NUL flood and a character split
    // across two writes.
    let script = r"cat random.bin; printf '\377\376'; head -c 100000 /dev/zero; printf '\342\202'; sleep 0.1; printf '\254'; printf 'e\000rr' >&2";
    let out = project.run(&["run", "--", script]);
    assert!(out.status.success(), "{out:?}");
    let mut expected = data.clone();
    expected.extend_from_slice(b"\xff\xfe");
    expected.extend_from_slice(&[0; 100_000]);
    expected.extend_from_slice("€".as_bytes());
    assert!(out.stdout == expected, "the run passed the bytes through");

    let run = project.logs().pop().unwrap();
    assert!(
        std::fs::read(run.join("stdout")).unwrap() == expected,
        "the stdout file holds the bytes as written (cat, grep)"
    );
    assert_eq!(std::fs::read(run.join("stderr")).unwrap(), b"e\0rr");
    let export = project.run(&["export", "last", "--format", "stdout"]);
    assert!(export.stdout == expected);
    let export = project.run(&["export", "last", "--format", "stderr"]);
    assert_eq!(export.stdout, b"e\0rr");
    // Nothing is encoded: the whole run takes barely more than its output.
    let index = std::fs::metadata(run.join("events.jsonl")).unwrap().len();
    assert!(index < 4096, "the index is small: {index} bytes");
}

#[test]
fn a_run_keeps_at_most_max_run_bytes_per_stream() {
    let project = project("max_run_bytes = \"100m\"");
    let out = project.run(&["run", "--", "head -c 500M /dev/zero"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        out.stdout.len(),
        500 << 20,
        "the caller still gets everything"
    );
    let run = project.logs().pop().unwrap();
    let used = disk_usage(&run);
    assert!(used <= 101 << 20, "{used} bytes on disk for a 100m bound");
    let runs = ls(&project);
    assert_eq!(runs[0]["truncated"], true, "{:?}", runs[0]);
    assert_eq!(runs[0]["bytes_out"], 500u64 << 20);
    let table = String::from_utf8(project.run(&["ls"]).stdout).unwrap();
    assert!(table.contains("truncated"), "{table}");
    let raw = String::from_utf8(project.run(&["ls", "--json"]).stdout).unwrap();
    assert_eq!(
        raw.matches("\"truncated\"").count(),
        1,
        "one key, not two: {raw}"
    );
}

#[test]
fn export_of_a_bounded_run_is_its_head_and_tail_exactly_and_says_what_was_dropped() {
    let project = project("max_run_bytes = \"1m\"");
    let data = random_bytes(5 << 20, 11);
    std::fs::write(project.dir.path().join("data.bin"), &data).unwrap();
    // Many writes of odd sizes, so the tail's ring wraps mid-write.
    let script = "i=0; while [ $i -lt 80 ]; do dd if=data.bin bs=65536 skip=$i count=1 2>/dev/null; i=$((i+1)); done";
    let out = project.run(&["run", "--", script]);
    assert!(out.stdout == data, "{}", out.stdout.len());
    let export = project.run(&["export", "last", "--format", "stdout"]);
    assert!(export.status.success(), "{export:?}");
    let head = 768 << 10;
    let tail = 256 << 10;
    let mut expected = data[..head].to_vec();
    expected.extend_from_slice(&data[data.len() - tail..]);
    assert!(
        export.stdout == expected,
        "export is the first 3/4 MiB and the last 1/4 MiB"
    );
    let warning = String::from_utf8_lossy(&export.stderr);
    let dropped = data.len() - head - tail;
    assert!(
        warning.contains(&format!("{dropped} bytes"))
            && warning.contains(&format!("{head}..{}", data.len() - tail)),
        "{warning}"
    );
}

#[test]
fn sigkill_at_any_moment_leaves_an_exact_prefix() {
    let project = project("");
    let data_path = project.dir.path().join("data.bin");
    let made = std::process::Command::new("head")
        .args(["-c", "200M", "/dev/urandom"])
        .output()
        .unwrap();
    std::fs::write(&data_path, &made.stdout).unwrap();
    let data = made.stdout;
    let mut checked = 0;
    for round in 0..10u64 {
        let before = project.logs().len();
        let mut child = project
            .cmd(&["run", "--", "cat data.bin"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Moments spread over the run: from the first writes to the flood.
        std::thread::sleep(Duration::from_millis(5 + round * 37 % 300));
        child.kill().unwrap();
        child.wait().unwrap();
        let logs = project.logs();
        if logs.len() == before {
            continue; // killed before its run existed: nothing half-made
        }
        let run = logs
            .last()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let export = project.run(&["export", &run, "--format", "stdout"]);
        assert!(export.status.success(), "round {round}: {export:?}");
        let got = &export.stdout;
        assert!(
            got.len() <= data.len() && got[..] == data[..got.len()],
            "round {round}: the export of {} bytes is not a prefix of what was written",
            got.len()
        );
        checked += 1;
    }
    assert!(
        checked >= 5,
        "only {checked} of 10 rounds had a run to check"
    );
    let listed = project.run(&["ls"]);
    assert!(
        !String::from_utf8_lossy(&listed.stderr).contains("without"),
        "a half-made run is listed: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
}

#[test]
fn a_running_run_seen_from_another_process_shows_its_time_so_far() {
    let project = project("");
    let mut child = project
        .cmd(&["run", "--", "sleep 3"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let runs = ls(&project);
    assert_eq!(runs[0]["state"], "running", "{:?}", runs[0]);
    let duration = runs[0]["duration"].as_f64().unwrap();
    assert!(duration >= 1.9, "a run 2 s in shows {duration} s");
    assert!(runs[0]["silent_for"].as_f64().unwrap() >= 1.9);
    child.wait().unwrap();
    let runs = ls(&project);
    assert_eq!(runs[0]["state"], "finished");
    let duration = runs[0]["duration"].as_f64().unwrap();
    assert!((2.9..4.0).contains(&duration), "{duration}");
    assert!(runs[0]["silent_for"].is_null());
}

#[test]
fn durations_are_the_commands_wall_time() {
    let project = project("");
    assert!(project.run(&["run", "--", "true"]).status.success());
    let runs = ls(&project);
    let duration = runs[0]["duration"].as_f64().unwrap();
    assert!(duration < 0.5, "a `true` run lasted {duration} s");
}

#[test]
fn a_kill_from_another_process_is_recorded_as_a_kill() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs PID namespaces (root)");
        return;
    }
    let project = project("");
    let n = common::unique_sleep();
    let child = project
        .cmd(&["run", "--", &format!("sleep {n}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let index = || project.logs().pop().map(|run| run.join("events.jsonl"));
    let init = || -> Option<i32> {
        let text = std::fs::read_to_string(index()?).ok()?;
        let line = text.lines().find(|l| l.contains("\"e\":\"proc\""))?;
        let proc: serde_json::Value = serde_json::from_str(line).ok()?;
        Some(proc["init"].as_i64()? as i32)
    };
    assert!(eventually(Duration::from_secs(5), || init().is_some()));
    // What the dashboard does for a run of another process.
    // SAFETY: the init of the session this test started.
    unsafe { libc::kill(init().unwrap(), libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137));
    let runs = ls(&project);
    assert_eq!(runs[0]["killed"], true, "{:?}", runs[0]);
    assert_eq!(runs[0]["signal"], 9);
    assert_eq!(runs[0]["status"], "killed");
}

#[test]
fn things_in_the_store_that_are_not_runs_are_skipped_at_once() {
    let project = project("");
    assert!(project.run(&["run", "--", "echo real"]).status.success());
    let runs = project.dir.path().join("runs");
    let fifo = runs.join("01JFIFO0000000000000000000.jsonl");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    std::fs::create_dir(runs.join("01JDIR00000000000000000000.jsonl")).unwrap();
    std::os::unix::fs::symlink(
        "01JLOOP0000000000000000001",
        runs.join("01JLOOP0000000000000000000"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "01JLOOP0000000000000000000",
        runs.join("01JLOOP0000000000000000001"),
    )
    .unwrap();
    std::fs::create_dir(runs.join("01JEMPTY000000000000000000")).unwrap();
    let started = Instant::now();
    let out = project.run(&["ls", "--json"]);
    assert!(started.elapsed() < Duration::from_secs(2), "ls hung");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "the one real run"
    );
    let warnings = String::from_utf8_lossy(&out.stderr);
    for expected in ["FIFO", "01JDIR", "symbolic link", "01JEMPTY"] {
        assert!(
            warnings.contains(expected),
            "no warning about {expected}: {warnings}"
        );
    }
}

/// A version-1 log as the previous subrt wrote it.
fn write_v1(project: &common::Project, id: &str) -> PathBuf {
    let runs = project.dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let path = runs.join(format!("{id}.jsonl"));
    let lines = [
        format!(
            r#"{{"format":"subrt-runlog","version":1,"run_id":"{id}","started_at":"2026-11-24T12:00:00Z","subrt_version":"0.1.0","environment":{{"name":"local","type":"local"}},"working_dir":"/","owner":{{"host":"elsewhere","pid":1,"start_time":null}}}}"#
        ),
        r#"{"e":"cmd","seq":1,"t":10,"c":1,"command":"old","timeout":null}"#.into(),
        r#"{"e":"out","seq":2,"t":20,"c":1,"s":"out","p":"cmd","d":"text\n"}"#.into(),
        r#"{"e":"out","seq":3,"t":30,"c":1,"s":"out","p":"cmd","b":"/wA="}"#.into(),
        r#"{"e":"out","seq":4,"t":40,"c":1,"s":"err","p":"cmd","b":"not base64!"}"#.into(),
        r#"{"e":"exit","seq":5,"t":50,"c":1,"code":0,"signal":null,"timed_out":false,"killed":false}"#.into(),
        r#"{"e":"end","seq":6,"t":60,"status":"exited","exit":0,"out":7,"err":0,"commands":1}"#.into(),
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn version_1_logs_still_list_and_export_and_say_what_is_lost() {
    let project = project("");
    write_v1(&project, "01JOLD00000000000000000000");
    let runs = ls(&project);
    assert_eq!(runs[0]["run_id"], "01JOLD00000000000000000000");
    assert_eq!(runs[0]["state"], "finished");
    assert_eq!(runs[0]["exit_code"], 0);
    let out = project.run(&["export", "last", "--format", "stdout"]);
    assert_eq!(out.stdout, b"text\n\xff\0");
    let err = project.run(&["export", "last", "--format", "stderr"]);
    let warning = String::from_utf8_lossy(&err.stderr);
    assert!(
        warning.contains(":5:") && warning.contains("base64"),
        "the broken record is named: {warning}"
    );
    let replay = project.run(&["replay", "last", "--print", "--speed", "0"]);
    assert_eq!(replay.stdout, b"text\n\xff\0");
}

#[test]
fn prune_removes_finished_runs_only() {
    let project = project("");
    for i in 0..4 {
        assert!(
            project
                .run(&["run", "--", &format!("echo {i}")])
                .status
                .success()
        );
    }
    let mut live = project
        .cmd(&["run", "--", "sleep 30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || project.logs().len() == 5));
    let missing = project.run(&["prune"]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let dry = project.run(&["prune", "--keep", "1", "--dry-run"]);
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout)
            .matches("would remove")
            .count(),
        3
    );
    assert_eq!(project.logs().len(), 5);
    let young = project.run(&["prune", "--older-than", "1h"]);
    assert!(String::from_utf8_lossy(&young.stdout).contains("no runs to remove"));
    let out = project.run(&["prune", "--keep", "1"]);
    assert!(out.status.success(), "{out:?}");
    let left = ls(&project);
    assert_eq!(left.len(), 2, "the live run and the newest finished one");
    assert_eq!(left[0]["state"], "running");
    live.kill().unwrap();
    live.wait().unwrap();
}

#[test]
fn max_bytes_removes_the_oldest_finished_runs() {
    let project = project("max_bytes = \"3m\"");
    for _ in 0..5 {
        assert!(
            project
                .run(&["run", "--", "head -c 1M /dev/zero"])
                .status
                .success()
        );
    }
    let runs = ls(&project);
    assert!(runs.len() <= 3, "{} runs kept under 3m", runs.len());
    assert!(!runs.is_empty());
}

/// A store of thousands of runs is measured against `max_bytes` at most
/// every 10 s, by whichever process starts a session (listing it at each
/// start cost seconds at 100,000 runs); a small one at every start (above).
#[test]
fn a_big_store_is_measured_against_max_bytes_every_ten_seconds() {
    let project = project("max_bytes = \"200k\"");
    let store = project.dir.path().join("runs");
    // Older than any real run (their ids sort first), ~1.5 KB each.
    for n in 0..1200 {
        synthetic_store::make_run(&store, n, 1000, 1 << 30);
    }
    assert!(project.run(&["run", "--", "true"]).status.success());
    let kept = project.logs().len();
    assert!(
        kept < 300,
        "the first start shrank the store to {kept} runs"
    );
    // Over the bound again, but measured a moment ago: left for now.
    for n in 2000..3200 {
        synthetic_store::make_run(&store, n, 1000, 1 << 30);
    }
    assert!(project.run(&["run", "--", "true"]).status.success());
    assert_eq!(project.logs().len(), kept + 1201, "measured again at once");
    // Ten seconds later (the mark made older), the next start measures.
    let mark = std::fs::File::options()
        .write(true)
        .open(store.join(".max_bytes_checked"))
        .unwrap();
    mark.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(11))
        .unwrap();
    assert!(project.run(&["run", "--", "true"]).status.success());
    let now = project.logs().len();
    assert!(now < 300, "ten seconds on, the store shrank to {now} runs");
}

/// A tmpfs of `size` mounted on `dir` (made), unmounted on drop; `None`
/// (the test skips) when not root.
fn small_filesystem(dir: &std::path::Path, size: &str) -> Option<Unmount> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small filesystem needs root");
        return None;
    }
    std::fs::create_dir_all(dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(mounted.success());
    Some(Unmount(dir.to_owned()))
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_says_log_incomplete_and_the_run_goes_on() {
    let project = project("dir = \"small\"");
    let Some(_unmount) = small_filesystem(&project.dir.path().join("small"), "512k") else {
        return;
    };
    let out = project.run(&["run", "--", "head -c 2M /dev/zero; echo done >&2"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        out.stdout.len(),
        2 << 20,
        "the command's output is unharmed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("recording stopped"), "{stderr}");
    let table = String::from_utf8(project.run(&["ls"]).stdout).unwrap();
    assert!(table.contains("ok, log incomplete"), "{table}");
    // The run completed: its end was recorded in the index's reserve,
    // though the disk had no room left for output.
    let run = &ls(&project)[0];
    assert_eq!(run["state"], "finished", "{run}");
    assert_eq!(run["exit_code"], 0, "{run}");
    assert!(
        run["log_incomplete"]
            .as_str()
            .is_some_and(|r| r.contains("No space left")),
        "{run}"
    );
    // What was kept is an exact prefix of what the command wrote.
    let export = project.run(&["export", "last", "--format", "stdout"]);
    assert!(export.stdout.iter().all(|&b| b == 0));
    assert!(export.stdout.len() < 2 << 20);
}

#[test]
fn a_small_run_is_not_truncated() {
    let project = project("max_run_bytes = \"1m\"");
    assert!(
        project
            .run(&["run", "--", "head -c 900k /dev/zero"])
            .status
            .success()
    );
    let runs = ls(&project);
    assert_eq!(runs[0]["truncated"], false, "{:?}", runs[0]);
    let export = project.run(&["export", "last", "--format", "stdout"]);
    assert_eq!(export.stdout.len(), 900 << 10);
    assert!(
        export.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
}

#[test]
fn a_damaged_index_is_reported_not_a_panic() {
    let project = project("");
    assert!(project.run(&["run", "--", "echo fine"]).status.success());
    let run = project.logs().pop().unwrap();
    let index = run.join("events.jsonl");
    let mut text = std::fs::read_to_string(&index).unwrap();
    text += r#"{"seq":90,"t":1,"c":1,"e":"out","s":"out","p":"cmd","o":18446744073709551610,"n":1000000000000000}"#;
    text += "\n";
    std::fs::write(&index, text).unwrap();
    for args in [
        &["export", "last", "--format", "stdout"][..],
        &["ls", "--json"],
        &["export", "last", "--format", "json"],
    ] {
        let out = project.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = project.run(&["export", "last", "--format", "stdout"]);
    assert!(out.stdout.starts_with(b"fine\n"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("claims"),
        "{out:?}"
    );
}

/// The disk fills up (something else took the last block) while a session
/// runs a hundred more commands: each command's start and end and the
/// session's end are still recorded (in the index's reserve), so the run
/// reads as finished, all its commands counted, not as interrupted.
#[tokio::test]
async fn a_full_disk_still_takes_the_end_of_every_command_and_of_the_session() {
    use subrt::runlog::{RunState, RunlogWriter, StoreLimits, summarize};
    use subrt::runtime::{LaunchSpec, RuntimeEvent};

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let Some(_unmount) = small_filesystem(&store, "256k") else {
        return;
    };
    let launch = LaunchSpec::new(
        subrt::spec::EnvironmentSpec::local("local"),
        dir.path().to_owned(),
    );
    let runtime = subrt::runtime::spawn_runtime(launch.clone()).await.unwrap();
    let result = runtime
        .execute(subrt::runtime::ExecRequest::new("true"))
        .await
        .unwrap();
    let writer =
        RunlogWriter::create(&store, StoreLimits::default(), &launch, &runtime.info()).unwrap();
    // Every block of the filesystem taken.
    let mut filler = std::fs::File::create(store.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    let long = "x".repeat(100);
    for number in 1..=100 {
        writer.command_started(number, &long, None).await.unwrap();
        let finished = RuntimeEvent::Finished(Box::new(result.clone()));
        writer.event(number, &finished).await.unwrap();
    }
    writer.finish().await.unwrap();
    let path = store.join(&launch.run_id);
    let (summary, warnings) = summarize(&path).unwrap();
    assert_eq!(summary.state, RunState::Finished, "{warnings:?}");
    assert_eq!(summary.commands, 100);
    runtime.cleanup().await.unwrap();
}
