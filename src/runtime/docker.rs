//! `DockerRuntime`: commands in a container, through the Docker Engine API
//! (bollard).
//!
//! One long-lived container per runtime, created and started at spawn (so
//! its id can be shown), with `docker-init` as PID 1 to reap orphans. Each
//! command is an exec of `/bin/sh -c <command>` in `workdir`, stdout and
//! stderr demultiplexed, stdin attached only when given.
//!
//! The container is what gets killed: Docker has no call that kills an
//! exec's processes, so at a timeout, on `kill` and when the stream is
//! dropped the container is killed, and the next command runs in a fresh
//! one (setup runs again there). `cleanup` removes the container, or stops
//! and keeps it when `keep_container_after_clean` is set.
//!
//! Containers carry the labels in [`labels`], so that `subrt gc` can find
//! the ones whose owning process is gone (see [`super::leftovers`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::capture::Capture;
use super::driver::{self, Exit, Lifecycle, Process, Runner, sleep_until};
use super::{
    EventStream, ExecRequest, LaunchSpec, OutputChunk, RuntimeBackend, RuntimeError, RuntimeEvent,
    RuntimeInfo, RuntimeState, StreamKind, SubmissionRuntime,
};
use crate::runlog::Owner;
use crate::spec::{DockerConfig, EnvironmentSpec, Mount, MountMode};

/// Labels on every container subrt creates.
pub mod labels {
    /// `"true"` on every subrt container.
    pub const MANAGED: &str = "subrt.managed";
    /// The run id.
    pub const RUN: &str = "subrt.run";
    /// The environment's name.
    pub const ENV: &str = "subrt.env";
    /// The owning subrt process: `host/pid/start_time`.
    pub const OWNER: &str = "subrt.owner";
    /// `"true"` when the spec keeps the container after cleanup.
    pub const KEEP: &str = "subrt.keep";
}

/// The daemon tried when neither the spec nor `DOCKER_HOST` names one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long connecting to the daemon may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs commands in a Docker container.
#[derive(Debug)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    docker: Docker,
    environment: EnvironmentSpec,
    settings: DockerConfig,
    run_id: String,
    launch_env: BTreeMap<String, String>,
    setup_commands: Vec<String>,
    /// Asset name to its path inside the container.
    assets: BTreeMap<String, String>,
    body: ContainerCreateBody,
    life: Mutex<Lifecycle>,
    container: Mutex<Container>,
}

#[derive(Debug, Default)]
struct Container {
    /// The running container, if any.
    id: Option<String>,
    /// Containers made so far; names the next one.
    made: u32,
    /// Killed containers not yet removed; `cleanup` removes them.
    unremoved: Vec<String>,
}

/// Connects to the daemon of `settings` (its `host`, else `DOCKER_HOST`,
/// else the local socket) and agrees on an API version.
pub async fn connect(host: Option<&str>) -> Result<Docker, RuntimeError> {
    let target = match host {
        Some(host) => host.to_owned(),
        None => std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_owned()),
    };
    let unreachable = |reason: String| RuntimeError::DockerUnreachable {
        host: target.clone(),
        reason,
    };
    let docker = Docker::connect_with_host(&target).map_err(|e| unreachable(e.to_string()))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

fn settings_of(spec: &EnvironmentSpec) -> Result<&DockerConfig, RuntimeError> {
    spec.docker
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidSpec {
            environment: spec.name.clone(),
            reason: "type \"docker\" needs a `docker` table with at least `image`".into(),
        })
}

fn docker_error(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> RuntimeError {
    let action = action.into();
    move |e| RuntimeError::Docker {
        action,
        reason: daemon_message(&e),
    }
}

/// The daemon's own words when it gave some, else the client error.
fn daemon_message(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl RuntimeBackend for DockerRuntime {
    async fn spawn(launch: LaunchSpec) -> Result<Self, RuntimeError> {
        let settings = settings_of(&launch.environment)?.clone();
        let docker = connect(settings.host.as_deref()).await?;
        let mut notes = ensure_image(&docker, &settings.image).await?;
        let body = container_body(&launch, &settings, &mut notes)?;
        let assets = launch
            .static_assets
            .iter()
            .map(|(name, asset)| (name.clone(), static_path(&asset.save_path)))
            .collect();
        let inner = Arc::new(Inner {
            docker,
            settings,
            run_id: launch.run_id.clone(),
            launch_env: launch.env_vars.clone(),
            setup_commands: launch.setup_commands(),
            environment: launch.environment,
            assets,
            body,
            life: Mutex::new(Lifecycle::new(notes)),
            container: Mutex::new(Container::default()),
        });
        inner.ensure_container().await?;
        Ok(Self { inner })
    }

    async fn check(spec: &EnvironmentSpec) -> Result<(), RuntimeError> {
        let settings = settings_of(spec)?;
        let docker = connect(settings.host.as_deref()).await?;
        match docker.inspect_image(&settings.image).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(RuntimeError::Image {
                image: settings.image.clone(),
                reason: "not present on the daemon; a pull will be tried when a run starts".into(),
            }),
            Err(e) => Err(docker_error(format!("inspecting image {}", settings.image))(e)),
        }
    }
}

/// Makes sure `image` is on the daemon, pulling it if not. Returns notes
/// with the pull's progress.
async fn ensure_image(docker: &Docker, image: &str) -> Result<Vec<String>, RuntimeError> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(Vec::new()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(docker_error(format!("inspecting image {image}"))(e)),
    }
    let mut notes = vec![format!("image {image} is not present; pulling it")];
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut progress = docker.create_image(Some(options), None, None);
    let mut last_status = String::new();
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = info.status
                    && status != last_status
                {
                    tracing::info!(image, status, "pull");
                    last_status = status;
                }
            }
            Err(e) => {
                return Err(RuntimeError::Image {
                    image: image.to_owned(),
                    reason: format!(
                        "not present on the daemon, and pulling it failed: {}",
                        daemon_message(&e)
                    ),
                });
            }
        }
    }
    notes.push(format!("pulled {image}: {last_status}"));
    Ok(notes)
}

/// `/static/<save_path>`.
fn static_path(save_path: &Path) -> String {
    Path::new("/static").join(save_path).display().to_string()
}

/// Parses a memory size: bytes, or a number with `k`, `m`, `g` (powers of
/// 1024, as Docker reads them; an optional trailing `b` is accepted).
pub fn parse_memory(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => lower.split_at(i),
        None => (lower, ""),
    };
    let number: f64 = digits.parse().ok()?;
    let scale = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes >= 1.0 && bytes < i64::MAX as f64).then_some(bytes as i64)
}

/// A path with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The container to create for `launch`: image, labels, mounts, limits.
fn container_body(
    launch: &LaunchSpec,
    settings: &DockerConfig,
    notes: &mut Vec<String>,
) -> Result<ContainerCreateBody, RuntimeError> {
    let environment = &launch.environment.name;
    let invalid = |reason: String| RuntimeError::InvalidSpec {
        environment: environment.clone(),
        reason,
    };
    let workdir = normalize(Path::new(&settings.workdir));
    if !workdir.is_absolute() {
        return Err(invalid(format!(
            "docker.workdir `{}` is not an absolute path",
            settings.workdir
        )));
    }
    let working_dir =
        std::path::absolute(&launch.working_dir).map_err(|e| RuntimeError::WorkingDir {
            path: launch.working_dir.clone(),
            reason: e.to_string(),
        })?;
    if settings.mount_workspace && !working_dir.is_dir() {
        return Err(RuntimeError::WorkingDir {
            path: working_dir,
            reason: "it does not exist or is not a directory".into(),
        });
    }

    let mut binds = Vec::new();
    if settings.mount_workspace {
        binds.push(format!(
            "{}:{}:rw",
            working_dir.display(),
            workdir.display()
        ));
    }
    for asset in launch.static_assets.values() {
        let source = working_dir.join(&asset.path);
        binds.push(format!(
            "{}:{}:ro",
            source.display(),
            static_path(&asset.save_path)
        ));
    }
    for mount in settings.extra_mounts.iter().chain(&launch.mounts) {
        binds.push(bind_of(mount, &working_dir, &workdir).map_err(invalid)?);
    }

    let host_network = settings.network == "host";
    let mut port_bindings = HashMap::new();
    let mut exposed = Vec::new();
    if host_network && !launch.ports.is_empty() {
        notes.push("port mappings do not apply with network \"host\"; ignored".into());
    } else {
        for (container_port, host_port) in &launch.ports {
            let key = format!("{container_port}/tcp");
            exposed.push(key.clone());
            let binding = PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(host_port.to_string()),
            };
            port_bindings.insert(key, Some(vec![binding]));
        }
    }

    let memory = match &settings.memory {
        Some(text) => Some(parse_memory(text).ok_or_else(|| {
            invalid(format!(
                "docker.memory `{text}` is not a size like \"512m\" or \"1g\""
            ))
        })?),
        None => None,
    };
    let nano_cpus = match settings.cpus {
        Some(cpus) if cpus > 0.0 && cpus.is_finite() => Some((cpus * 1e9) as i64),
        Some(cpus) => {
            return Err(invalid(format!(
                "docker.cpus {cpus} is not a positive number"
            )));
        }
        None => None,
    };

    let owner = Owner::this_process();
    let mut labels = HashMap::from([
        (labels::MANAGED.to_owned(), "true".to_owned()),
        (labels::RUN.to_owned(), launch.run_id.clone()),
        (labels::ENV.to_owned(), environment.clone()),
        (
            labels::OWNER.to_owned(),
            format!(
                "{}/{}/{}",
                owner.host,
                owner.pid,
                owner.start_time.unwrap_or(0)
            ),
        ),
    ]);
    if settings.keep_container_after_clean {
        labels.insert(labels::KEEP.to_owned(), "true".to_owned());
    }
    Ok(ContainerCreateBody {
        image: Some(settings.image.clone()),
        // PID 1 (docker-init) keeps the container alive and reaps orphans.
        entrypoint: Some(vec![]),
        cmd: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "while :; do sleep 3600; done".into(),
        ]),
        working_dir: Some(workdir.display().to_string()),
        user: settings.user.clone(),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(HostConfig {
            binds: Some(binds),
            network_mode: Some(settings.network.clone()),
            memory,
            nano_cpus,
            pids_limit: settings.pids_limit,
            security_opt: Some(vec!["no-new-privileges".into()]),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `source:target:mode` for a mount, checked: the target is absolute and not
/// under the workdir (where it would hide or be hidden by the workspace).
fn bind_of(mount: &Mount, working_dir: &Path, workdir: &Path) -> Result<String, String> {
    let target = normalize(Path::new(&mount.target));
    if !target.is_absolute() {
        return Err(format!(
            "mount target `{}` is not an absolute path",
            mount.target
        ));
    }
    if target.starts_with(workdir) {
        return Err(format!(
            "mount target `{}` is inside the workdir `{}`; mount it elsewhere",
            mount.target,
            workdir.display()
        ));
    }
    let source = normalize(&working_dir.join(&mount.source));
    if !source.exists() {
        return Err(format!("mount source {} does not exist", source.display()));
    }
    let mode = match mount.mode {
        MountMode::Ro => "ro",
        MountMode::Rw => "rw",
    };
    Ok(format!("{}:{}:{mode}", source.display(), target.display()))
}

impl Inner {
    fn container(&self) -> MutexGuard<'_, Container> {
        self.container.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running container, made and started if there is none.
    async fn ensure_container(&self) -> Result<String, RuntimeError> {
        let name = {
            let mut container = self.container();
            if let Some(id) = &container.id {
                return Ok(id.clone());
            }
            container.made += 1;
            let env: String = self
                .environment
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            format!(
                "subrt-{env}-{}-{}",
                self.run_id.to_lowercase(),
                container.made
            )
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), self.body.clone())
            .await
            .map_err(docker_error(format!(
                "creating container {name} from {}",
                self.settings.image
            )))?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            self.remove(&created.id).await;
            return Err(docker_error(format!("starting container {name}"))(e));
        }
        self.container().id = Some(created.id.clone());
        Ok(created.id)
    }

    /// Kills the container, if there is one, and forgets it: the next
    /// command gets a fresh one (and setup runs again).
    async fn kill_container(&self) -> Result<(), RuntimeError> {
        let Some(id) = self.container().id.take() else {
            return Ok(());
        };
        self.container().unremoved.push(id.clone());
        self.lifecycle().setup_done = false;
        if !self.settings.keep_container_after_clean {
            // A forced remove kills and removes in one call.
            self.remove_unremoved().await;
            if self.container().unremoved.contains(&id) {
                return Err(RuntimeError::Docker {
                    action: format!("removing container {id}"),
                    reason: "the daemon refused; `subrt gc` will find it".into(),
                });
            }
            return Ok(());
        }
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        match self.docker.kill_container(&id, Some(options)).await {
            // Already stopped: nothing runs in it, which is what we want.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            other => other.map_err(docker_error(format!("killing container {id}"))),
        }
    }

    /// Removes the killed containers, unless the spec keeps them.
    async fn remove_unremoved(&self) {
        if self.settings.keep_container_after_clean {
            return;
        }
        let ids = self.container().unremoved.clone();
        for id in ids {
            if self.remove(&id).await {
                self.container().unremoved.retain(|u| *u != id);
            }
        }
    }

    /// Removes a container; true when it is gone.
    async fn remove(&self, id: &str) -> bool {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => true,
            Err(e) if is_not_found(&e) => true,
            Err(e) => {
                tracing::warn!(container = id, error = %e, "cannot remove container");
                false
            }
        }
    }
}

impl Runner for Inner {
    fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        self.life.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn env(&self, request_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        self.environment.merged_env(&self.launch_env, request_env)
    }

    async fn run(&self, process: Process<'_>, captures: [Capture; 2]) -> (Exit, [Capture; 2]) {
        let Process {
            line,
            phase,
            stdin,
            env,
            deadline,
            tx,
        } = process;
        let note = async |text: String| {
            let _ = tx.send(RuntimeEvent::Note(text)).await;
        };
        if self.lifecycle().kill_requested {
            return (Exit::killed(false), captures);
        }
        let container = match self.ensure_container().await {
            Ok(id) => id,
            Err(e) => {
                note(e.to_string()).await;
                return (Exit::not_started(), captures);
            }
        };
        let options = CreateExecOptions {
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), line.to_owned()]),
            working_dir: Some(self.settings.workdir.clone()),
            user: self.settings.user.clone(),
            ..Default::default()
        };
        let started = match self.docker.create_exec(&container, options).await {
            Ok(exec) => match self.docker.start_exec(&exec.id, None).await {
                Ok(StartExecResults::Attached { output, input }) => Ok((exec.id, output, input)),
                Ok(StartExecResults::Detached) => unreachable!("started attached"),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (exec, mut output, mut input) = match started {
            Ok(started) => started,
            Err(e) => {
                note(format!(
                    "cannot run {line:?} in container {container}: {}",
                    daemon_message(&e)
                ))
                .await;
                return (Exit::not_started(), captures);
            }
        };
        let writer = stdin.map(|data| {
            tokio::spawn(async move {
                // A command that exits without reading all of it is fine.
                let _ = input.write_all(&data).await;
                let _ = input.shutdown().await;
            })
        });

        let [mut out, mut err] = captures;
        let mut timed_out = false;
        loop {
            let item = tokio::select! {
                item = output.next() => item,
                () = sleep_until(deadline) => {
                    timed_out = true;
                    break;
                }
                () = tx.closed() => break,
            };
            let (stream, data) = match item {
                Some(Ok(bollard::container::LogOutput::StdOut { message })) => {
                    (StreamKind::Stdout, message)
                }
                Some(Ok(bollard::container::LogOutput::StdErr { message })) => {
                    (StreamKind::Stderr, message)
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    if !self.lifecycle().kill_requested {
                        note(format!("reading the output of {line:?}: {e}")).await;
                    }
                    break;
                }
                None => break,
            };
            match stream {
                StreamKind::Stdout => out.push(&data),
                StreamKind::Stderr => err.push(&data),
            }
            let chunk = OutputChunk {
                stream,
                phase,
                data,
            };
            if tx.send(RuntimeEvent::Output(chunk)).await.is_err() {
                break;
            }
        }
        if let Some(writer) = writer {
            writer.abort();
        }
        let exit = if timed_out || tx.is_closed() {
            if let Err(e) = self.kill_container().await {
                note(e.to_string()).await;
            }
            Exit::killed(timed_out)
        } else if self.lifecycle().kill_requested {
            Exit::killed(false)
        } else {
            self.exit_of(&exec).await
        };
        (exit, [out, err])
    }
}

impl Inner {
    /// The exit of a finished exec. Docker reports a signal death as 128+N;
    /// codes 129 to 192 are read as signal N (which is also how `exit 130`
    /// looks: the exec API cannot tell them apart).
    async fn exit_of(&self, exec: &str) -> Exit {
        for _ in 0..100 {
            match self.docker.inspect_exec(exec).await {
                Ok(inspect) if inspect.running != Some(true) => {
                    let code = inspect.exit_code.unwrap_or(-1) as i32;
                    let signal = (129..=192).contains(&code).then_some(code - 128);
                    return Exit {
                        code,
                        signal,
                        timed_out: false,
                    };
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => {
                    tracing::warn!(exec, error = %e, "cannot inspect exec");
                    break;
                }
            }
        }
        // The container died under it (killed from outside, or out of memory).
        Exit::killed(false)
    }
}

#[async_trait]
impl SubmissionRuntime for DockerRuntime {
    async fn stream(&self, request: ExecRequest) -> Result<EventStream, RuntimeError> {
        let inner = &self.inner;
        driver::start(inner, request, &inner.setup_commands, &inner.assets)
    }

    fn poll(&self) -> Option<i32> {
        self.inner.lifecycle().poll()
    }

    async fn kill(&self) -> Result<(), RuntimeError> {
        self.inner.lifecycle().request_kill();
        self.inner.kill_container().await
    }

    async fn cleanup(&self) -> Result<(), RuntimeError> {
        {
            let mut life = self.inner.lifecycle();
            life.request_kill();
            life.phase = RuntimeState::Cleaned;
        }
        let killed = self.inner.kill_container().await;
        // Also those a timeout or a dropped stream killed, whose removal may
        // still be under way in the command's task.
        self.inner.remove_unremoved().await;
        killed
    }

    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            kind: self.inner.environment.kind.clone(),
            state: self.inner.lifecycle().phase,
            pid: None,
            pgid: None,
            container_id: self.inner.container().id.clone(),
        }
    }
}

impl Drop for DockerRuntime {
    /// Removes the container in the background when the runtime is dropped
    /// without `cleanup` (best effort: `subrt gc` finds what this misses).
    fn drop(&mut self) {
        let container = self.inner.container();
        if container.id.is_none() && container.unremoved.is_empty() {
            return;
        }
        drop(container);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(&self.inner);
            handle.spawn(async move {
                let _ = inner.kill_container().await;
                inner.remove_unremoved().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_as_docker_reads_them() {
        assert_eq!(parse_memory("512m"), Some(512 << 20));
        assert_eq!(parse_memory("1g"), Some(1 << 30));
        assert_eq!(parse_memory("1.5G"), Some(3 << 29));
        assert_eq!(parse_memory("100kb"), Some(100 << 10));
        assert_eq!(parse_memory("4096"), Some(4096));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(parse_memory("1t"), None);
    }

    #[test]
    fn mounts_under_the_workdir_are_rejected() {
        let mount = Mount {
            source: "/tmp".into(),
            target: "/workspace/data".into(),
            mode: MountMode::Ro,
        };
        let err = bind_of(&mount, Path::new("/tmp"), Path::new("/workspace")).unwrap_err();
        assert!(err.contains("inside the workdir"), "{err}");
        let sneaky = Mount {
            target: "/data/../workspace/x".into(),
            ..mount.clone()
        };
        assert!(bind_of(&sneaky, Path::new("/tmp"), Path::new("/workspace")).is_err());
        let fine = Mount {
            target: "/data".into(),
            ..mount
        };
        assert_eq!(
            bind_of(&fine, Path::new("/tmp"), Path::new("/workspace")).unwrap(),
            "/tmp:/data:ro"
        );
    }
}
