//! What a sandbox costs, measured in one run beside the same calls on a
//! plain local session (the baseline: a PID namespace, no isolation) and
//! in a Docker container: session start (spawn; cleanup timed apart) and
//! `execute("true")` in a running session. Needs root; Docker when its
//! daemon answers. Interleaved rounds, medians. Then the same without root:
//! the bench runs itself again as uid 1000 (through `setpriv`), where the
//! sandbox is in a user namespace of its own and the plain local session
//! is a process group, and there also times a command followed by a write
//! to each page of 512 MiB the process holds (a harness's work between
//! commands); twice, the second time with the forked helper asked for
//! (`SUBRT_SANDBOX_HELPER=fork`, what a kernel that refuses a helper
//! sharing subrt's memory its user namespace gets).

#[path = "../tests/common/docker.rs"]
#[allow(dead_code)]
mod test_image;

use std::time::{Duration, Instant};

use subrt::runtime::{ExecRequest, LaunchSpec, SubmissionRuntime, spawn_runtime};
use subrt::spec::{DockerConfig, EnvironmentSpec, Isolation, Limits};

const ROUNDS: usize = 21;
const CALLS: usize = 200;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Set in the run of this bench as uid 1000.
const ROOTLESS: &str = "SUBRT_BENCH_ROOTLESS";

fn main() {
    let rootless = std::env::var_os(ROOTLESS).is_some();
    if !rootless {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "sandboxes need root");
    }
    let local = EnvironmentSpec::local("bench-local");
    let mut sandbox = EnvironmentSpec::local("bench-sandbox");
    sandbox.local.isolation = Isolation::Sandbox;
    let mut unlimited = sandbox.clone();
    unlimited.limits = Limits::default();
    if rootless {
        sandbox.limits = Limits {
            pids: Some(256),
            ..Limits::default()
        };
        let specs = vec![
            ("local (process group)", local),
            ("sandbox", unlimited),
            ("sandbox + pids", sandbox),
        ];
        measure(&specs);
        measure_holding(&specs[..2]);
        return;
    }
    sandbox.limits = Limits {
        memory: Some("512m".into()),
        pids: Some(256),
        ..Limits::default()
    };
    let mut specs = vec![
        ("local (baseline)", local),
        ("sandbox", unlimited),
        ("sandbox + limits", sandbox),
    ];
    if let Some(image) = test_image::test_image() {
        let mut spec = EnvironmentSpec::local("bench-docker");
        spec.kind = "docker".into();
        spec.docker = Some(DockerConfig::new(image));
        specs.push(("docker", spec));
    }
    measure(&specs);
    for (heading, helper) in [
        ("a user namespace per sandbox", None),
        (
            "the same with the forked helper asked for",
            Some(("SUBRT_SANDBOX_HELPER", "fork")),
        ),
    ] {
        println!("\nas uid 1000 ({heading}):\n");
        let status = std::process::Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .env(ROOTLESS, "1")
            .env("HOME", "/tmp")
            .envs(helper)
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            println!("(could not run as uid 1000: {status:?})");
        }
    }
}

/// Bytes the process holds in [`measure_holding`].
const HELD: usize = 512 << 20;

/// `execute("true")`, then a write to each page of [`HELD`] bytes this
/// process holds, in a session of each spec: interleaved rounds of 20,
/// medians per command beside the first spec's.
fn measure_holding(specs: &[(&str, EnvironmentSpec)]) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let mut held = vec![1u8; HELD];
    let runtimes: Vec<Box<dyn SubmissionRuntime>> = specs
        .iter()
        .map(|(_, spec)| {
            let launch = LaunchSpec::new(spec.clone(), workspace.path());
            tokio.block_on(spawn_runtime(launch)).unwrap()
        })
        .collect();
    let mut times = vec![Vec::new(); specs.len()];
    for _ in 0..ROUNDS {
        for (i, runtime) in runtimes.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..20 {
                let result = tokio
                    .block_on(runtime.execute(ExecRequest::new("true")))
                    .unwrap();
                assert!(result.success(), "{}: {result:?}", specs[i].0);
                for page in held.chunks_mut(4096) {
                    page[0] = page[0].wrapping_add(1);
                }
                std::hint::black_box(&held);
            }
            times[i].push(start.elapsed() / 20);
        }
    }
    for runtime in &runtimes {
        tokio.block_on(runtime.cleanup()).unwrap();
    }
    println!(
        "\nholding {} MiB, written after each command (medians of {ROUNDS} rounds of 20):\n",
        HELD >> 20
    );
    let base = median(times[0].clone());
    for (i, (name, _)) in specs.iter().enumerate() {
        let time = median(times[i].clone());
        println!(
            "{name:<22} execute + write {:>8.3} ms   vs {} {:.2}x",
            ms(time),
            specs[0].0,
            time.as_secs_f64() / base.as_secs_f64()
        );
    }
}

/// Starts, cleans up and runs `true` in sessions of each spec, interleaved,
/// and prints the medians beside the first spec's (the baseline).
fn measure(specs: &[(&str, EnvironmentSpec)]) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let spawn = |spec: &EnvironmentSpec| {
        let launch = LaunchSpec::new(spec.clone(), workspace.path());
        let start = Instant::now();
        let runtime = tokio.block_on(spawn_runtime(launch)).unwrap();
        (start.elapsed(), runtime)
    };
    let mut starts = vec![Vec::new(); specs.len()];
    let mut cleanups = vec![Vec::new(); specs.len()];
    for _ in 0..ROUNDS {
        for (i, (_, spec)) in specs.iter().enumerate() {
            let (took, runtime) = spawn(spec);
            starts[i].push(took);
            let start = Instant::now();
            tokio.block_on(runtime.cleanup()).unwrap();
            cleanups[i].push(start.elapsed());
        }
    }
    let runtimes: Vec<Box<dyn SubmissionRuntime>> = specs.iter().map(|(_, s)| spawn(s).1).collect();
    let mut calls = vec![Vec::new(); specs.len()];
    for _ in 0..ROUNDS {
        for (i, runtime) in runtimes.iter().enumerate() {
            let calls_here = if specs[i].0 == "docker" {
                CALLS / 20
            } else {
                CALLS
            };
            let start = Instant::now();
            for _ in 0..calls_here {
                let result = tokio
                    .block_on(runtime.execute(ExecRequest::new("true")))
                    .unwrap();
                assert!(result.success(), "{}: {result:?}", specs[i].0);
            }
            calls[i].push(start.elapsed() / calls_here as u32);
        }
    }
    for runtime in &runtimes {
        tokio.block_on(runtime.cleanup()).unwrap();
    }
    println!(
        "medians of {ROUNDS} interleaved rounds ({CALLS} calls a round, {} on Docker)\n",
        CALLS / 20
    );
    println!(
        "{:<18} {:>12} {:>12} {:>16}",
        "", "start ms", "cleanup ms", "execute(true) ms"
    );
    let base_call = median(calls[0].clone());
    for (i, (name, _)) in specs.iter().enumerate() {
        let call = median(calls[i].clone());
        println!(
            "{name:<18} {:>12.2} {:>12.2} {:>16.3}   execute vs baseline {:.2}x",
            ms(median(starts[i].clone())),
            ms(median(cleanups[i].clone())),
            ms(call),
            call.as_secs_f64() / base_call.as_secs_f64()
        );
    }
}
