//! DockerRuntime against the real daemon: the shared contract, then what
//! only containers do (mounts, limits, labels, errors).

mod common;
mod contract;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::query_parameters::ListContainersOptionsBuilder;
use subrt::runtime::docker::connect;
use subrt::runtime::{ExecRequest, LaunchSpec, StaticAsset, SubmissionRuntime, spawn_runtime};
use subrt::spec::{DockerConfig, EnvironmentSpec, Mount, MountMode};

use common::docker::test_image;

fn spec(image: &str) -> EnvironmentSpec {
    let mut spec = EnvironmentSpec::local("docker-test");
    spec.kind = "docker".into();
    spec.docker = Some(DockerConfig::new(image));
    spec
}

/// A workspace folder that outlives the test's runtimes.
fn workspace() -> std::path::PathBuf {
    common::workspace()
}

struct Docker {
    image: &'static str,
    /// Commands through subrt's agent (the default), or `docker exec`.
    agent: bool,
    runs: Mutex<Vec<String>>,
}

impl Docker {
    fn new(agent: bool) -> Option<Self> {
        Some(Self {
            image: test_image()?,
            agent,
            runs: Mutex::new(Vec::new()),
        })
    }
}

impl contract::Target for Docker {
    async fn runtime(&self, setup: &[&str]) -> Arc<dyn SubmissionRuntime> {
        let mut spec = spec(self.image);
        spec.docker.as_mut().unwrap().agent = self.agent;
        spec.setup.commands = setup.iter().map(|s| s.to_string()).collect();
        let launch = LaunchSpec::new(spec, workspace());
        self.runs.lock().unwrap().push(launch.run_id.clone());
        let runtime = spawn_runtime(launch).await.unwrap();
        // The contract holds on the path asked for.
        let expected = if self.agent {
            "subrt-agent"
        } else {
            "docker exec (docker.agent = false)"
        };
        assert_eq!(runtime.info().commands_start.as_deref(), Some(expected));
        Arc::from(runtime)
    }

    /// Looks in every running container of the runs this target made, so a
    /// container that should have been killed is looked in too.
    async fn alive(&self, _: &Arc<dyn SubmissionRuntime>, needle: &str) -> bool {
        let docker = connect(None).await.unwrap();
        let runs = self.runs.lock().unwrap().clone();
        for run in runs {
            let filters = HashMap::from([("label", vec![format!("subrt.run={run}")])]);
            let options = ListContainersOptionsBuilder::default()
                .filters(&filters)
                .build();
            for container in docker.list_containers(Some(options)).await.unwrap() {
                let id = container.id.unwrap();
                let Ok(top) = docker
                    .top_processes(&id, None::<bollard::query_parameters::TopOptions>)
                    .await
                else {
                    continue;
                };
                let rows = top.processes.unwrap_or_default();
                if rows.iter().any(|row| row.join(" ").contains(needle)) {
                    return true;
                }
            }
        }
        false
    }
}

/// The default: commands through subrt's agent, the container's init.
mod through_the_agent {
    use super::*;
    contract_tests!(match Docker::new(true) {
        Some(docker) => docker,
        None => return,
    });
}

/// `docker.agent = false`, and where the agent cannot be used.
mod through_docker_exec {
    use super::*;
    contract_tests!(match Docker::new(false) {
        Some(docker) => docker,
        None => return,
    });
}

async fn runtime_with(edit: impl FnOnce(&mut LaunchSpec)) -> Option<Box<dyn SubmissionRuntime>> {
    let image = test_image()?;
    let mut launch = LaunchSpec::new(spec(image), workspace());
    edit(&mut launch);
    Some(spawn_runtime(launch).await.unwrap())
}

#[tokio::test]
async fn the_container_is_labelled_and_shown_at_spawn() {
    let Some(image) = test_image() else { return };
    let launch = LaunchSpec::new(spec(image), workspace());
    let run_id = launch.run_id.clone();
    let rt = spawn_runtime(launch).await.unwrap();
    let id = rt
        .info()
        .container_id
        .expect("the container exists from spawn on");
    assert_eq!(
        common::docker::containers_of(&run_id, false),
        std::slice::from_ref(&id)
    );
    let docker = connect(None).await.unwrap();
    let inspect = docker.inspect_container(&id, None).await.unwrap();
    let labels = inspect.config.unwrap().labels.unwrap();
    assert_eq!(labels["subrt.managed"], "true");
    assert_eq!(labels["subrt.env"], "docker-test");
    assert!(labels["subrt.owner"].contains(&format!("/{}/", std::process::id())));
    let host = inspect.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert!(
        host.security_opt
            .unwrap()
            .contains(&"no-new-privileges".to_owned())
    );
    rt.cleanup().await.unwrap();
    assert!(
        common::docker::containers_of(&run_id, true).is_empty(),
        "cleanup removes the container"
    );
}

#[tokio::test]
async fn the_workspace_is_mounted_read_write_at_workdir() {
    let dir = workspace();
    std::fs::write(dir.join("input.txt"), "from the host").unwrap();
    let Some(rt) = runtime_with(|l| l.working_dir = dir.clone()).await else {
        return;
    };
    let result = rt
        .execute(ExecRequest::new(
            "pwd; cat input.txt; echo written > output.txt",
        ))
        .await
        .unwrap();
    assert_eq!(&result.stdout.data[..], b"/workspace\nfrom the host");
    assert_eq!(
        std::fs::read_to_string(dir.join("output.txt")).unwrap(),
        "written\n"
    );
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn static_assets_are_read_only() {
    let dir = workspace();
    std::fs::write(dir.join("data.csv"), "a,b\n").unwrap();
    let Some(rt) = runtime_with(|l| {
        l.working_dir = dir.clone();
        l.static_assets.insert(
            "data".into(),
            StaticAsset {
                path: "data.csv".into(),
                save_path: "inputs/data.csv".into(),
            },
        );
    })
    .await
    else {
        return;
    };
    let read = rt
        .execute(ExecRequest::new("cat {{static:data}}"))
        .await
        .unwrap();
    assert_eq!(&read.stdout.data[..], b"a,b\n");
    let write = rt
        .execute(ExecRequest::new("echo changed > /static/inputs/data.csv"))
        .await
        .unwrap();
    assert_ne!(write.exit_code, 0, "writing a static asset must fail");
    assert!(
        String::from_utf8_lossy(&write.stderr.data).contains("Read-only"),
        "{write:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("data.csv")).unwrap(),
        "a,b\n"
    );
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_mount_under_the_workdir_is_rejected_clearly() {
    let Some(image) = test_image() else { return };
    let mut spec = spec(image);
    spec.docker.as_mut().unwrap().extra_mounts = vec![Mount {
        source: "/tmp".into(),
        target: "/workspace/data".into(),
        mode: MountMode::Ro,
    }];
    let err = spawn_runtime(LaunchSpec::new(spec, workspace()))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("/workspace/data") && message.contains("inside the workdir"),
        "{message}"
    );
}

#[tokio::test]
async fn extra_mounts_resolve_relative_sources_against_the_workspace() {
    let dir = workspace();
    std::fs::create_dir(dir.join("shared")).unwrap();
    std::fs::write(dir.join("shared/note"), "mounted").unwrap();
    let Some(image) = test_image() else { return };
    let mut spec = spec(image);
    spec.docker.as_mut().unwrap().extra_mounts = vec![Mount {
        source: "shared".into(),
        target: "/mnt/shared".into(),
        mode: MountMode::Ro,
    }];
    let rt = spawn_runtime(LaunchSpec::new(spec, dir)).await.unwrap();
    let result = rt
        .execute(ExecRequest::new("cat /mnt/shared/note"))
        .await
        .unwrap();
    assert_eq!(&result.stdout.data[..], b"mounted");
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn network_none_leaves_only_loopback() {
    let Some(rt) = runtime_with(|_| {}).await else {
        return;
    };
    let result = rt
        .execute(ExecRequest::new("ls /sys/class/net"))
        .await
        .unwrap();
    assert_eq!(&result.stdout.data[..], b"lo\n");
    // And loopback is up (IFF_UP | IFF_LOOPBACK): a submission may serve
    // and test itself on 127.0.0.1, though the daemon sets up no network.
    let flags = rt
        .execute(ExecRequest::new("cat /sys/class/net/lo/flags"))
        .await
        .unwrap();
    assert_eq!(&flags.stdout.data[..], b"0x9\n");
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn limits_and_user_are_applied() {
    let Some(image) = test_image() else { return };
    let mut spec = spec(image);
    let settings = spec.docker.as_mut().unwrap();
    settings.memory = Some("256m".into());
    settings.cpus = Some(0.5);
    settings.pids_limit = Some(64);
    settings.user = Some("1234:1234".into());
    let launch = LaunchSpec::new(spec, workspace());
    let rt = spawn_runtime(launch).await.unwrap();
    let result = rt.execute(ExecRequest::new("id -u")).await.unwrap();
    assert_eq!(&result.stdout.data[..], b"1234\n");
    let docker = connect(None).await.unwrap();
    let id = rt.info().container_id.unwrap();
    let host = docker
        .inspect_container(&id, None)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(host.memory, Some(256 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.pids_limit, Some(64));
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn kill_replaces_the_container_for_the_next_command() {
    let Some(rt) = runtime_with(|_| {}).await else {
        return;
    };
    let first = rt.info().container_id.unwrap();
    rt.kill().await.unwrap();
    let result = rt.execute(ExecRequest::new("echo fresh")).await.unwrap();
    assert_eq!(&result.stdout.data[..], b"fresh\n");
    let second = rt.info().container_id.unwrap();
    assert_ne!(first, second, "the next command starts a fresh container");
    rt.cleanup().await.unwrap();
}

/// A cleanup that comes while the next command's container is being made
/// finds no container to remove; the command must still not start, and the
/// container must not stay.
#[tokio::test]
async fn cleanup_while_a_container_is_made_leaves_no_command_and_no_container() {
    let Some(image) = test_image() else { return };
    let launch = LaunchSpec::new(spec(image), workspace());
    let run_id = launch.run_id.clone();
    let rt = spawn_runtime(launch).await.unwrap();
    let first = rt.info().container_id.unwrap();
    rt.kill().await.unwrap(); // the next command makes a new container
    let n = common::unique_sleep();
    let mut events = rt
        .stream(ExecRequest::new(format!("sleep 30.{n}")))
        .await
        .unwrap();
    // On this test's one thread the stream's task stands still while
    // `docker ps` runs: once it lists the new container, the task is at
    // most between creating and starting it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !common::docker::containers_of(&run_id, true)
        .iter()
        .any(|id| *id != first)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no new container in 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    rt.cleanup().await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while events.next_event().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the command ran on after cleanup");
    assert!(
        common::docker::containers_of(&run_id, true).is_empty(),
        "a container made during cleanup stayed"
    );
}

#[tokio::test]
async fn keep_container_after_clean_keeps_it() {
    let Some(image) = test_image() else { return };
    let mut spec = spec(image);
    spec.docker.as_mut().unwrap().keep_container_after_clean = true;
    let launch = LaunchSpec::new(spec, workspace());
    let run_id = launch.run_id.clone();
    let rt = spawn_runtime(launch).await.unwrap();
    rt.execute(ExecRequest::new("echo kept > /tmp/evidence"))
        .await
        .unwrap();
    rt.cleanup().await.unwrap();
    let kept = common::docker::containers_of(&run_id, true);
    assert_eq!(kept.len(), 1, "the container is kept");
    assert!(
        common::docker::containers_of(&run_id, false).is_empty(),
        "and stopped"
    );
    let docker = connect(None).await.unwrap();
    subrt::runtime::leftovers::remove(&docker, &kept[0])
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_daemon_names_what_was_tried() {
    let mut spec = spec("any");
    spec.docker.as_mut().unwrap().host = Some("unix:///nonexistent/docker.sock".into());
    let err = spawn_runtime(LaunchSpec::new(spec.clone(), workspace()))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("unix:///nonexistent/docker.sock"),
        "{message}"
    );
    assert!(
        message.contains("DOCKER_HOST"),
        "says how to point elsewhere: {message}"
    );
    let check = subrt::runtime::registry::builtins()
        .check(&spec)
        .await
        .unwrap_err();
    assert!(check.to_string().contains("/nonexistent/docker.sock"));
}

#[tokio::test]
async fn a_missing_image_names_the_image_and_the_pull_failure() {
    if test_image().is_none() {
        return;
    }
    let spec = spec("subrt-no-such-image:404");
    let err = spawn_runtime(LaunchSpec::new(spec, workspace()))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("subrt-no-such-image:404"), "{message}");
    assert!(message.contains("pulling it failed"), "{message}");
}

/// `docker kill` of a session's container while a command runs: the result
/// says a kill from outside subrt ended it (not a crash of the command),
/// a note says what happened, and the next command gets a fresh container.
#[tokio::test]
async fn a_docker_kill_from_outside_is_reported_as_one() {
    ended_from_outside(&["kill"]).await;
}

/// `docker stop` (SIGTERM to the container's init, SIGKILL 10 s later):
/// the agent ends the container at once, reported as a kill from outside.
#[tokio::test]
async fn a_docker_stop_ends_the_container_at_once() {
    let started = std::time::Instant::now();
    ended_from_outside(&["stop", "-t", "10"]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "the stop waited for its SIGKILL: {:?}",
        started.elapsed()
    );
}

async fn ended_from_outside(docker_args: &[&str]) {
    let Some(rt) = runtime_with(|_| {}).await else {
        return;
    };
    let id = rt.info().container_id.unwrap();
    let mut events = rt
        .stream(ExecRequest::new("echo started; sleep 30"))
        .await
        .unwrap();
    let mut notes = Vec::new();
    let mut result = None;
    while let Some(event) = events.next_event().await {
        match event {
            subrt::runtime::RuntimeEvent::Output(chunk) if &chunk.data[..] == b"started\n" => {
                common::docker::run(
                    std::process::Command::new("docker")
                        .args(docker_args)
                        .arg(&id),
                )
                .unwrap();
            }
            subrt::runtime::RuntimeEvent::Note(note) => notes.push(note),
            subrt::runtime::RuntimeEvent::Finished(finished) => result = Some(finished),
            _ => {}
        }
    }
    let result = result.unwrap();
    assert_eq!(result.exit_code, 137);
    assert!(result.killed, "{result:?}");
    assert_eq!(
        result.killed_by,
        Some(subrt::runtime::KilledBy::Outside),
        "{result:?}"
    );
    assert!(!result.oom_killed);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("killed from outside subrt")),
        "{notes:?}"
    );
    let next = rt.execute(ExecRequest::new("echo again")).await.unwrap();
    assert_eq!(&next.stdout.data[..], b"again\n");
    assert_ne!(rt.info().container_id.unwrap(), id);
    rt.cleanup().await.unwrap();
}

/// A command that allocates past the container's memory limit ends as out
/// of memory, said so, not as a bare 137.
#[tokio::test]
async fn out_of_memory_in_a_container_is_reported_as_such() {
    let Some(rt) = runtime_with(|launch| {
        let docker = launch.environment.docker.as_mut().unwrap();
        docker.memory = Some("32m".into());
    })
    .await
    else {
        return;
    };
    // dd allocates its 256 MiB block and fills it from /dev/zero.
    let result = rt
        .execute(ExecRequest::new(
            "dd if=/dev/zero of=/dev/null bs=256M count=1",
        ))
        .await
        .unwrap();
    assert_eq!(result.signal, Some(9), "{result:?}");
    assert!(result.oom_killed, "{result:?}");
    assert_eq!(
        result.killed_by,
        Some(subrt::runtime::KilledBy::OutOfMemory)
    );
    assert!(!result.killed, "out of memory is a failure of the command");
    let peak = result.usage.peak_memory_bytes.unwrap();
    assert!(
        (16 << 20..=32 << 20).contains(&peak),
        "peak {peak} near the 32m limit"
    );
    // The next failure of the same container is not blamed on memory.
    let next = rt.execute(ExecRequest::new("exit 137")).await.unwrap();
    assert!(!next.oom_killed && next.killed_by.is_none(), "{next:?}");
    rt.cleanup().await.unwrap();
}

/// A static asset in the submission's folder that is a link to a host
/// file is not mounted: the daemon would follow the link, so subrt
/// resolves it first and refuses what leads out of the folder.
#[tokio::test]
async fn an_asset_linked_out_of_the_submission_is_not_mounted() {
    let Some(image) = test_image() else { return };
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("secret"), "HOST-SECRET").unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("secret"),
        work.path().join("data.txt"),
    )
    .unwrap();
    let mut launch = LaunchSpec::new(spec(image), work.path());
    launch.static_assets.insert(
        "data".into(),
        StaticAsset {
            path: "data.txt".into(),
            save_path: "data.txt".into(),
        },
    );
    let error = spawn_runtime(launch).await.unwrap_err().to_string();
    assert!(
        error.contains("static asset `data`") && error.contains("leads out of"),
        "{error}"
    );
}

/// The environment's `limits` mean in a container what they mean in a
/// sandbox: memory without swap, processes, a `/tmp` of that size, file
/// size and open files.
#[tokio::test]
async fn the_environments_limits_apply_to_the_container() {
    let Some(rt) = runtime_with(|launch| {
        launch.environment.limits = subrt::spec::Limits {
            memory: Some("64m".into()),
            pids: Some(32),
            tmp: Some("1m".into()),
            file_size: Some("100k".into()),
            open_files: Some(16),
            cpus: Some(0.5),
        };
    })
    .await
    else {
        return;
    };
    let result = rt
        .execute(ExecRequest::new(
            "head -c 2M /dev/zero > /tmp/fill; wc -c < /tmp/fill; head -c 200k /dev/zero > big; echo $?; wc -c < big",
        ))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&result.stdout.data).into_owned();
    assert_eq!(out, "102400\n153\n102400\n", "{out}");
    let docker = connect(None).await.unwrap();
    let host = docker
        .inspect_container(&rt.info().container_id.unwrap(), None)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(
        (
            host.memory,
            host.memory_swap,
            host.pids_limit,
            host.nano_cpus
        ),
        (Some(64 << 20), Some(64 << 20), Some(32), Some(500_000_000))
    );
    assert_eq!(
        host.tmpfs.unwrap()["/tmp"],
        format!("rw,nosuid,nodev,size={},mode=1777", 1 << 20)
    );
    rt.cleanup().await.unwrap();
}

/// An image whose config says another architecture cannot run this host's
/// agent: its commands go through `docker exec`, the session says so, and
/// they work. (The image's programs are this host's, so it runs here.)
#[tokio::test]
async fn an_image_of_another_architecture_runs_through_docker_exec() {
    if test_image().is_none() {
        return;
    }
    const TAG: &str = "subrt-test-rootfs-arm64:1";
    common::docker::build_variant(TAG, Some("linux/arm64"), &[], &[]).unwrap();
    let rt = spawn_runtime(LaunchSpec::new(spec(TAG), workspace()))
        .await
        .unwrap();
    assert_eq!(
        rt.info().commands_start.as_deref(),
        Some("docker exec (image subrt-test-rootfs-arm64:1 is arm64)")
    );
    let result = rt
        .execute(ExecRequest::new("echo hi; exit 3"))
        .await
        .unwrap();
    assert_eq!(
        (result.exit_code, &result.stdout.data[..]),
        (3, &b"hi\n"[..])
    );
    rt.cleanup().await.unwrap();
}

/// An image with a folder where the agent is mounted: the container does
/// not start with it. The session goes on through `docker exec`, and its
/// notes and info say why.
#[tokio::test]
async fn an_image_the_agent_cannot_start_in_goes_on_through_docker_exec() {
    if test_image().is_none() {
        return;
    }
    const TAG: &str = "subrt-test-rootfs-agent-dir:1";
    common::docker::build_variant(TAG, None, &["/.subrt-agent"], &[]).unwrap();
    let rt: Arc<dyn SubmissionRuntime> = Arc::from(
        spawn_runtime(LaunchSpec::new(spec(TAG), workspace()))
            .await
            .unwrap(),
    );
    let path = rt.info().commands_start.unwrap();
    assert!(
        path.starts_with(
            "docker exec (the agent did not come up in image subrt-test-rootfs-agent-dir:1"
        ),
        "{path}"
    );
    let events = contract::collect(&rt, ExecRequest::new("echo works")).await;
    let notes: Vec<String> = events
        .iter()
        .filter_map(|(_, e)| match e {
            subrt::runtime::RuntimeEvent::Note(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("commands start through docker exec")),
        "{notes:?}"
    );
    let (_, result) = contract::finished(&events);
    assert_eq!(&result.stdout.data[..], b"works\n");
    rt.cleanup().await.unwrap();
}

/// What each command cost comes from the agent's `wait4` of it, also for
/// commands side by side (where the container's counters would mix them):
/// a 64 MiB buffer shows in its peak, a busy loop in its CPU time.
#[tokio::test]
async fn each_command_s_memory_and_cpu_come_from_the_agent() {
    let Some(rt) = runtime_with(|_| {}).await else {
        return;
    };
    assert_eq!(rt.info().commands_start.as_deref(), Some("subrt-agent"));
    let hungry = rt
        .start(ExecRequest::new(
            "dd if=/dev/zero of=/dev/null bs=64M count=2 2>/dev/null",
        ))
        .await
        .unwrap();
    let busy = rt
        .start(ExecRequest::new(
            "i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done",
        ))
        .await
        .unwrap();
    let hungry = hungry.finish().await.unwrap();
    let busy = busy.finish().await.unwrap();
    let peak = hungry.usage.peak_memory_bytes.unwrap();
    assert!(peak >= 64 << 20, "dd's 64 MiB block, measured {peak}");
    let busy_peak = busy.usage.peak_memory_bytes.unwrap();
    assert!(
        busy_peak < 32 << 20,
        "the shell's own peak, not dd's: {busy_peak}"
    );
    let cpu = busy.usage.cpu_user_seconds.unwrap() + busy.usage.cpu_system_seconds.unwrap();
    assert!(cpu > 0.05, "the loop's CPU time, measured {cpu}");
    rt.cleanup().await.unwrap();
}

/// The agent's connection to subrt is its stdout: a command, even one run
/// as root in the container, cannot write frames of its own there (the
/// agent is not dumpable, and containers lack CAP_SYS_PTRACE), so it cannot
/// forge another command's end.
#[tokio::test]
async fn a_root_command_cannot_write_to_the_agent_s_connection() {
    let Some(rt) = runtime_with(|_| {}).await else {
        return;
    };
    assert_eq!(rt.info().commands_start.as_deref(), Some("subrt-agent"));
    let result = rt
        .execute(
            ExecRequest::new(
                "for fd in 0 1 2; do (exec 3>/proc/1/fd/$fd) 2>/dev/null && echo opened $fd; done; true",
            )
                .user("0"),
        )
        .await
        .unwrap();
    assert_eq!(result.exit_code, 0, "{result:?}");
    assert_eq!(&result.stdout.data[..], b"", "{result:?}");
    let next = rt.execute(ExecRequest::new("echo still")).await.unwrap();
    assert_eq!(&next.stdout.data[..], b"still\n");
    rt.cleanup().await.unwrap();
}

/// A command run as a user of the image gets that user's supplementary
/// groups from the image's `/etc/group`, and its `HOME`, through the agent
/// as through `docker exec -u` (the agent gave none before: a file of a
/// group the user is in was out of its reach).
#[tokio::test]
async fn a_user_gets_its_groups_and_home_from_the_image_on_both_paths() {
    if test_image().is_none() {
        return;
    }
    const TAG: &str = "subrt-test-rootfs-users:1";
    let passwd = "root:x:0:0:root:/root:/bin/sh\neval:x:4321:4321:eval:/home/eval:/bin/sh\n";
    let group =
        "root:x:0:\neval:x:4321:\ndata:x:5000:other,eval\nextra:x:5001:eval\nnot:x:5002:other\n";
    common::docker::build_variant(
        TAG,
        None,
        &["/home/eval"],
        &[("/etc/passwd", passwd), ("/etc/group", group)],
    )
    .unwrap();
    let mut seen = Vec::new();
    for agent in [true, false] {
        let mut spec = spec(TAG);
        spec.docker.as_mut().unwrap().agent = agent;
        let rt = spawn_runtime(LaunchSpec::new(spec, common::workspace()))
            .await
            .unwrap();
        let result = rt
            .execute(ExecRequest::new("id -u; id -G; echo $HOME").user("eval"))
            .await
            .unwrap();
        rt.cleanup().await.unwrap();
        let out = String::from_utf8_lossy(&result.stdout.data).into_owned();
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("4321"), "agent {agent}: {result:?}");
        let mut groups: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
        groups.sort();
        assert_eq!(
            groups,
            ["4321", "5000", "5001"],
            "agent {agent}: {result:?}"
        );
        assert_eq!(lines.next(), Some("/home/eval"), "agent {agent}");
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1], "the agent and docker exec agree");

    // A root command replaces the image's /etc/group by a link to the
    // agent's own connection: the next command still starts, with no
    // groups, and the session goes on.
    let rt = spawn_runtime(LaunchSpec::new(spec(TAG), common::workspace()))
        .await
        .unwrap();
    let linked = rt
        .execute(ExecRequest::new("ln -sf /proc/self/fd/0 /etc/group"))
        .await
        .unwrap();
    assert_eq!(linked.exit_code, 0, "{linked:?}");
    let request = || {
        ExecRequest::new("id -G")
            .user("eval")
            .timeout(std::time::Duration::from_secs(10))
    };
    for _ in 0..2 {
        let result = rt.execute(request()).await.unwrap();
        assert_eq!(&result.stdout.data[..], b"4321\n", "{result:?}");
    }
    rt.cleanup().await.unwrap();
}

/// A user that the workspace's permissions keep out (a 0700 folder of
/// root's, as pytest's `tmp_path` is) still starts there, as with `docker
/// exec -u`: the working dir is entered before the user is taken.
#[tokio::test]
async fn a_user_the_workspace_keeps_out_still_starts_in_it() {
    let Some(image) = test_image() else {
        return;
    };
    let private = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    for agent in [true, false] {
        let mut spec = spec(image);
        let docker = spec.docker.as_mut().unwrap();
        docker.agent = agent;
        docker.user = Some("4321:4321".into());
        let rt = spawn_runtime(LaunchSpec::new(spec, private.path()))
            .await
            .unwrap();
        let result = rt
            .execute(ExecRequest::new("id -u; id -g; pwd"))
            .await
            .unwrap();
        assert_eq!(
            &result.stdout.data[..],
            b"4321\n4321\n/workspace\n",
            "agent {agent}: {result:?}"
        );
        rt.cleanup().await.unwrap();
    }
}
