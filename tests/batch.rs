//! `subrt batch` on the real binary: many submissions, outcomes, labels,
//! bad files, interruption and resume.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Project, eventually, live_processes};

fn project() -> Project {
    Project::with_config(
        "[[environments]]\nname = \"local\"\ntype = \"local\"\n\
         environment = { include_os_env = true }\n",
    )
}

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn ls(project: &Project, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["ls", "--json"];
    all.extend_from_slice(args);
    lines(&project.run(&all).stdout)
}

/// A batch file of `n` submissions, each in its own folder under `subs/`.
fn write_batch(dir: &Path, name: &str, n: usize, commands: &str, extra: &str) -> String {
    let mut text = format!("environment = \"local\"\nlabels = {{ suite = \"t\" }}\n{extra}\n");
    for i in 0..n {
        std::fs::create_dir_all(dir.join(format!("subs/s{i}"))).unwrap();
        text += &format!(
            "[[submissions]]\nid = \"s{i}\"\nworkdir = \"subs/s{i}\"\ncommands = {commands}\nlabels = {{ student = \"st{i}\" }}\n"
        );
    }
    std::fs::write(dir.join(name), text).unwrap();
    name.to_owned()
}

#[test]
fn two_hundred_submissions_of_three_commands_report_every_outcome() {
    let project = project();
    let file = write_batch(
        project.dir.path(),
        "batch.toml",
        200,
        r#"["echo ok", { name = "fails", run = "echo no >&2; exit 3" }, { name = "hangs", run = "sleep 5", timeout = 0.1 }]"#,
        "",
    );
    let started = Instant::now();
    let out = project.run(&["batch", &file, "-j", "4", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = lines(&out.stdout);
    let (commands, summary) = all.split_at(all.len() - 1);
    assert_eq!(commands.len(), 600);
    let of = |number: i64| commands.iter().filter(move |c| c["command"] == number);
    assert!(
        of(1).all(|c| c["exit_code"] == 0 && c["stdout_bytes"] == 3),
        "passes"
    );
    assert!(
        of(2).all(|c| c["exit_code"] == 3 && c["name"] == "fails"),
        "failures"
    );
    assert!(
        of(3).all(|c| c["timed_out"] == true && c["name"] == "hangs"),
        "timeouts"
    );
    let summary = &summary[0]["summary"];
    // One word each (ls --state, the dashboard): a timeout is not a failure.
    assert_eq!(summary["passed"], 200);
    assert_eq!(summary["failed"], 200);
    assert_eq!(summary["timed_out"], 200);
    assert_eq!(summary["killed"], 0);
    eprintln!("200 x 3 commands with -j 4: {:?}", started.elapsed());

    let batch = summary["batch"].as_str().unwrap();
    let runs = ls(&project, &["--batch", batch]);
    assert_eq!(runs.len(), 200, "one run per submission");
    assert!(runs.iter().all(|r| r["labels"]["suite"] == "t"));
    let one = ls(&project, &["--label", "student=st7"]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["labels"]["submission"], "s7");
    assert_eq!(ls(&project, &["--state", "timed_out", "-n", "5"]).len(), 5);
    // Each submission ran in one session: its three commands in one run.
    let export = project.run(&[
        "export",
        one[0]["run_id"].as_str().unwrap(),
        "--format",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    assert_eq!(doc["commands"].as_array().unwrap().len(), 3);
}

#[test]
fn setup_runs_once_per_submission_and_stop_on_failure_stops() {
    let project = project();
    std::fs::create_dir_all(project.dir.path().join("a")).unwrap();
    std::fs::write(
        project.dir.path().join("batch.toml"),
        r#"
[[submissions]]
id = "a"
workdir = "a"
setup = ["echo setup >> setup.log"]
commands = ["true", "true", "exit 1", "echo never > never.txt"]
stop_on_failure = true
"#,
    )
    .unwrap();
    let out = project.run(&["batch", "batch.toml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let dir = project.dir.path().join("a");
    assert_eq!(
        std::fs::read_to_string(dir.join("setup.log")).unwrap(),
        "setup\n"
    );
    assert!(!dir.join("never.txt").exists(), "ran past the failure");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("a: 2 ok, 1 failed, 0 timed out, 0 killed"),
        "{text}"
    );
}

#[test]
fn json_lines_batches_work_the_same() {
    let project = project();
    std::fs::create_dir_all(project.dir.path().join("x")).unwrap();
    std::fs::write(
        project.dir.path().join("batch.jsonl"),
        "{\"id\": \"x1\", \"workdir\": \"x\", \"commands\": [\"echo one\"]}\n\
         {\"id\": \"x2\", \"workdir\": \"x\", \"commands\": [{\"run\": \"cat\", \"stdin\": \"in.txt\"}]}\n",
    )
    .unwrap();
    std::fs::write(project.dir.path().join("x/in.txt"), "fed").unwrap();
    let out = project.run(&["batch", "batch.jsonl", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let all = lines(&out.stdout);
    let fed = all.iter().find(|c| c["submission"] == "x2").unwrap();
    assert_eq!(fed["stdout_bytes"], 3);
}

#[test]
fn a_bad_batch_file_names_the_place_and_starts_nothing() {
    let project = project();
    std::fs::create_dir_all(project.dir.path().join("ok")).unwrap();
    let cases = [
        (
            "[[submissions]]\nid = \"a\"\nworkdir = \"ok\"\ncomands = [\"true\"]\n",
            "bad.toml:4:1",
            "comands",
        ),
        (
            "[[submissions]]\nid = \"a\"\nworkdir = \"ok\"\ncommands = [\"true\"]\n\
             [[submissions]]\nid = \"a\"\nworkdir = \"ok\"\ncommands = [\"true\"]\n",
            "bad.toml:6:6",
            "used twice",
        ),
        (
            "[[submissions]]\nid = \"a\"\nworkdir = \"missing\"\ncommands = [\"true\"]\n",
            "bad.toml:3:11",
            "missing does not exist",
        ),
        (
            "[[submissions]]\nid = \"a\"\nworkdir = \"ok\"\nenvironment = \"nope\"\ncommands = [\"true\"]\n",
            "bad.toml:4:15",
            "no environment named `nope`",
        ),
    ];
    for (text, place, words) in cases {
        std::fs::write(project.dir.path().join("bad.toml"), text).unwrap();
        let out = project.run(&["batch", "bad.toml"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let error = String::from_utf8_lossy(&out.stderr);
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(error.contains(place) && error.contains(words), "{error}");
        assert!(project.logs().is_empty(), "something started: {error}");
    }
    std::fs::write(
        project.dir.path().join("bad.toml"),
        "[[submissions]]\nid = \"a\"\nworkdir = \"ok\"\ncommands = [\"true\"]\n",
    )
    .unwrap();
    let out = project.run(&["batch", "bad.toml", "--env", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("--env nope") && error.contains("no environment named"),
        "{error}"
    );
    assert!(project.logs().is_empty());
    let jsonl = "{\"id\": \"a\", \"workdir\": \"ok\", \"commands\": [\"true\"], \"bogus\": 1}\n";
    std::fs::write(project.dir.path().join("bad.jsonl"), jsonl).unwrap();
    let out = project.run(&["batch", "bad.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("bad.jsonl:1:") && error.contains("bogus"),
        "{error}"
    );
}

#[test]
fn sigint_stops_the_batch_and_resume_runs_exactly_the_rest() {
    let project = project();
    let n = common::unique_sleep();
    let file = write_batch(
        project.dir.path(),
        "batch.toml",
        100,
        &format!(r#"["sleep 0.$(( $$ % 3 + 1 )); echo done", "sleep 0.0{n}"]"#),
        "jobs = 4",
    );
    let child = project
        .cmd(&["batch", &file, "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Let a few submissions finish, then interrupt.
    assert!(eventually(Duration::from_secs(20), || project.logs().len() >= 12));
    let sent = Instant::now();
    // SAFETY: signalling a child we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(130));
    assert!(
        eventually(Duration::from_secs(2), || live_processes("sleep 0.")
            .is_empty()),
        "a command of the batch survived"
    );
    let first = lines(&out.stdout);
    let summary = &first.last().unwrap()["summary"];
    assert_eq!(summary["cancelled"], true);
    let batch = summary["batch"].as_str().unwrap().to_owned();
    let runs = ls(&project, &["--batch", &batch]);
    let done: Vec<&str> = runs
        .iter()
        .filter(|r| r["state"] == "finished" && r["killed"] == false)
        .filter_map(|r| r["labels"]["submission"].as_str())
        .collect();
    assert!(done.len() < 100, "the batch was interrupted");

    let resumed = project.run(&["batch", &file, "--json", "--resume"]);
    assert_eq!(resumed.status.code(), Some(0), "{resumed:?}");
    let again = lines(&resumed.stdout);
    let summary = &again.last().unwrap()["summary"];
    assert_eq!(summary["batch"], batch.as_str(), "the same batch id");
    assert_eq!(summary["skipped"], done.len());
    let rerun: std::collections::BTreeSet<&str> = again
        .iter()
        .filter_map(|c| c["submission"].as_str())
        .collect();
    assert_eq!(
        rerun.len(),
        100 - done.len(),
        "exactly the unfinished ones ran"
    );
    assert!(
        done.iter().all(|d| !rerun.contains(d)),
        "a finished one ran again"
    );
}

/// `subrt batch --json FILE | head -1`: the reader has what it wanted and
/// went away, while the batch's commands sleep. The batch stops within a
/// second or so as if interrupted, quietly (no error about a
/// broken pipe), exits 141 as a process ended by SIGPIPE would, and leaves
/// no command running.
#[test]
fn a_reader_that_goes_away_stops_the_batch_quietly() {
    let project = project();
    let n = common::unique_sleep();
    let file = write_batch(
        project.dir.path(),
        "batch.toml",
        40,
        &format!(r#"["echo hi", "sleep 5.{n}"]"#),
        "jobs = 2",
    );
    let mut child = project
        .cmd(&["batch", &file, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.contains("\"submission\""), "{first}");
    drop(child.stdout.take());
    let gone = Instant::now();
    let out = child.wait_with_output().unwrap();
    // Before the sleeps end: found without waiting for the next line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        gone.elapsed() < Duration::from_secs(4),
        "{:?}: {stderr}",
        gone.elapsed()
    );
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("pipe"), "quiet: {stderr}");
    assert!(
        live_processes(&format!("sleep 5.{n}")).is_empty(),
        "a command of the batch survived"
    );
    let started = project.logs().len();
    assert!(
        started < 40,
        "the rest of the batch did not start: {started}"
    );
}

#[test]
fn run_takes_labels_and_a_name() {
    let project = project();
    let out = project.run(&[
        "run",
        "--label",
        "team=red",
        "--name",
        "first try",
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{out:?}");
    let runs = ls(&project, &["--label", "team=red"]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["labels"]["name"], "first try");
    assert!(ls(&project, &["--label", "team=blue"]).is_empty());
    let bad = project.run(&["run", "--label", "oops", "--", "true"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_shipped_demo_batch_runs() {
    let project = project();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/batch.toml");
    let out = project.run(&["batch", demo.to_str().unwrap(), "--json"]);
    // bob fails his check and carol hangs: exit 1, every outcome reported.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let all = lines(&out.stdout);
    let summary = &all.last().unwrap()["summary"];
    assert_eq!(summary["submissions"], 4);
    assert_eq!(summary["timed_out"], 1);
    let dave = all.iter().filter(|c| c["submission"] == "dave").count();
    assert_eq!(dave, 2);
}

/// SIGKILL of `subrt batch` at 50 moments, most of them between two
/// commands of a submission: a run is never listed `finished` unless every
/// command of its submission ran, and `--resume` reruns exactly the
/// submissions whose runs did not finish all of their work.
#[test]
fn sigkill_of_a_batch_never_leaves_a_partial_run_finished() {
    let project = project();
    // Many quick commands: a SIGKILL finds a session between two of them
    // far more often than inside one.
    let commands = format!("[{}]", vec!["\"true\""; 40].join(", "));
    let file = write_batch(project.dir.path(), "batch.toml", 6, &commands, "jobs = 3");
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..50 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(30 + seed % 400);
        let mut child = project
            .cmd(&["batch", &file, "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SAFETY: signalling a child we own.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        for run in ls(&project, &[]) {
            if run["state"] == "finished" {
                let ran = run["commands"].as_u64().unwrap();
                assert_eq!(
                    ran, 40,
                    "round {round} ({delay:?}): a run listed finished after {ran} of 40 commands: {run}"
                );
            }
        }
    }
    // The last round's batch is the one `--resume` takes up.
    let newest = ls(&project, &["-n", "1"]);
    let batch = newest[0]["labels"]["batch"].as_str().unwrap().to_owned();
    let runs = ls(&project, &["--batch", &batch]);
    let complete: std::collections::BTreeSet<String> = runs
        .iter()
        .filter(|r| r["state"] == "finished")
        .filter_map(|r| r["labels"]["submission"].as_str().map(str::to_owned))
        .collect();
    let resumed = project.run(&["batch", &file, "--json", "--resume"]);
    assert_eq!(resumed.status.code(), Some(0), "{resumed:?}");
    let out = lines(&resumed.stdout);
    let summary = &out.last().unwrap()["summary"];
    assert_eq!(summary["skipped"], complete.len(), "{summary}");
    let rerun: std::collections::BTreeSet<String> = out
        .iter()
        .filter_map(|c| c["submission"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(rerun.len() + complete.len(), 6, "{rerun:?} {complete:?}");
    assert!(rerun.is_disjoint(&complete));
}

/// Paths that lead out of where they must stay: each refused at load with
/// a message that names it, nothing started, the secret never read; with
/// `--allow-outside` the operator's own paths are allowed, the
/// submission's links still are not.
#[test]
fn paths_that_lead_out_are_refused_and_nothing_is_read() {
    let project = project();
    let dir = project.dir.path();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret");
    std::fs::write(&secret, "HOST-SECRET\n").unwrap();
    std::fs::create_dir_all(dir.join("subs/s/inputs")).unwrap();
    std::fs::write(dir.join("subs/s/inputs/fine.txt"), "fine\n").unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("subs/s/input.txt")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.join("subs/linked")).unwrap();
    let submission = |workdir: &str, extra: &str, stdin: &str| {
        format!(
            "[[submissions]]\nid = \"s\"\nworkdir = \"{workdir}\"\n{extra}\
             commands = [{{ run = \"cat\", stdin = \"{stdin}\" }}]\n"
        )
    };
    let cases = [
        (
            submission("subs/s", "", "input.txt"),
            "stdin file",
            "leads out of",
        ),
        (
            submission("subs/s", "", "../../../secret"),
            "stdin file",
            "outside the batch file's folder",
        ),
        (
            submission(
                "subs/s",
                "assets = { data = \"subs/s/input.txt\" }\n",
                "inputs/fine.txt",
            ),
            "asset `data`",
            "leads out of",
        ),
        (
            submission("subs/linked", "", "secret"),
            "workdir",
            "leads out of",
        ),
        (
            submission("../outside", "", "x"),
            "workdir",
            "outside the batch file's folder",
        ),
    ];
    for (text, what, words) in &cases {
        std::fs::write(dir.join("batch.toml"), text).unwrap();
        let out = project.run(&["batch", "batch.toml", "--json"]);
        let error = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}\n{error}");
        assert!(
            error.contains("batch.toml:") && error.contains(what) && error.contains(words),
            "{text}\n{error}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("HOST-SECRET"));
        assert!(project.logs().is_empty(), "a run started: {error}");
    }
    // The operator may name their own files outside the file's folder...
    std::fs::write(elsewhere.path().join("shared.txt"), "shared\n").unwrap();
    let shared = elsewhere.path().join("shared.txt");
    let text = submission("subs/s", "", &shared.display().to_string());
    std::fs::write(dir.join("batch.toml"), &text).unwrap();
    let refused = project.run(&["batch", "batch.toml"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let allowed = project.run(&["batch", "batch.toml", "--allow-outside"]);
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
    // ...but a submission's link stays refused.
    let text = submission("subs/s", "", "input.txt");
    std::fs::write(dir.join("batch.toml"), &text).unwrap();
    let out = project.run(&["batch", "batch.toml", "--allow-outside"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A submission that swaps its stdin file for a link to a host file
/// between its commands: the next command's stdin is refused when it is
/// read, and the host file reaches nothing.
#[test]
fn a_link_planted_by_a_command_is_not_followed_for_the_next_stdin() {
    let project = project();
    let dir = project.dir.path();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret");
    std::fs::write(&secret, "HOST-SECRET\n").unwrap();
    std::fs::create_dir_all(dir.join("subs/s")).unwrap();
    std::fs::write(dir.join("subs/s/input.txt"), "first\n").unwrap();
    let text = format!(
        "[[submissions]]\nid = \"s\"\nworkdir = \"subs/s\"\ncommands = [\
         {{ run = \"cat; rm input.txt; ln -s {} input.txt\", stdin = \"input.txt\" }}, \
         {{ run = \"cat\", stdin = \"input.txt\" }}]\n",
        secret.display()
    );
    std::fs::write(dir.join("batch.toml"), text).unwrap();
    let out = project.run(&["batch", "batch.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("could not run") && stdout.contains("leads out of"),
        "{stdout}"
    );
    for run in project.logs() {
        let out = project.run(&[
            "export",
            &run.file_name().unwrap().to_string_lossy(),
            "--format",
            "stdout",
        ]);
        assert!(!String::from_utf8_lossy(&out.stdout).contains("HOST-SECRET"));
    }
}

/// Values that cannot mean anything are refused where they are, before
/// anything starts.
#[test]
fn bad_values_are_refused_at_load_with_their_place() {
    let project = project();
    let dir = project.dir.path();
    std::fs::create_dir_all(dir.join("ok")).unwrap();
    let one = |top: &str, own: &str| {
        format!(
            "{top}\n[[submissions]]\nid = \"a\"\nworkdir = \"ok\"\n{own}commands = [\"true\"]\n"
        )
    };
    let cases = [
        (one("timeout = -5", ""), "bad.toml:1:11", "timeout -5"),
        (one("timeout = nan", ""), "bad.toml:1:11", "timeout NaN"),
        (one("timeout = inf", ""), "bad.toml:1:11", "timeout inf"),
        (one("", "timeout = -1\n"), "bad.toml:5:11", "timeout -1"),
        (one("jobs = 0", ""), "bad.toml:1:8", "jobs = 0"),
        (
            "[[submissions]]\nid = \"a\"\nworkdir = \"ok\"\ncommands = [{ run = \"true\", timeout = -1.0 }]\n".into(),
            "bad.toml:4:13",
            "timeout -1",
        ),
    ];
    for (text, place, words) in &cases {
        std::fs::write(dir.join("bad.toml"), text).unwrap();
        let out = project.run(&["batch", "bad.toml"]);
        let error = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {error}");
        assert!(
            error.contains(place) && error.contains(words),
            "{text}: {error}"
        );
    }
    // Invalid UTF-8: where it is, in TOML and in JSON Lines.
    std::fs::write(dir.join("bad.toml"), b"jobs = 2\n# caf\xe9\n").unwrap();
    let error = String::from_utf8_lossy(&project.run(&["batch", "bad.toml"]).stderr).into_owned();
    assert!(
        error.contains("bad.toml:2:6") && error.contains("0xe9"),
        "{error}"
    );
    std::fs::write(
        dir.join("bad.jsonl"),
        b"{\"id\": \"a\", \"workdir\": \"ok\", \"commands\": [\"true\"]}\n{\"id\": \"b\xff\"}\n",
    )
    .unwrap();
    let error = String::from_utf8_lossy(&project.run(&["batch", "bad.jsonl"]).stderr).into_owned();
    assert!(
        error.contains("bad.jsonl:2:10") && error.contains("0xff"),
        "{error}"
    );
    assert!(project.logs().is_empty());
}

/// A 20 MB TOML batch is refused without being parsed (a parse takes tens
/// of times its size), pointing at JSON Lines; the same batch as JSON
/// Lines loads in bounded memory.
#[test]
fn a_huge_toml_batch_is_refused_and_json_lines_are_streamed() {
    let project = project();
    let dir = project.dir.path();
    std::fs::create_dir_all(dir.join("ok")).unwrap();
    let mut toml = String::new();
    let mut jsonl = String::new();
    let padding = "x".repeat(150);
    for i in 0..100_000 {
        toml += &format!(
            "[[submissions]]\nid = \"s{i}\"\nworkdir = \"ok\"\ncommands = [\"false {padding}\"]\n"
        );
        jsonl += &format!(
            "{{\"id\": \"s{i}\", \"workdir\": \"ok\", \"commands\": [\"false {padding}\"]}}\n"
        );
    }
    // The last line is bad: everything is read and checked before anything runs.
    jsonl += "{\"id\": \"last\", \"workdir\": \"missing\", \"commands\": [\"true\"]}\n";
    std::fs::write(dir.join("big.toml"), &toml).unwrap();
    std::fs::write(dir.join("big.jsonl"), &jsonl).unwrap();
    let out = project.run(&["batch", "big.toml"]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(error.contains("JSON Lines"), "{error}");
    let started = Instant::now();
    let child = project
        .cmd(&["batch", "big.jsonl"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kib = 0;
    let watch = std::thread::spawn(move || {
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
            std::thread::sleep(Duration::from_millis(5));
        }
        peak_kib
    });
    let out = child.wait_with_output().unwrap();
    let peak_kib = watch.join().unwrap();
    let error = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{error}");
    assert!(error.contains("big.jsonl:100001:"), "{error}");
    eprintln!(
        "{peak_kib} KiB at most to check a {} MB file",
        jsonl.len() >> 20
    );
    assert!(
        peak_kib < 64 << 10,
        "{peak_kib} KiB to check a {} MB file",
        jsonl.len() >> 20
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(project.logs().is_empty());
}

/// A submission id or a folder name with terminal escapes never reaches
/// the terminal raw: refused ids are shown escaped, paths in messages are
/// sanitised.
#[test]
fn hostile_ids_and_folder_names_are_printed_harmless() {
    let project = project();
    let dir = project.dir.path();
    std::fs::create_dir_all(dir.join("ok")).unwrap();
    let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let text = format!(
        "[[submissions]]\nid = {}\nworkdir = \"ok\"\ncommands = [\"true\"]\n",
        toml_string(evil)
    );
    std::fs::write(dir.join("batch.toml"), text).unwrap();
    let out = project.run(&["batch", "batch.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        !error.contains('\u{1b}') && !error.contains('\u{7}'),
        "{error:?}"
    );
    assert!(error.contains("\\u{1b}]0;pwned"), "shown escaped: {error}");

    // A folder whose name carries escapes, quoted by an error.
    let folder = dir.join(format!("sub{evil}"));
    std::fs::create_dir_all(&folder).unwrap();
    let jsonl = format!(
        "{{\"id\": \"s\", \"workdir\": {}, \"commands\": [{{\"run\": \"cat\", \"stdin\": \"missing.txt\"}}]}}\n",
        serde_json::to_string(&format!("sub{evil}")).unwrap()
    );
    std::fs::write(dir.join("b.jsonl"), jsonl).unwrap();
    let out = project.run(&["batch", "b.jsonl"]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{error}");
    assert!(error.contains("missing.txt"), "{error}");
    assert!(
        !error.contains('\u{1b}') && !error.contains('\u{7}'),
        "{error:?}"
    );

    // A store entry named with escapes, listed by `ls` as not a run.
    std::fs::create_dir_all(dir.join(format!("runs/x{evil}.jsonl"))).unwrap();
    let out = project.run(&["ls"]);
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(warning.contains("warning"), "{warning}");
    assert!(
        !warning.contains('\u{1b}') && !warning.contains('\u{7}'),
        "{warning:?}"
    );
}

/// `value` as a TOML basic string, escapes and all.
fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Submissions start in the file's order: a submission never starts
/// before one that is `jobs` or more places before it in the file (those
/// that start together may swap by a moment). Ten batches, ten times so.
#[test]
fn submissions_start_in_the_files_order() {
    let project = project();
    let file = write_batch(
        project.dir.path(),
        "batch.toml",
        24,
        r#"["sleep 0.05"]"#,
        "jobs = 3",
    );
    for round in 0..10 {
        let out = project.run(&["batch", &file, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let all = lines(&out.stdout);
        let batch = all.last().unwrap()["summary"]["batch"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut started: Vec<(usize, String)> = ls(&project, &["--batch", &batch])
            .iter()
            .map(|r| {
                let id = r["labels"]["submission"].as_str().unwrap();
                let index = id.trim_start_matches('s').parse().unwrap();
                (index, r["started_at"].as_str().unwrap().to_owned())
            })
            .collect();
        started.sort();
        for (i, a) in &started {
            for (j, b) in &started {
                assert!(
                    !(j >= &(i + 3) && b < a),
                    "round {round}: s{j} started at {b}, before s{i} at {a}"
                );
            }
        }
    }
}

/// A batch on a sandboxed environment says what its commands cost and how
/// many ran out of memory, in its summary and in each command's line.
#[test]
fn a_batch_summary_says_what_its_commands_cost() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the sandbox needs root");
        return;
    }
    let project = Project::with_config(
        "[[environments]]\nname = \"local\"\ntype = \"local\"\n\
         local = { isolation = \"sandbox\" }\nlimits = { memory = \"48m\" }\n\
         environment = { env = { PATH = \"/usr/bin:/bin\" } }\n",
    );
    let file = write_batch(
        project.dir.path(),
        "batch.toml",
        2,
        r#"["true", "dd if=/dev/zero of=/dev/null bs=256M count=1"]"#,
        "",
    );
    let out = project.run(&["batch", &file, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let all = lines(&out.stdout);
    let bomb = all
        .iter()
        .find(|l| l["command"] == 2)
        .expect("a line per command");
    assert_eq!(bomb["oom_killed"], true, "{bomb}");
    assert_eq!(bomb["killed_by"], "out_of_memory", "{bomb}");
    let summary = &all.last().unwrap()["summary"];
    assert_eq!(summary["out_of_memory"], 2, "{summary}");
    assert_eq!(summary["failed"], 2, "{summary}");
    let peak = summary["peak_memory_bytes"].as_u64().unwrap();
    assert!((40 << 20..=48 << 20).contains(&peak), "{summary}");
    assert!(summary["cpu_seconds"].as_f64().unwrap() > 0.0, "{summary}");
    let plain = project.run(&["batch", &file]);
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(text.contains("2 out of memory; peak memory"), "{text}");
}
