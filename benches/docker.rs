//! Docker runtime costs against the docker CLI, measured in the same run:
//! a command through subrt (its agent, the default, and `docker exec` with
//! `docker.agent = false`) against `docker exec CID true`, and spawn plus
//! cleanup of a runtime against `docker run --rm IMAGE true`.

#[path = "../tests/common/docker.rs"]
#[allow(dead_code)]
mod test_image;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use subrt::runtime::{ExecRequest, LaunchSpec, spawn_runtime};
use subrt::spec::{DockerConfig, EnvironmentSpec};

const ROUNDS: usize = 15;

fn median(mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS).map(|_| f()).collect();
    times.sort();
    times[ROUNDS / 2]
}

fn docker_cli(args: &[&str]) -> Duration {
    let start = Instant::now();
    let status = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "docker {args:?}");
    start.elapsed()
}

fn row(name: &str, baseline: Duration, measured: Duration) {
    println!(
        "{name:<70} baseline {:>7.1} ms  subrt {:>7.1} ms  ratio {:.2}",
        baseline.as_secs_f64() * 1e3,
        measured.as_secs_f64() * 1e3,
        baseline.as_secs_f64() / measured.as_secs_f64()
    );
}

fn main() {
    let image = test_image::test_image().expect("the Docker daemon is needed for this bench");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let spec_with = |agent: bool| {
        let mut spec = EnvironmentSpec::local("bench");
        spec.kind = "docker".into();
        spec.docker = Some(DockerConfig {
            agent,
            ..DockerConfig::new(image)
        });
        spec
    };
    let launch = |agent: bool| LaunchSpec::new(spec_with(agent), workspace.path());

    println!("median of {ROUNDS}; ratio = baseline time / subrt time (above 1: subrt is faster)\n");
    for agent in [true, false] {
        let runtime = tokio.block_on(spawn_runtime(launch(agent))).unwrap();
        let path = runtime.info().commands_start.unwrap_or_default();
        let container = runtime.info().container_id.unwrap();
        let cli_exec = median(|| docker_cli(&["exec", &container, "true"]));
        let subrt_exec = median(|| {
            let start = Instant::now();
            let result = tokio
                .block_on(runtime.execute(ExecRequest::new("true")))
                .unwrap();
            assert_eq!(result.exit_code, 0);
            start.elapsed()
        });
        row(
            &format!("execute(true), {path} vs docker exec CID true"),
            cli_exec,
            subrt_exec,
        );
        tokio.block_on(runtime.cleanup()).unwrap();

        let cli_run = median(|| docker_cli(&["run", "--rm", "--network", "none", image, "true"]));
        let subrt_lifecycle = median(|| {
            let start = Instant::now();
            tokio.block_on(async {
                let runtime = spawn_runtime(launch(agent)).await.unwrap();
                runtime.cleanup().await.unwrap();
            });
            start.elapsed()
        });
        row(
            &format!("spawn+cleanup, {path} vs docker run --rm true"),
            cli_run,
            subrt_lifecycle,
        );
    }
}
