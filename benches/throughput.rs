//! Throughput and per-command cost of the local runtime, each against a
//! baseline measured in the same run. `cargo bench` prints a table; the
//! numbers of record are in BENCHMARKS.md.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use subrt::runtime::{ExecRequest, LaunchSpec, RuntimeEvent, SubmissionRuntime, spawn_runtime};
use subrt::spec::EnvironmentSpec;

const MOVE: &str = "1G";
const MOVE_BYTES: f64 = (1u64 << 30) as f64;
const ROUNDS: usize = 5;
const SPAWNS: usize = 300;

/// Median of `ROUNDS` timings of `f`.
fn median(mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS).map(|_| f()).collect();
    times.sort();
    times[ROUNDS / 2]
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn shell(script: &str) {
    let status = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

/// `execute("true")` in a `process-group` session (an unprivileged
/// user's default) from a process that holds 2 GiB, as a harness with a
/// model or a dataset loaded does, against `sh -c true` spawned by std from
/// the same process.
fn process_group_from_a_big_process(tokio: &tokio::runtime::Runtime) {
    const COMMANDS: usize = 50;
    let mut spec = EnvironmentSpec::local("bench-process-group");
    spec.local.containment = subrt::spec::LocalContainment::ProcessGroup;
    let launch = LaunchSpec::new(spec, std::env::temp_dir());
    let runtime = tokio.block_on(spawn_runtime(launch)).unwrap();
    let held = vec![1u8; 2 << 30];
    std::hint::black_box(&held);
    println!(
        "\nthe same from a process holding 2 GiB, containment = \"process-group\" ({COMMANDS} commands, median of {ROUNDS})\n"
    );
    let spawn = median(|| {
        timed(|| {
            for _ in 0..COMMANDS {
                let status = Command::new("sh").args(["-c", "true"]).status().unwrap();
                assert!(status.success());
            }
        })
    });
    let execute = median(|| {
        timed(|| {
            tokio.block_on(async {
                for _ in 0..COMMANDS {
                    let result = runtime.execute(ExecRequest::new("true")).await.unwrap();
                    assert_eq!(result.exit_code, 0);
                }
            })
        })
    });
    drop(held);
    tokio.block_on(runtime.cleanup()).unwrap();
    row(
        "execute(true) vs spawn, 2 GiB held",
        spawn,
        execute,
        "k/s ",
        COMMANDS as f64 / 1000.0,
    );
}

fn row(name: &str, baseline: Duration, measured: Duration, per: &str, unit: f64) {
    println!(
        "{name:<34} baseline {:>9.3} {per}  subrt {:>9.3} {per}  ratio {:.2}",
        unit / baseline.as_secs_f64(),
        unit / measured.as_secs_f64(),
        baseline.as_secs_f64() / measured.as_secs_f64(),
    );
}

async fn stream_all(runtime: &dyn SubmissionRuntime, command: &str) -> u64 {
    let request = ExecRequest::new(command).capture_limit(0);
    let mut events = runtime.stream(request).await.unwrap();
    let mut bytes = 0;
    while let Some(event) = events.next_event().await {
        if let RuntimeEvent::Output(chunk) = event {
            bytes += chunk.data.len() as u64;
        }
    }
    bytes
}

/// A stream as the Python package reads one: the runtime's one worker
/// thread reads the pipes, and the events are taken on another thread
/// (here the main one, waiting on each with `block_on`).
fn stream_to_another_thread() -> Duration {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let launch = LaunchSpec::new(EnvironmentSpec::local("bench"), std::env::temp_dir());
    let runtime = tokio.block_on(spawn_runtime(launch)).unwrap();
    let moved = median(|| {
        timed(|| {
            let request = ExecRequest::new(format!("head -c {MOVE} /dev/zero")).capture_limit(0);
            let mut events = tokio.block_on(runtime.stream(request)).unwrap();
            let mut bytes = 0;
            while let Some(event) = tokio.block_on(events.next_event()) {
                if let RuntimeEvent::Output(chunk) = event {
                    bytes += chunk.data.len() as u64;
                }
            }
            assert_eq!(bytes as f64, MOVE_BYTES);
        })
    });
    tokio.block_on(runtime.cleanup()).unwrap();
    moved
}

fn main() {
    // Current-thread, as the CLI uses: on two cores a multi-threaded runtime
    // competes with the command for the CPU (see BENCHMARKS.md).
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let launch = LaunchSpec::new(EnvironmentSpec::local("bench"), std::env::temp_dir());
    let runtime = tokio.block_on(spawn_runtime(launch)).unwrap();
    let gb_per_s = MOVE_BYTES / 1e9;

    println!("moving {MOVE} of zeros (GB/s, median of {ROUNDS}); ratio = subrt / baseline speed\n");
    let pipe = median(|| timed(|| shell(&format!("head -c {MOVE} /dev/zero | cat >/dev/null"))));
    let state = std::env::temp_dir().join(format!("subrt-bench-{}", std::process::id()));
    let subrt_run = |extra: &[&str]| {
        let status = Command::new(env!("CARGO_BIN_EXE_subrt"))
            .arg("run")
            .args(extra)
            .args(["--", &format!("head -c {MOVE} /dev/zero")])
            .current_dir(std::env::temp_dir())
            .env("XDG_STATE_HOME", &state)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let _ = std::fs::remove_dir_all(&state);
    };
    let unrecorded = median(|| timed(|| subrt_run(&["--no-log"])));
    row(
        "subrt run --no-log vs raw pipe",
        pipe,
        unrecorded,
        "GB/s",
        gb_per_s,
    );
    let recorded = median(|| timed(|| subrt_run(&[])));
    row(
        "subrt run (recorded) vs raw pipe",
        pipe,
        recorded,
        "GB/s",
        gb_per_s,
    );
    recorded_contents(&state, gb_per_s);
    let library = median(|| {
        timed(|| {
            let command = format!("head -c {MOVE} /dev/zero");
            let bytes = tokio.block_on(stream_all(runtime.as_ref(), &command));
            assert_eq!(bytes as f64, MOVE_BYTES);
        })
    });
    row("stream() vs raw pipe", pipe, library, "GB/s", gb_per_s);
    let across = stream_to_another_thread();
    row(
        "stream() read on another thread",
        pipe,
        across,
        "GB/s",
        gb_per_s,
    );

    println!("\nrunning `true` {SPAWNS} times (commands/s, median of {ROUNDS})\n");
    let spawn = median(|| {
        timed(|| {
            for _ in 0..SPAWNS {
                let status = Command::new("sh").args(["-c", "true"]).status().unwrap();
                assert!(status.success());
            }
        })
    });
    let execute = median(|| {
        timed(|| {
            tokio.block_on(async {
                for _ in 0..SPAWNS {
                    let result = runtime.execute(ExecRequest::new("true")).await.unwrap();
                    assert_eq!(result.exit_code, 0);
                }
            })
        })
    });
    row(
        "execute(true) vs spawn sh -c true",
        spawn,
        execute,
        "k/s ",
        SPAWNS as f64 / 1000.0,
    );
    println!(
        "\nper command: sh -c true {:.2} ms, execute(true) {:.2} ms",
        spawn.as_secs_f64() * 1000.0 / SPAWNS as f64,
        execute.as_secs_f64() * 1000.0 / SPAWNS as f64
    );
    tokio.block_on(runtime.cleanup()).unwrap();
    process_group_from_a_big_process(&tokio);

    println!("\nmaking and cleaning up a local session {SESSIONS} times (median of {ROUNDS})\n");
    let sessions = median(|| {
        timed(|| {
            tokio.block_on(async {
                for _ in 0..SESSIONS {
                    let launch =
                        LaunchSpec::new(EnvironmentSpec::local("bench"), std::env::temp_dir());
                    let session = spawn_runtime(launch).await.unwrap();
                    session.cleanup().await.unwrap();
                }
            })
        })
    });
    let per_session = sessions.as_secs_f64() * 1000.0 / SESSIONS as f64;
    println!(
        "spawn_runtime + cleanup: {per_session:.2} ms per session ({}), sh -c true {:.2} ms",
        runtime_containment(),
        spawn.as_secs_f64() * 1000.0 / SPAWNS as f64,
    );
}

/// `subrt run`, recorded (the default), of 1 GiB of NULs, random bytes and
/// text lines, each against the raw pipe of the same bytes; and the bytes
/// the run log takes on disk for each.
fn recorded_contents(state: &std::path::Path, gb_per_s: f64) {
    let random = std::env::temp_dir().join(format!("subrt-bench-random-{}", std::process::id()));
    shell(&format!(
        "head -c {MOVE} /dev/urandom > {}",
        random.display()
    ));
    let sources = [
        ("NULs", format!("head -c {MOVE} /dev/zero")),
        ("random bytes", format!("cat {}", random.display())),
        (
            "text lines",
            format!("yes 'a line of text, as a test prints it' | head -c {MOVE}"),
        ),
    ];
    println!();
    for (what, source) in sources {
        let pipe = median(|| timed(|| shell(&format!("{source} | cat >/dev/null"))));
        let mut on_disk = 0;
        let recorded = median(|| {
            let _ = std::fs::remove_dir_all(state);
            let took = timed(|| {
                let status = Command::new(env!("CARGO_BIN_EXE_subrt"))
                    .args(["run", "--", &source])
                    .current_dir(std::env::temp_dir())
                    .env("XDG_STATE_HOME", state)
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success());
            });
            on_disk = du(&state.join("subrt/runs"));
            took
        });
        let _ = std::fs::remove_dir_all(state);
        row(
            &format!("recorded run of {what} vs pipe"),
            pipe,
            recorded,
            "GB/s",
            gb_per_s,
        );
        println!(
            "{:<34} {:.4}x the output on disk",
            "",
            on_disk as f64 / MOVE_BYTES
        );
    }
    let _ = std::fs::remove_file(random);
}

/// Bytes the files under `dir` take (allocated blocks).
fn du(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                du(&e.path())
            } else {
                meta.blocks() * 512
            }
        })
        .sum()
}

/// Sessions made and cleaned up per round.
const SESSIONS: usize = 100;

fn runtime_containment() -> String {
    match subrt::runtime::pid_namespaces() {
        Ok(()) => "pid-namespace".into(),
        Err(reason) => format!("process-group: {reason}"),
    }
}
