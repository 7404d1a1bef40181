//! Finished runs written straight into a store's folder, as subrt writes
//! them (format version 2), for benches that need a big store fast.

use std::path::Path;

/// Run number `n` (id `01JB` and `n`, so newer numbers are newer runs):
/// one command, `stdout_len` bytes of stdout (a sparse file).
pub fn make_run(store: &Path, n: usize, stdout_len: u64, max_run_bytes: u64) {
    let id = format!("01JB{n:022}");
    let dir = store.join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let header = format!(
        r#"{{"format":"subrt-runlog","version":2,"run_id":"{id}","started_at":"2026-12-01T12:00:00Z","subrt_version":"bench","environment":{{"name":"local","type":"local"}},"working_dir":"/","owner":{{"host":"elsewhere","pid":1,"start_time":null}},"max_run_bytes":{max_run_bytes}}}"#
    );
    let lines = [
        header,
        format!(
            r#"{{"seq":1,"t":10,"c":1,"e":"cmd","command":"python3 sub{n}.py","timeout":null}}"#
        ),
        format!(r#"{{"seq":2,"t":20,"c":1,"e":"out","s":"out","p":"cmd","o":0,"n":{stdout_len}}}"#),
        format!(
            r#"{{"seq":3,"t":50,"c":1,"e":"exit","code":0,"signal":null,"timed_out":false,"killed":false,"out":{stdout_len},"err":0}}"#
        ),
        format!(
            r#"{{"seq":4,"t":60,"c":0,"e":"end","status":"exited","exit":0,"out":{stdout_len},"err":0,"commands":1,"busy":40}}"#
        ),
    ];
    std::fs::write(dir.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
    let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
    stdout.set_len(stdout_len).unwrap();
    std::fs::File::create(dir.join("stderr")).unwrap();
}
