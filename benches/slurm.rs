//! The Slurm runtime against the Slurm commands a harness would use
//! without it, on the 3-node cluster of `assets/slurm/cluster.sh`
//! (`SLURM_CONF=/run/subrt-slurm/slurm.conf`), measured in the same run:
//!
//! - a step: `execute("true")` in a session against `srun --jobid=J
//!   --overlap true` in the same allocation;
//! - a session: spawn, `execute("true")` and cleanup against `salloc`
//!   running one `srun true`;
//! - a batch of 300 submissions of `true` (`-j 6`, recorded as by default)
//!   against `xargs -P 6` of `srun -n1 true`, and of `salloc srun true` (an
//!   allocation and a step per submission, as a session has).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use subrt::runtime::{ExecRequest, LaunchSpec, spawn_runtime};
use subrt::spec::{EnvironmentSpec, SlurmConfig};

const ROUNDS: usize = 9;
/// Rounds of the batch comparison.
const BATCH_ROUNDS: usize = 3;
const SUBMISSIONS: usize = 300;
const JOBS: usize = 6;

fn median(mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS).map(|_| f()).collect();
    times.sort();
    times[ROUNDS / 2]
}

fn timed(command: &mut Command) -> Duration {
    let start = Instant::now();
    let status = command.stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "{command:?}");
    start.elapsed()
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
    let srun_step = median(|| {
        timed(Command::new("srun").args(["--jobid", &job.job_id, "--overlap", "-n1", "true"]))
    });
    let subrt_step = median(|| {
        let start = Instant::now();
        let result = tokio
            .block_on(runtime.execute(ExecRequest::new("true")))
            .unwrap();
        assert_eq!(result.exit_code, 0, "{result:?}");
        start.elapsed()
    });
    tokio.block_on(runtime.cleanup()).unwrap();
    row(
        "a step: execute(true) vs srun --jobid=J --overlap true",
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
        "[[environments]]\nname = \"slurm\"\ntype = \"slurm\"\n",
    )
    .unwrap();
    let mut text = String::from("environment = \"slurm\"\n");
    for i in 0..SUBMISSIONS {
        text +=
            &format!("[[submissions]]\nid = \"s{i}\"\nworkdir = \".\"\ncommands = [\"true\"]\n");
    }
    std::fs::write(dir.join("batch.toml"), text).unwrap();
    // Three rounds, the three ways in turn (one round alone swung from 1.05
    // to 1.39 between two runs on this shared cluster); medians.
    let (mut xargs, mut batch, mut xargs_salloc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..BATCH_ROUNDS {
        xargs.push(timed(Command::new("sh").arg("-c").arg(format!(
            "seq {SUBMISSIONS} | xargs -P {JOBS} -I{{}} srun -n1 true 2>/dev/null"
        ))));
        let _ = std::fs::remove_dir_all(dir.join("runs"));
        batch.push(timed(
            Command::new(env!("CARGO_BIN_EXE_subrt"))
                .arg("--config")
                .arg(dir.join("config.toml"))
                .env("SUBRT_STORE", dir.join("runs"))
                .current_dir(dir)
                .args(["batch", "-j", &JOBS.to_string()])
                .arg(Path::new("batch.toml")),
        ));
        // What a session per submission costs by construction: an
        // allocation and a step in it, as a batch's session is.
        xargs_salloc.push(timed(Command::new("sh").arg("-c").arg(format!(
            "seq {SUBMISSIONS} | xargs -P {JOBS} -I{{}} salloc --quiet -n1 srun -n1 true"
        ))));
    }
    let middle = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (xargs, batch, xargs_salloc) = (middle(xargs), middle(batch), middle(xargs_salloc));
    row(
        &format!("{SUBMISSIONS} submissions: subrt batch -j {JOBS} vs xargs srun"),
        xargs,
        batch,
    );
    row(
        &format!("{SUBMISSIONS} submissions: subrt batch -j {JOBS} vs xargs salloc srun"),
        xargs_salloc,
        batch,
    );
}
