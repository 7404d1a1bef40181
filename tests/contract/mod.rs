//! The runtime contract of DESIGN.md as test bodies, shared by every runtime.
//!
//! A runtime's test file implements [`Target`] and calls
//! `contract_tests!(target_expression)`, which makes one `#[tokio::test]` per
//! guarantee.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use subrt::runtime::{
    ExecRequest, FileError, KilledBy, Phase, RuntimeError, RuntimeEvent, RuntimeResult,
    SetupFailure, StreamKind, SubmissionRuntime,
};

/// A runtime under test.
pub trait Target: Sync {
    /// A fresh runtime whose environment has these setup commands.
    fn runtime(&self, setup: &[&str]) -> impl Future<Output = Arc<dyn SubmissionRuntime>> + Send;

    /// Whether a live process whose command line contains `needle` runs
    /// where `runtime` runs its commands.
    fn alive(
        &self,
        runtime: &Arc<dyn SubmissionRuntime>,
        needle: &str,
    ) -> impl Future<Output = bool> + Send;
}

/// Every event of `request`, and when each arrived since the call.
pub async fn collect(
    runtime: &Arc<dyn SubmissionRuntime>,
    request: ExecRequest,
) -> Vec<(Duration, RuntimeEvent)> {
    let start = Instant::now();
    let mut stream = runtime.stream(request).await.expect("stream starts");
    let mut events = Vec::new();
    while let Some(event) = stream.next_event().await {
        events.push((start.elapsed(), event));
    }
    events
}

/// The bytes of one stream and phase, concatenated.
pub fn bytes_of(events: &[(Duration, RuntimeEvent)], stream: StreamKind, phase: Phase) -> Vec<u8> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            RuntimeEvent::Output(c) if c.stream == stream && c.phase == phase => Some(&c.data[..]),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

/// The result that ends `events`, checking that it is the last event.
pub fn finished(events: &[(Duration, RuntimeEvent)]) -> (Duration, RuntimeResult) {
    match events.last() {
        Some((at, RuntimeEvent::Finished(result))) => (*at, (**result).clone()),
        other => panic!("the last event is not Finished: {other:?}"),
    }
}

async fn eventually_gone<T: Target>(
    target: &T,
    runtime: &Arc<dyn SubmissionRuntime>,
    needle: &str,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if !target.alive(runtime, needle).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

pub async fn stdout_and_stderr_are_separate_and_ordered<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let events = collect(
        &rt,
        ExecRequest::new("for i in 1 2 3; do echo out$i; echo err$i >&2; done"),
    )
    .await;
    assert_eq!(
        bytes_of(&events, StreamKind::Stdout, Phase::Command),
        b"out1\nout2\nout3\n"
    );
    assert_eq!(
        bytes_of(&events, StreamKind::Stderr, Phase::Command),
        b"err1\nerr2\nerr3\n"
    );
    let (_, result) = finished(&events);
    assert_eq!(&result.stdout.data[..], b"out1\nout2\nout3\n");
    assert_eq!(&result.stderr.data[..], b"err1\nerr2\nerr3\n");
    assert_eq!(result.exit_code, 0);
    rt.cleanup().await.unwrap();
}

pub async fn output_arrives_while_the_command_runs<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let events = collect(&rt, ExecRequest::new("echo first; sleep 2; echo second")).await;
    let first = events
        .iter()
        .find_map(|(at, e)| match e {
            RuntimeEvent::Output(c) if c.data.starts_with(b"first") => Some(*at),
            _ => None,
        })
        .expect("`first` was printed");
    let (end, _) = finished(&events);
    assert!(
        end >= Duration::from_secs(2),
        "the command sleeps 2 s, ended at {end:?}"
    );
    assert!(
        first < Duration::from_millis(1500),
        "`first` arrived at {first:?}, after the sleep had mostly passed"
    );
    rt.cleanup().await.unwrap();
}

pub async fn bytes_arrive_intact<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    // Invalid UTF-8, NUL, and the euro sign (E2 82 AC) split over two writes.
    let command =
        r"printf 'a\377\376b\000c'; printf '\342\202'; sleep 0.2; printf '\254'; printf '\377' >&2";
    let events = collect(&rt, ExecRequest::new(command)).await;
    let expected = b"a\xff\xfeb\0c\xe2\x82\xac";
    assert_eq!(
        bytes_of(&events, StreamKind::Stdout, Phase::Command),
        expected
    );
    assert_eq!(
        bytes_of(&events, StreamKind::Stderr, Phase::Command),
        b"\xff"
    );
    let (_, result) = finished(&events);
    assert_eq!(&result.stdout.data[..], expected);
    assert_eq!(result.stdout.total_bytes, expected.len() as u64);
    rt.cleanup().await.unwrap();
}

pub async fn a_timeout_kills_the_whole_tree<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let n = crate::common::unique_sleep();
    let command = format!("sh -c 'sleep {n} & sleep {n}'");
    let events = collect(
        &rt,
        ExecRequest::new(command).timeout(Duration::from_secs(1)),
    )
    .await;
    let (end, result) = finished(&events);
    assert!(result.timed_out, "{result:?}");
    assert!(!result.killed, "a timeout is not a kill: {result:?}");
    assert!(
        result.elapsed >= Duration::from_secs(1),
        "{:?}",
        result.elapsed
    );
    assert!(
        end < Duration::from_secs(2),
        "Finished came {end:?} after the start"
    );
    assert!(
        eventually_gone(&target, &rt, &format!("sleep {n}")).await,
        "a `sleep {n}` survived the timeout"
    );
    rt.cleanup().await.unwrap();
}

pub async fn kill_from_another_task_ends_the_stream<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let n = crate::common::unique_sleep();
    let killer = {
        let rt = Arc::clone(&rt);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(rt.poll(), None, "poll() says None while the command runs");
            rt.kill().await.unwrap();
            rt.kill().await.unwrap(); // idempotent
        })
    };
    let events = collect(&rt, ExecRequest::new(format!("sleep {n}"))).await;
    killer.await.unwrap();
    let (end, result) = finished(&events);
    assert!(
        end < Duration::from_secs(3),
        "Finished came {end:?} after the start"
    );
    assert_eq!(result.signal, Some(9), "{result:?}");
    assert_eq!(result.exit_code, 137);
    assert!(result.killed && !result.timed_out, "{result:?}");
    assert_eq!(rt.poll(), Some(137));
    assert!(eventually_gone(&target, &rt, &format!("sleep {n}")).await);
    rt.cleanup().await.unwrap();
}

/// `cleanup` while a command runs ends it as a kill would: its result says
/// `killed`, so a harness can tell it from a command that failed.
pub async fn cleanup_during_a_command_ends_it_as_killed<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let n = crate::common::unique_sleep();
    let mut stream = rt
        .stream(ExecRequest::new(format!("echo started; sleep {n}")))
        .await
        .unwrap();
    let start = Instant::now();
    let result = loop {
        match stream
            .next_event()
            .await
            .expect("the stream ends with Finished")
        {
            RuntimeEvent::Output(c) if c.phase == Phase::Command => {
                let rt = Arc::clone(&rt);
                tokio::spawn(async move { rt.cleanup().await.unwrap() });
            }
            RuntimeEvent::Finished(result) => break *result,
            _ => {}
        }
    };
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "Finished came {:?} after the start",
        start.elapsed()
    );
    assert_eq!(result.signal, Some(9), "{result:?}");
    assert!(result.killed && !result.timed_out, "{result:?}");
    assert!(eventually_gone(&target, &rt, &format!("sleep {n}")).await);
}

pub async fn dropping_the_stream_kills_the_command<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let n = crate::common::unique_sleep();
    let mut stream = rt
        .stream(ExecRequest::new(format!("echo started; sleep {n}")))
        .await
        .unwrap();
    loop {
        match stream.next_event().await {
            Some(RuntimeEvent::Output(_)) => break,
            Some(RuntimeEvent::ProcessStarted { .. } | RuntimeEvent::Note(_)) => {}
            other => panic!("expected output, got {other:?}"),
        }
    }
    assert!(target.alive(&rt, &format!("sleep {n}")).await);
    drop(stream);
    assert!(
        eventually_gone(&target, &rt, &format!("sleep {n}")).await,
        "`sleep {n}` survived its stream"
    );
    rt.cleanup().await.unwrap();
}

pub async fn cleanup_kills_what_commands_left_running<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let n = crate::common::unique_sleep();
    let started = Instant::now();
    let result = rt
        .execute(ExecRequest::new(format!("sleep {n} >/dev/null 2>&1 &")))
        .await
        .unwrap();
    assert_eq!(result.exit_code, 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for the background sleep"
    );
    assert!(
        target.alive(&rt, &format!("sleep {n}")).await,
        "background processes outlive their command"
    );
    rt.cleanup().await.unwrap();
    rt.cleanup().await.unwrap(); // idempotent
    assert!(
        eventually_gone(&target, &rt, &format!("sleep {n}")).await,
        "cleanup left `sleep {n}`"
    );
    let after = rt.stream(ExecRequest::new("true")).await;
    assert!(matches!(after, Err(RuntimeError::CleanedUp)), "{after:?}");
}

pub async fn stdin_reaches_the_command<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let input = Bytes::from_static(b"hello\0world\xff\n");
    let result = rt
        .execute(ExecRequest::new("cat").stdin(input.clone()))
        .await
        .unwrap();
    assert_eq!(result.stdout.data, input);

    let events = collect(&rt, ExecRequest::new("cat; echo done").stdin(input.clone())).await;
    let mut expected = input.to_vec();
    expected.extend_from_slice(b"done\n");
    assert_eq!(
        bytes_of(&events, StreamKind::Stdout, Phase::Command),
        expected
    );

    // Without stdin the command reads end-of-file at once, not a terminal.
    let request = ExecRequest::new("cat; echo eof").timeout(Duration::from_secs(5));
    let result = rt.execute(request).await.unwrap();
    assert!(!result.timed_out, "cat waited for input that never comes");
    assert_eq!(&result.stdout.data[..], b"eof\n");
    rt.cleanup().await.unwrap();
}

pub async fn setup_runs_once_as_the_first_phase<T: Target>(target: T) {
    let rt = target
        .runtime(&["echo preparing; echo setup-warning >&2"])
        .await;
    let events = collect(&rt, ExecRequest::new("echo command")).await;
    assert!(
        matches!(&events[0].1, RuntimeEvent::SetupStarted { command } if command.starts_with("echo preparing")),
        "{:?}",
        events[0]
    );
    assert_eq!(
        bytes_of(&events, StreamKind::Stdout, Phase::Setup),
        b"preparing\n"
    );
    assert_eq!(
        bytes_of(&events, StreamKind::Stderr, Phase::Setup),
        b"setup-warning\n"
    );
    assert_eq!(
        bytes_of(&events, StreamKind::Stdout, Phase::Command),
        b"command\n"
    );
    let (_, result) = finished(&events);
    assert_eq!(&result.setup_stdout.data[..], b"preparing\n");
    assert_eq!(&result.setup_stderr.data[..], b"setup-warning\n");
    assert_eq!(
        &result.stdout.data[..],
        b"command\n",
        "no setup output in the command's"
    );

    let second = rt.execute(ExecRequest::new("echo again")).await.unwrap();
    assert_eq!(second.setup_stdout.total_bytes, 0, "setup ran twice");
    assert_eq!(&second.stdout.data[..], b"again\n");
    rt.cleanup().await.unwrap();
}

pub async fn a_failing_setup_command_stops_the_run<T: Target>(target: T) {
    let rt = target.runtime(&["echo one", "exit 3", "echo never"]).await;
    let result = rt
        .execute(ExecRequest::new("echo command-ran"))
        .await
        .unwrap();
    assert_eq!(
        result.setup_failure,
        Some(SetupFailure {
            command: "exit 3".into(),
            exit_code: 3
        })
    );
    assert_eq!(result.exit_code, 3);
    assert!(!result.success());
    assert_eq!(&result.setup_stdout.data[..], b"one\n");
    assert_eq!(
        result.stdout.total_bytes, 0,
        "the command ran after a failed setup"
    );
    rt.cleanup().await.unwrap();
}

pub async fn exit_codes_follow_the_shell_convention<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let result = rt.execute(ExecRequest::new("exit 7")).await.unwrap();
    assert_eq!((result.exit_code, result.signal), (7, None));
    assert_eq!(rt.poll(), Some(7));
    let result = rt.execute(ExecRequest::new("kill -TERM $$")).await.unwrap();
    assert_eq!((result.exit_code, result.signal), (143, Some(15)));
    rt.cleanup().await.unwrap();
}

/// Waits until the `started` of [`crate::common::escapes`] is printed, then a moment for
/// the double fork to finish.
async fn wait_started(stream: &mut subrt::runtime::EventStream) {
    loop {
        match stream.next_event().await {
            Some(RuntimeEvent::Output(c)) if c.data.starts_with(b"started") => break,
            Some(RuntimeEvent::Finished(r)) => panic!("finished early: {r:?}"),
            Some(_) => {}
            None => panic!("the stream ended before `started`"),
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn assert_all_gone<T: Target>(
    target: &T,
    runtime: &Arc<dyn SubmissionRuntime>,
    needles: &[String],
    after: &str,
) {
    for needle in needles {
        assert!(
            eventually_gone(target, runtime, needle).await,
            "`{needle}` survived {after}"
        );
    }
}

pub async fn nothing_escapes_a_timeout<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let (line, needles) = crate::common::escapes(false);
    let events = collect(&rt, ExecRequest::new(line).timeout(Duration::from_secs(1))).await;
    let (end, result) = finished(&events);
    assert!(result.timed_out, "{result:?}");
    assert!(
        end < Duration::from_secs(2),
        "Finished came {end:?} after the start"
    );
    assert_all_gone(&target, &rt, &needles, "the timeout").await;
    rt.cleanup().await.unwrap();
}

pub async fn nothing_escapes_a_kill<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let (line, needles) = crate::common::escapes(false);
    let mut stream = rt.stream(ExecRequest::new(line)).await.unwrap();
    wait_started(&mut stream).await;
    for needle in &needles {
        assert!(
            target.alive(&rt, needle).await,
            "`{needle}` runs before the kill"
        );
    }
    rt.kill().await.unwrap();
    let result = stream.finish().await.unwrap();
    assert!(result.killed, "{result:?}");
    assert_all_gone(&target, &rt, &needles, "kill()").await;
    rt.cleanup().await.unwrap();
}

pub async fn nothing_escapes_a_dropped_stream<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let (line, needles) = crate::common::escapes(false);
    let mut stream = rt.stream(ExecRequest::new(line)).await.unwrap();
    wait_started(&mut stream).await;
    drop(stream);
    assert_all_gone(&target, &rt, &needles, "dropping the stream").await;
    rt.cleanup().await.unwrap();
}

pub async fn nothing_escapes_cleanup<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let (line, needles) = crate::common::escapes(true);
    let result = rt.execute(ExecRequest::new(line)).await.unwrap();
    assert_eq!(result.exit_code, 0, "{result:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for needle in &needles {
        assert!(
            target.alive(&rt, needle).await,
            "`{needle}` outlives its command until cleanup"
        );
    }
    rt.cleanup().await.unwrap();
    assert_all_gone(&target, &rt, &needles, "cleanup()").await;
}

pub async fn a_large_stdin_arrives_whole<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    // Far more than a pipe holds: the command reads while it is written
    // (a stdin that is not blocking would fail its read with EAGAIN).
    let size = 12 << 20;
    let result = rt
        .execute(ExecRequest::new("sleep 0.2; wc -c").stdin(vec![b'a'; size]))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&result.stdout.data).trim(),
        size.to_string(),
        "{result:?}"
    );
    rt.cleanup().await.unwrap();
}

pub async fn commands_run_side_by_side_and_a_timeout_kills_only_its_own<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let server = rt
        .start(ExecRequest::new("echo up; sleep 31; true side-server"))
        .await
        .expect("a command starts");
    assert!(
        matches!(
            rt.stream(ExecRequest::new("true")).await,
            Err(RuntimeError::Busy)
        ),
        "the seed's one-at-a-time call waits for none: it is refused while another runs"
    );
    let started = Instant::now();
    let late = rt
        .start(ExecRequest::new("sleep 32; true side-late").timeout(Duration::from_secs(1)))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert!(late.timed_out, "{late:?}");
    assert_eq!(late.killed_by, Some(KilledBy::Timeout));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        eventually_gone(&target, &rt, "side-late").await,
        "the command that timed out is gone"
    );
    assert!(
        target.alive(&rt, "side-server").await,
        "a timeout of one command leaves the others running"
    );
    let beside = rt
        .start(ExecRequest::new("echo beside"))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(&beside.stdout.data[..], b"beside\n", "{beside:?}");
    assert_eq!(rt.poll(), None, "poll says a command still runs");
    server.kill();
    let server = server.finish().await.unwrap();
    assert_eq!(server.killed_by, Some(KilledBy::Kill), "{server:?}");
    assert_eq!(&server.stdout.data[..], b"up\n");
    assert!(
        eventually_gone(&target, &rt, "side-server").await,
        "a killed command is gone"
    );
    rt.cleanup().await.unwrap();
}

pub async fn argv_runs_without_a_shell_s_parsing<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let words = ["a b", "$HOME", "'q'", "`id`", ""];
    let mut argv = vec![
        "sh",
        "-c",
        "for w in \"$@\"; do printf '[%s]' \"$w\"; done",
        "sh",
    ];
    argv.extend(words);
    let result = rt.execute(ExecRequest::argv(argv)).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&result.stdout.data),
        "[a b][$HOME]['q'][`id`][]",
        "{result:?}"
    );
    // 1 MiB of arguments, in pieces under the kernel's 128 KiB a piece.
    let chunk = "x".repeat(64 * 1024);
    let mut argv = vec![
        "sh".to_owned(),
        "-c".into(),
        "printf %s \"$@\" | wc -c".into(),
        "sh".into(),
    ];
    argv.extend(std::iter::repeat_n(chunk, 16));
    let result = rt.execute(ExecRequest::argv(argv)).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&result.stdout.data).trim(),
        "1048576",
        "{result:?}"
    );
    rt.execute(ExecRequest::new("echo data > not-a-program"))
        .await
        .unwrap();
    let result = rt
        .execute(ExecRequest::argv(["./not-a-program"]))
        .await
        .unwrap();
    assert_eq!(result.exit_code, 126, "{result:?}");
    let stderr = String::from_utf8_lossy(&result.stderr.data).to_lowercase();
    assert!(stderr.contains("permission denied"), "{stderr}");
    let result = rt
        .execute(ExecRequest::argv(["no-such-program-here"]))
        .await
        .unwrap();
    assert_eq!(result.exit_code, 127, "{result:?}");
    rt.cleanup().await.unwrap();
}

pub async fn cwd_and_user_are_per_command<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let home = rt
        .execute(ExecRequest::new("pwd; mkdir -p sub/dir"))
        .await
        .unwrap();
    let home = String::from_utf8_lossy(&home.stdout.data).trim().to_owned();
    let pwd = |result: RuntimeResult| {
        String::from_utf8_lossy(&result.stdout.data)
            .trim()
            .to_owned()
    };
    let relative = rt
        .execute(ExecRequest::new("pwd").cwd("sub/dir"))
        .await
        .unwrap();
    assert_eq!(pwd(relative), format!("{home}/sub/dir"));
    let absolute = rt
        .execute(ExecRequest::new("pwd").cwd(format!("{home}/sub")))
        .await
        .unwrap();
    assert_eq!(pwd(absolute), format!("{home}/sub"));
    let after = rt.execute(ExecRequest::new("pwd")).await.unwrap();
    assert_eq!(pwd(after), home, "a command's cwd is its own");
    match rt.stream(ExecRequest::new("id").user("nonexistent")).await {
        Err(RuntimeError::User { user, reason }) => {
            assert_eq!(user, "nonexistent");
            assert!(reason.contains("no such user"), "{reason}");
        }
        other => panic!("a user that does not exist is an error: {other:?}"),
    }
    rt.cleanup().await.unwrap();
}

pub async fn files_are_read_and_written_in_the_session_s_view<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let data: Bytes = (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>().into();
    rt.write_file("made/on/the way.bin", data.clone())
        .await
        .unwrap();
    assert_eq!(
        rt.read_file("made/on/the way.bin", 1 << 20).await.unwrap(),
        data
    );
    let seen = rt
        .execute(ExecRequest::new("wc -c < 'made/on/the way.bin'"))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen.stdout.data).trim(),
        "70000",
        "a command sees it"
    );
    rt.write_file("made/on/the way.bin", Bytes::from_static(b"short"))
        .await
        .unwrap();
    assert_eq!(
        &rt.read_file("made/on/the way.bin", 100).await.unwrap()[..],
        b"short"
    );
    rt.write_file("empty", Bytes::new()).await.unwrap();
    assert!(rt.read_file("empty", 10).await.unwrap().is_empty());

    let home = rt.execute(ExecRequest::new("pwd")).await.unwrap();
    let home = String::from_utf8_lossy(&home.stdout.data).trim().to_owned();
    let absolute = format!("{home}/abs/olute.txt");
    rt.write_file(&absolute, Bytes::from_static(b"abs"))
        .await
        .unwrap();
    assert_eq!(
        &rt.read_file("abs/olute.txt", 10).await.unwrap()[..],
        b"abs"
    );

    match rt.read_file("nonexistent", 10).await {
        Err(FileError::NotFound { path }) => assert_eq!(path, "nonexistent"),
        other => panic!("not found: {other:?}"),
    }
    assert!(matches!(
        rt.read_file("made/on", 10).await,
        Err(FileError::IsADirectory { .. })
    ));
    assert!(matches!(
        rt.write_file("made/on", Bytes::from_static(b"x")).await,
        Err(FileError::IsADirectory { .. })
    ));
    match rt.read_file("made/on/the way.bin", 4).await {
        Err(FileError::TooLarge { size, limit, .. }) => assert_eq!((size, limit), (5, 4)),
        other => panic!("over the limit: {other:?}"),
    }
    rt.cleanup().await.unwrap();
    assert!(matches!(
        rt.read_file("empty", 10).await,
        Err(FileError::Runtime(RuntimeError::CleanedUp))
    ));
}

/// A background process that keeps writing to the command's pipes does not
/// hold its result back (the drain after the exit is bounded), and the
/// command's own output is all there.
pub async fn a_background_writer_does_not_hold_the_result<T: Target>(target: T) {
    let rt = target.runtime(&[]).await;
    let started = Instant::now();
    let request = ExecRequest::new(
        "(while :; do echo chatter; echo chatter >&2; sleep 0.01; done) & \
         head -c 300000 /dev/zero | tr '\\0' m; echo; echo fini",
    )
    .timeout(Duration::from_secs(30));
    let result = rt.execute(request).await.unwrap();
    assert!(!result.timed_out, "held until the timeout");
    assert_eq!(result.exit_code, 0, "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "held back {:?}",
        started.elapsed()
    );
    let ms = result.stdout.data.iter().filter(|&&b| b == b'm').count();
    assert_eq!(ms, 300_000, "the command's own output is whole");
    assert!(
        String::from_utf8_lossy(&result.stdout.data).contains("\nfini\n"),
        "{result:?}"
    );
    rt.cleanup().await.unwrap();
}

/// One `#[tokio::test]` per guarantee, for the target `$target`;
/// `@weak_containment`: all but the escapes and the setup's place as the
/// first event, for a session that says its containment is weak (process
/// groups: `setsid` leaves them, and a note comes first).
#[macro_export]
macro_rules! contract_tests {
    ($target:expr) => {
        $crate::contract_tests!(@each $target;
            setup_runs_once_as_the_first_phase,
            nothing_escapes_a_timeout,
            nothing_escapes_a_kill,
            nothing_escapes_a_dropped_stream,
            nothing_escapes_cleanup,
        );
        $crate::contract_tests!(@weak_containment $target);
    };
    (@weak_containment $target:expr) => {
        $crate::contract_tests!(@each $target;
            stdout_and_stderr_are_separate_and_ordered,
            output_arrives_while_the_command_runs,
            bytes_arrive_intact,
            a_timeout_kills_the_whole_tree,
            kill_from_another_task_ends_the_stream,
            dropping_the_stream_kills_the_command,
            cleanup_during_a_command_ends_it_as_killed,
            cleanup_kills_what_commands_left_running,
            stdin_reaches_the_command,
            a_failing_setup_command_stops_the_run,
            exit_codes_follow_the_shell_convention,
            a_large_stdin_arrives_whole,
            commands_run_side_by_side_and_a_timeout_kills_only_its_own,
            argv_runs_without_a_shell_s_parsing,
            cwd_and_user_are_per_command,
            files_are_read_and_written_in_the_session_s_view,
            a_background_writer_does_not_hold_the_result,
        );
    };
    (@each $target:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                contract::$name($target).await
            }
        )*
    };
}
