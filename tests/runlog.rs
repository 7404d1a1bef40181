//! The saved log: recording through `subrt run`, reading it back with
//! `ls`, `export` and `replay`, and surviving crashes and damage.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{eventually, live_processes, random_bytes, unique_sleep};

/// A project with one local environment; its store is `runs/` in it.
type Store = common::Project;

impl Store {
    fn new() -> Self {
        Self::with_config(
            "[[environments]]\nname = \"local\"\ntype = \"local\"\n\
             environment = { include_os_env = true }\n",
        )
    }

    fn runs(&self) -> PathBuf {
        self.dir.path().join("runs")
    }

    /// The index of the newest run.
    fn index(&self) -> PathBuf {
        self.logs().last().unwrap().join("events.jsonl")
    }

    fn ls(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["ls", "--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[test]
fn exports_reproduce_each_stream_byte_for_byte() {
    let store = Store::new();
    let data = random_bytes(1_000_000, 42);
    std::fs::write(store.dir.path().join("random.bin"), &data).unwrap();
    // Stdout in 20 slices of the file, with invalid UTF-8 on stderr between.
    let script = r"i=0; while [ $i -lt 20 ]; do
        dd if=random.bin bs=50000 skip=$i count=1 2>/dev/null
        printf '\377\376err %d\000\n' $i >&2
        i=$((i + 1))
    done";
    let out = store.run(&["run", "--", script]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout == data,
        "the run itself passed the bytes through"
    );

    let stdout = store.run(&["export", "last", "--format", "stdout"]);
    assert!(stdout.status.success(), "{stdout:?}");
    assert!(
        stdout.stdout == data,
        "export --format stdout differs from what was written"
    );
    let stderr = store.run(&["export", "last", "--format", "stderr"]);
    assert_eq!(stderr.stdout, out.stderr, "export --format stderr differs");
    assert!(stderr.stdout.starts_with(b"\xff\xfeerr 0\0\n"));

    let file = store.dir.path().join("out.bin");
    let to_file = store.run(&[
        "export",
        "last",
        "--format",
        "stdout",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(to_file.status.success());
    assert!(std::fs::read(&file).unwrap() == data);
}

#[test]
fn setup_output_is_exported_unless_asked_not_to() {
    let store = Store::new();
    std::fs::write(
        store.dir.path().join("config.toml"),
        "[[environments]]\nname = \"l\"\ntype = \"local\"\nsetup = { commands = [\"echo setup\"] }\n",
    )
    .unwrap();
    store.run(&["run", "--", "echo cmd"]);
    let all = store.run(&["export", "last", "--format", "stdout"]);
    assert_eq!(all.stdout, b"setup\ncmd\n");
    let without = store.run(&["export", "last", "--format", "stdout", "--no-setup"]);
    assert_eq!(without.stdout, b"cmd\n");
}

#[test]
fn the_header_says_how_to_find_the_run() {
    let store = Store::new();
    store.run(&["run", "--", "true"]);
    let log = std::fs::read_to_string(store.index()).unwrap();
    let header: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "subrt-runlog");
    assert_eq!(header["version"], 2);
    assert_eq!(header["max_run_bytes"], 1u64 << 30);
    assert!(header["owner"]["pid"].as_u64().unwrap() > 0);
    assert!(header["owner"]["start_time"].as_u64().is_some());
    assert!(!header["owner"]["host"].as_str().unwrap().is_empty());
    assert_eq!(header["environment"]["name"], "local");
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["e"], "end");
    assert_eq!(last["status"], "exited");
    assert!(log.contains("\"e\":\"proc\""), "records the process group");
}

fn wait_for_line(path: &Path, needle: &str) -> bool {
    eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle))
    })
}

#[test]
fn a_writer_killed_mid_run_leaves_a_readable_interrupted_run() {
    let store = Store::new();
    let n = unique_sleep();
    let mut child = store
        .cmd(&["run", "--", &format!("echo before-the-crash; sleep {n}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || store.logs().len() == 1));
    let log = store.index();
    let stdout = store.logs()[0].join("stdout");
    assert!(
        wait_for_line(&stdout, "before-the-crash"),
        "output reached the file while running"
    );
    assert!(wait_for_line(&log, "\"e\":\"out\""));
    child.kill().unwrap(); // SIGKILL: no chance to write the end line
    child.wait().unwrap();

    let runs = store.ls(&[]);
    assert_eq!(runs[0]["state"], "interrupted", "{runs:?}");
    let out = store.run(&["export", "last", "--format", "stdout"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"before-the-crash\n");

    // The session died with its owner (its PID namespace did); without a
    // namespace the log says which process group to kill.
    let text = std::fs::read_to_string(&log).unwrap();
    let proc_line = text.lines().find(|l| l.contains("\"e\":\"proc\"")).unwrap();
    let proc: serde_json::Value = serde_json::from_str(proc_line).unwrap();
    if proc["init"].is_null() {
        let pgid = proc["pgid"].as_i64().unwrap();
        subrt::runtime::process_group::kill_group(pgid as i32).unwrap();
    }
    assert!(eventually(Duration::from_secs(2), || live_processes(
        &format!("sleep {n}")
    )
    .is_empty()));
}

#[test]
fn torn_and_corrupt_lines_export_with_a_warning() {
    let store = Store::new();
    let out = store.run(&["run", "--", "echo one; echo two; echo three"]);
    assert!(out.status.success());
    let log = store.index();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // A corrupt line in the middle: every other line still counts.
    let mut corrupt = lines.clone();
    corrupt.insert(2, "{\"e\":\"out\",\"seq\":99,\"t\":"); // cut JSON
    corrupt.insert(3, "\u{1}garbage");
    std::fs::write(&log, corrupt.join("\n") + "\n").unwrap();
    let out = store.run(&["export", "last", "--format", "stdout"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"one\ntwo\nthree\n");
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("warning") && warning.contains(":3:") && warning.contains(":4:"),
        "{warning}"
    );

    // A torn last line: cut the file in the middle of its `end` line.
    let cut = text.len() - lines.last().unwrap().len() / 2;
    std::fs::write(&log, &text.as_bytes()[..cut]).unwrap();
    let out = store.run(&["export", "last", "--format", "stdout"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"one\ntwo\nthree\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete last line"));
    let runs = store.ls(&[]);
    assert_eq!(
        (runs[0]["state"].as_str(), runs[0]["exit_code"].as_i64()),
        (Some("interrupted"), Some(0)),
        "no end line and its writer gone: the session did not finish, though \
         its command had ended (with 0): {runs:?}"
    );
}

#[test]
fn an_unknown_format_version_is_a_clear_error() {
    let store = Store::new();
    std::fs::create_dir_all(store.runs()).unwrap();
    std::fs::write(
        store.runs().join("01FUTURE.jsonl"),
        "{\"format\":\"subrt-runlog\",\"version\":9,\"run_id\":\"01FUTURE\"}\n",
    )
    .unwrap();
    let out = store.run(&["export", "01FUTURE", "--format", "stdout"]);
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("01FUTURE.jsonl") && message.contains("version 9"),
        "{message}"
    );
}

#[test]
fn asciicast_is_version_3_json_lines() {
    let store = Store::new();
    store.run(&["run", "--", "echo hi; printf 'err\\n' >&2; exit 3"]);
    let out = store.run(&["export", "last", "--format", "asciicast"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines[0]["version"], 3);
    assert_eq!(lines[0]["term"]["cols"], 80);
    let output: String = lines[1..]
        .iter()
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap())
        .collect();
    assert!(
        output.contains("hi\r\n") && output.contains("err\r\n"),
        "{output:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!((last[1].as_str(), last[2].as_str()), (Some("x"), Some("3")));
}

#[test]
fn json_export_has_each_commands_result() {
    let store = Store::new();
    store.run(&["run", "--timeout", "0.3", "--", "echo start; sleep 5"]);
    let out = store.run(&["export", "last", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let command = &doc["commands"][0];
    assert_eq!(command["timed_out"], true);
    assert_eq!(command["stdout_bytes"], 6);
    assert_eq!(command["command"], "echo start; sleep 5");
}

#[test]
fn ls_live_shows_a_run_only_while_another_process_runs_it() {
    let store = Store::new();
    let mut child = store
        .cmd(&["run", "--", "echo running; sleep 2"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || store
        .ls(&["--live"])
        .len()
        == 1));
    let live = store.ls(&["--live"]);
    assert_eq!(live[0]["state"], "running");
    assert_eq!(live[0]["command"], "echo running; sleep 2");
    child.wait().unwrap();
    assert!(
        store.ls(&["--live"]).is_empty(),
        "still listed after it ended"
    );
    let all = store.ls(&[]);
    assert_eq!(all[0]["state"], "finished");
    assert_eq!(all[0]["exit_code"], 0);
}

#[test]
fn ls_lists_newest_first_with_states_and_counts() {
    let store = Store::new();
    store.run(&["run", "--", "printf 12345"]);
    store.run(&["run", "--timeout", "0.2", "--", "sleep 3"]);
    let runs = store.ls(&[]);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "timed_out");
    assert_eq!(runs[1]["status"], "exited");
    assert_eq!(runs[1]["bytes_out"], 5);
    let table = String::from_utf8(store.run(&["ls"]).stdout).unwrap();
    assert!(
        table.lines().nth(1).unwrap().contains("timed out"),
        "{table}"
    );
}

#[test]
fn runs_are_found_by_prefix_or_last_and_ambiguity_is_explained() {
    let store = Store::new();
    store.run(&["run", "--", "echo first"]);
    store.run(&["run", "--", "echo second"]);
    let logs = store.logs();
    let first_id = logs[0].file_name().unwrap().to_str().unwrap().to_owned();
    let prefix = &first_id[..first_id.len() - 4];
    let out = store.run(&["export", prefix, "--format", "stdout"]);
    if out.status.success() {
        assert_eq!(out.stdout, b"first\n");
    } else {
        // Both ids share the prefix: the error says so first, and lists them.
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(
            error.contains(&format!("`{prefix}` is the start of 2 runs")),
            "{error}"
        );
        assert!(!error.contains("no run"), "{error}");
    }
    // A prefix both ids share, surely: what they have in common.
    let second_id = logs[1].file_name().unwrap().to_str().unwrap().to_owned();
    let common: String = first_id
        .chars()
        .zip(second_id.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let out = store.run(&["export", &common, "--format", "stdout"]);
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("is the start of 2 runs") && error.contains(&second_id),
        "{error}"
    );
    let out = store.run(&["export", &first_id, "--format", "stdout"]);
    assert_eq!(out.stdout, b"first\n");
    let out = store.run(&["export", "last", "--format", "stdout"]);
    assert_eq!(out.stdout, b"second\n");
    let out = store.run(&["export", "zzz", "--format", "stdout"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run `zzz`"));
}

#[test]
fn replay_print_keeps_the_bytes_and_the_timing() {
    let store = Store::new();
    store.run(&["run", "--", "printf 'a\\377'; sleep 0.5; printf b >&2"]);
    let started = std::time::Instant::now();
    let out = store.run(&["replay", "last", "--print"]);
    let took = started.elapsed();
    assert_eq!(out.stdout, b"a\xff");
    assert_eq!(out.stderr, b"b");
    assert!(
        took >= Duration::from_millis(450),
        "the 0.5 s gap was not kept: {took:?}"
    );
    let started = std::time::Instant::now();
    let fast = store.run(&["replay", "last", "--print", "--speed", "0"]);
    assert_eq!(fast.stdout, b"a\xff");
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "--speed 0 waited"
    );
}

#[test]
fn no_log_records_nothing() {
    let store = Store::new();
    let out = store.run(&["run", "--no-log", "--", "echo unrecorded"]);
    assert_eq!(out.stdout, b"unrecorded\n");
    assert!(store.logs().is_empty());
}

/// A finished run's summary is kept in the store's catalog the first time a
/// listing reads it, and later listings take it from there: the same
/// summary, without opening the run's index (a store of 100,000 runs is
/// listed from one file). A run removed from the store is no longer listed;
/// a torn line is passed over.
#[test]
fn a_listing_from_the_catalog_says_what_the_indexes_say() {
    let store = Store::new();
    store.run(&["run", "--", "printf 12345"]);
    store.run(&["run", "--timeout", "0.2", "--", "sleep 3"]);
    store.run(&["run", "--label", "who=alice", "--", "echo err >&2; exit 3"]);
    let from_indexes = store.ls(&[]);
    assert_eq!(from_indexes.len(), 3);
    let out = store.run(&["ls"]);
    assert!(
        out.stderr.is_empty(),
        "the catalog is not taken for a run: {out:?}"
    );
    let catalog = store.runs().join(".catalog");
    let lines = std::fs::read_to_string(&catalog).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");

    // Taken from the catalog: its index is not read any more.
    let logs = store.logs();
    std::fs::write(logs[2].join("events.jsonl"), "not a log\n").unwrap();
    assert_eq!(store.ls(&[]), from_indexes);
    assert_eq!(
        std::fs::read_to_string(&catalog).unwrap(),
        lines,
        "nothing added twice"
    );

    std::fs::remove_dir_all(&logs[0]).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&catalog)
        .unwrap();
    std::io::Write::write_all(&mut file, b"{\"run\":\"01JB").unwrap();
    assert_eq!(store.ls(&[]), from_indexes[..2]);
    // The next run's line is whole, after the torn one.
    store.run(&["run", "--", "echo later"]);
    let listed = store.ls(&[]);
    let text = std::fs::read_to_string(&catalog).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["run"], listed[0]["run_id"], "{text}");
}

/// What a watcher of the store (the dashboard) has not seen: runs neither
/// known nor older than its floor, found without reading the others.
#[test]
fn a_watcher_finds_only_the_runs_it_has_not_seen() {
    let store = Store::new();
    for n in 0..3 {
        store.run(&["run", "--", &format!("echo {n}")]);
    }
    let ids = store.run_ids();
    let runs = subrt::runlog::Store::new(store.runs());
    let names = |found: Vec<PathBuf>| -> Vec<String> {
        found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let seen = std::collections::HashSet::from([ids[1].clone()]);
    let (found, _) = runs.entries_unseen(&seen, "").unwrap();
    assert_eq!(names(found), [ids[2].clone(), ids[0].clone()]);
    let (found, _) = runs.entries_unseen(&seen, &ids[0]).unwrap();
    assert_eq!(names(found), [ids[2].clone()]);
    // The catalog a listing writes is not taken for a run either.
    store.ls(&[]);
    let (found, warnings) = runs.entries_unseen(&Default::default(), "").unwrap();
    assert_eq!((names(found).len(), warnings), (3, Vec::<String>::new()));
}
