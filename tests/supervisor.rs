//! A recorded session driven the way the Python package and the inspect
//! provider drive it: commands side by side and file operations, every one
//! in the run log.

mod common;

use std::time::Duration;

use bytes::Bytes;
use subrt::runlog::{self, Body, FileOp, RunlogWriter, StoreLimits};
use subrt::runtime::{ExecRequest, KilledBy, LaunchSpec, RuntimeEvent, spawn_runtime};
use subrt::spec::EnvironmentSpec;
use subrt::supervisor::Supervisor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_side_by_side_and_file_operations_are_recorded() {
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let launch = LaunchSpec::new(EnvironmentSpec::local("local"), work.path());
    let runtime = spawn_runtime(launch.clone()).await.unwrap();
    let log = RunlogWriter::create(
        store.path(),
        StoreLimits::default(),
        &launch,
        &runtime.info(),
    )
    .unwrap();
    let dir = log.path().to_owned();
    let session = Supervisor::start_recorded(runtime, log);

    let queued = session.run(ExecRequest::new("echo queued")).await.unwrap();
    assert_eq!(&queued.stdout.data[..], b"queued\n");
    let mut server = session
        .start_command(ExecRequest::new("echo serving; sleep 30"))
        .await
        .unwrap();
    assert!(matches!(
        server.next_event().await,
        Some(RuntimeEvent::ProcessStarted { .. })
    ));
    session
        .write_file("in/put.txt", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    let beside = session
        .start_command(ExecRequest::argv(["cat", "in/put.txt"]))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(&beside.stdout.data[..], b"hello");
    assert!(session.read_file("missing", 10).await.is_err());
    // A reader that goes away kills its command; its end is recorded.
    drop(server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    session.cleanup().await.unwrap();

    let records: Vec<runlog::Record> = std::fs::read_to_string(dir.join(runlog::INDEX_FILE))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let commands: Vec<(u32, String)> = records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Cmd { command, .. } => Some((r.c, command.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        commands,
        [
            (1, "echo queued".to_owned()),
            (2, "echo serving; sleep 30".to_owned()),
            (3, "cat in/put.txt".to_owned()),
        ]
    );
    let server_exit = records
        .iter()
        .find_map(|r| (r.c == 2).then(|| r.body.outcome()).flatten())
        .expect("the dropped command's end is recorded");
    assert_eq!(server_exit.killed_by, Some(KilledBy::Kill));
    let files: Vec<(FileOp, String, u64, bool)> = records
        .iter()
        .filter_map(|r| match &r.body {
            Body::File {
                op,
                path,
                bytes,
                error,
            } => Some((*op, path.clone(), *bytes, error.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(
        files,
        [
            (FileOp::Write, "in/put.txt".to_owned(), 5, false),
            (FileOp::Read, "missing".to_owned(), 0, true)
        ]
    );
    assert!(
        matches!(
            records.last().map(|r| &r.body),
            Some(Body::End { commands: 3, .. })
        ),
        "the log is complete: {:?}",
        records.last()
    );
    // What `subrt ls` and the dashboard's details read.
    let (summary, _) = runlog::summarize(&dir).unwrap();
    assert_eq!(summary.commands, 3);
    assert_eq!(
        summary.files,
        runlog::FileCounts {
            read: 1,
            written: 1
        }
    );
    // The last command to end was the dropped one.
    assert_eq!(
        summary.outcome.and_then(|o| o.killed_by),
        Some(KilledBy::Kill)
    );
}
