//! The Slurm runtime against the Slurm commands a harness would use
//! without it, on the 3-node cluster of `assets/slurm/cluster.sh`
//! (`SLURM_CONF=/run/subrt-slurm/slurm.conf`), measured in the same run:
//!
//! - a step: `execute("true")` in a session against `srun --jobid=J
//!   --overlap true` in the same allocation;
//! - a session: spawn, `execute("true")` and cleanup against `salloc`
//!   running one `srun true`;
//! - a batch of 300 submissions of `true` (`-j 6`, recorded as by default,
//!   allocations handed on from one submission to the next) against `xargs
//!   -P 6` of `srun -n1 true`, and of `salloc srun true` (an allocation and
//!   a step per submission); and the same batch with a job per submission
//!   (`reuse_allocations = false`).
//!
//! The batch rounds are noisy by the cluster's own doing: now and then the
//! controller does not start a new job at its submission but in its next
//! scheduling pass (each of the six at once; `sched: Allocate` in its log
//! instead of at the request), and that round takes a second or more
//! longer whichever way runs it. Each round prints how many of its jobs
//! were started so; the rows are medians of five rounds. A round in which
//! something failed is timed all the same and prints what failed; the
//! workspace is then kept, with the batch's store, for a look.
//!
//! Each batch round records into a store of its own: deleting the last
//! one just before made every file of the next cost an inode search on a
//! filesystem without a journal (ext4 skips inodes deleted in the last
//! minutes there), which is not what a batch costs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use subrt::runtime::{ExecRequest, LaunchSpec, spawn_runtime};
use subrt::spec::{EnvironmentSpec, SlurmConfig};

const ROUNDS: usize = 9;
/// Rounds of the batch comparison.
const BATCH_ROUNDS: usize = 5;
const SUBMISSIONS: usize = 300;
const JOBS: usize = 6;

fn median(mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS).map(|_| f()).collect();
    times.sort();
    times[ROUNDS / 2]
}

fn timed(command: &mut Command) -> Duration {
    let (time, failed) = timed_run(command);
    if let Some(said) = failed {
        panic!("{command:?} failed: {said}");
    }
    time
}

/// How long `command` took, and what it printed last if it failed.
fn timed_run(command: &mut Command) -> (Duration, Option<String>) {
    let start = Instant::now();
    let output = command.stderr(Stdio::inherit()).output().unwrap();
    let time = start.elapsed();
    let failed = (!output.status.success()).then(|| {
        let said = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = said.lines().collect();
        lines[lines.len().saturating_sub(3)..].join("\n")
    });
    (time, failed)
}

/// Jobs of the test cluster started by the controller's scheduling pass
/// rather than at their submission, so far (its log's lines), if its log
/// can be read.
fn deferred_starts() -> Option<usize> {
    let log = std::fs::read_to_string("/var/log/subrt-slurm/slurmctld.log").ok()?;
    Some(
        log.lines()
            .filter(|line| {
                line.contains("sched: Allocate JobId") || line.contains("backfill: _start_job")
            })
            .count(),
    )
}

/// A timed round and the jobs the controller started late in it (`None`
/// when its log cannot be read).
struct Round {
    time: Duration,
    late: Option<usize>,
}

/// `timed`, printing the time and the jobs started late in it. A round
/// in which something failed still ran everything: it is timed, and what
/// failed is printed (a batch's summary, with the run to look at) and
/// counted in `failures`.
fn round(name: &str, command: &mut Command, failures: &mut usize) -> Round {
    let before = deferred_starts();
    let (time, failed) = timed_run(command);
    let late = before.zip(deferred_starts()).map(|(a, b)| b - a);
    let shown = late.map_or_else(|| "?".to_owned(), |late| late.to_string());
    println!(
        "  round: {name:<14} {:>8.1} ms  jobs started late: {shown}",
        time.as_secs_f64() * 1e3
    );
    if let Some(said) = failed {
        println!("    failed:\n{said}");
        *failures += 1;
    }
    Round { time, late }
}

/// The median time of `rounds`, and of those in which no job started late
/// (with how many there were), when there are such rounds.
fn medians(rounds: &[Round]) -> (Duration, Option<(Duration, usize)>) {
    // The middle one, or the mean of the two in the middle.
    let middle = |mut times: Vec<Duration>| {
        times.sort();
        let half = times.len() / 2;
        match times.len() % 2 {
            1 => times[half],
            _ => (times[half - 1] + times[half]) / 2,
        }
    };
    let all = middle(rounds.iter().map(|r| r.time).collect());
    let clean: Vec<Duration> = rounds
        .iter()
        .filter(|r| r.late == Some(0))
        .map(|r| r.time)
        .collect();
    let count = clean.len();
    (all, (count > 0).then(|| (middle(clean), count)))
}

fn row(name: &str, baseline: Duration, measured: Duration) {
    println!(
        "{name:<52} baseline {:>8.1} ms  subrt {:>8.1} ms  subrt/baseline {:.2}",
        baseline.as_secs_f64() * 1e3,
        measured.as_secs_f64() * 1e3,
        measured.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn main() {
    let conf = std::env::var("SLURM_CONF").unwrap_or_default();
    assert!(
        conf == "/run/subrt-slurm/slurm.conf",
        "run with SLURM_CONF=/run/subrt-slurm/slurm.conf after assets/slurm/cluster.sh up"
    );
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // On a filesystem the nodes share: this machine's.
    let workspace = tempfile::tempdir().unwrap();
    let mut spec = EnvironmentSpec::local("bench-slurm");
    spec.kind = "slurm".into();
    spec.slurm = Some(SlurmConfig::default());
    let launch = || LaunchSpec::new(spec.clone(), workspace.path());
    println!("median of {ROUNDS}; subrt/baseline below 1: subrt is faster\n");

    // A step.
    let runtime = tokio.block_on(spawn_runtime(launch())).unwrap();
    let job = runtime.info().slurm_job.expect("a Slurm session has a job");
    // A step of `srun` in the session's job, and one of subrt's.
    let steps = || {
        let srun = median(|| {
            timed(Command::new("srun").args(["--jobid", &job.job_id, "--overlap", "-n1", "true"]))
        });
        let subrt = median(|| {
            let start = Instant::now();
            let result = tokio
                .block_on(runtime.execute(ExecRequest::new("true")))
                .unwrap();
            assert_eq!(result.exit_code, 0, "{result:?}");
            start.elapsed()
        });
        (srun, subrt)
    };
    let (srun_step, subrt_step) = steps();
    row(
        "a step: execute(true) vs srun --jobid=J --overlap true",
        srun_step,
        subrt_step,
    );

    // The same from a process that holds 2 GiB, as a harness with a model
    // or a dataset loaded does: a fork of it per step copies its page
    // tables, and its next writes fault on every page.
    let held = vec![1u8; 2 << 30];
    std::hint::black_box(&held);
    let (srun_step, subrt_step) = steps();
    drop(held);
    tokio.block_on(runtime.cleanup()).unwrap();
    row(
        "the same from a process holding 2 GiB",
        srun_step,
        subrt_step,
    );

    // A session.
    let salloc =
        median(|| timed(Command::new("salloc").args(["--quiet", "-n1", "srun", "-n1", "true"])));
    let session = median(|| {
        let start = Instant::now();
        tokio.block_on(async {
            let runtime = spawn_runtime(launch()).await.unwrap();
            let result = runtime.execute(ExecRequest::new("true")).await.unwrap();
            assert_eq!(result.exit_code, 0, "{result:?}");
            runtime.cleanup().await.unwrap();
        });
        start.elapsed()
    });
    row(
        "a session: spawn, execute(true), cleanup vs salloc srun true",
        salloc,
        session,
    );

    // A batch over the cluster, recorded in a store of its own.
    let dir = workspace.path();
    std::fs::write(
        dir.join("config.toml"),
        "[[environments]]\nname = \"slurm\"\ntype = \"slurm\"\n\
         [[environments]]\nname = \"slurm-own-jobs\"\ntype = \"slurm\"\n\
         slurm = { reuse_allocations = false }\n",
    )
    .unwrap();
    let mut text = String::from("environment = \"slurm\"\n");
    for i in 0..SUBMISSIONS {
        text +=
            &format!("[[submissions]]\nid = \"s{i}\"\nworkdir = \".\"\ncommands = [\"true\"]\n");
    }
    std::fs::write(dir.join("batch.toml"), text).unwrap();
    // BATCH_ROUNDS rounds, the three ways in turn (one round alone swung
    // from 1.05 to 1.39 between two runs on this shared cluster); medians.
    let (mut xargs, mut batch, mut xargs_salloc) = (Vec::new(), Vec::new(), Vec::new());
    let mut own_jobs = Vec::new();
    // `subrt batch` in `environment`, recording into a store of its own.
    let subrt_batch = |store: &str, environment: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_subrt"));
        command
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("SUBRT_STORE", dir.join(store))
            .current_dir(dir)
            .args(["batch", "-j", &JOBS.to_string(), "--env", environment])
            .arg(Path::new("batch.toml"));
        command
    };
    let mut failures = 0;
    for n in 0..BATCH_ROUNDS {
        xargs.push(round(
            "xargs srun",
            Command::new("sh").arg("-c").arg(format!(
                "seq {SUBMISSIONS} | xargs -P {JOBS} -I{{}} srun -n1 true 2>/dev/null"
            )),
            &mut failures,
        ));
        batch.push(round(
            "subrt batch",
            &mut subrt_batch(&format!("runs-{n}"), "slurm"),
            &mut failures,
        ));
        // The same batch with a job per submission (allocations not handed
        // on: what every batch cost before).
        own_jobs.push(round(
            "subrt batch, a job each",
            &mut subrt_batch(&format!("runs-own-{n}"), "slurm-own-jobs"),
            &mut failures,
        ));
        // What a session per submission costs by construction: an
        // allocation and a step in it, as a batch's session is.
        xargs_salloc.push(round(
            "xargs salloc",
            Command::new("sh").arg("-c").arg(format!(
                "seq {SUBMISSIONS} | xargs -P {JOBS} -I{{}} salloc --quiet -n1 srun -n1 true"
            )),
            &mut failures,
        ));
    }
    let (xargs, batch, xargs_salloc) = (medians(&xargs), medians(&batch), medians(&xargs_salloc));
    let own_jobs = medians(&own_jobs);
    row(
        &format!("{SUBMISSIONS} submissions: subrt batch -j {JOBS} vs xargs srun"),
        xargs.0,
        batch.0,
    );
    row(
        &format!("{SUBMISSIONS} submissions: subrt batch -j {JOBS} vs xargs salloc srun"),
        xargs_salloc.0,
        batch.0,
    );
    row(
        &format!("{SUBMISSIONS} submissions, a job each (reuse_allocations = false) vs xargs srun"),
        xargs.0,
        own_jobs.0,
    );
    row("  allocations handed on vs a job each", own_jobs.0, batch.0);
    // The controller now and then starts jobs in its next pass, whoever
    // asks (BENCHMARKS.md): the same, over the rounds it did not.
    if batch.1.is_none() {
        println!("  (every batch round had jobs started late: no median without them)");
    }
    if let (Some(base), Some(subrt)) = (xargs.1, batch.1) {
        row(
            &format!(
                "  rounds without late starts ({} and {} of {BATCH_ROUNDS}): vs xargs srun",
                base.1, subrt.1
            ),
            base.0,
            subrt.0,
        );
    }
    if let (Some(base), Some(subrt)) = (xargs_salloc.1, batch.1) {
        row(
            &format!(
                "  rounds without late starts ({} and {} of {BATCH_ROUNDS}): vs xargs salloc srun",
                base.1, subrt.1
            ),
            base.0,
            subrt.0,
        );
    }
    if failures > 0 {
        // Kept for a look at the runs named above.
        let kept = workspace.keep();
        println!(
            "{failures} round(s) had a failure; their stores are in {}",
            kept.display()
        );
    }
}
