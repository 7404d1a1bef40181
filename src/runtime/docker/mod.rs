//! `DockerRuntime`: commands in a container, through the Docker Engine API
//! (bollard).
//!
//! One long-lived container per runtime, created and started at spawn (so
//! its id can be shown). Each command is `/bin/sh -c <command>` in
//! `workdir`, stdout and stderr apart, stdin attached only when given. It
//! starts one of two ways (which one is in [`RuntimeInfo::commands_start`]):
//!
//! - through subrt's agent, the container's init (`agent.rs`,
//!   `through_agent.rs`): a frame on the attach connection, a fork in the
//!   container, its end from the agent's `wait4`; the default wherever the
//!   agent can run;
//! - as an exec (`docker exec`'s API calls), with `docker-init` as PID 1 to
//!   reap orphans.
//!
//! A command run alone that times out, or is killed, or whose stream is
//! dropped takes the container with it (an exec's processes cannot be
//! killed through the API, and a fresh container is what a fresh session
//! is): the next command runs in a fresh one (setup runs again there). One
//! started beside others is killed alone (its tree, by the agent or through
//! `/proc`). `cleanup` removes the container, or stops and keeps it when
//! `keep_container_after_clean` is set.
//!
//! Commands run as their request's `user`, else `docker.user`, else (as
//! the seed does) `1000:1000` for an evaluation and `$HUID:$HGID` when set,
//! else the image's `USER`; the container's own processes (its init and the
//! lifeline) run as root, so that a command asked to run as root has
//! root's capabilities (with `no-new-privileges`, which every container
//! gets, an exec as root in a container whose process is another user
//! would have none).
//!
//! Containers carry the labels in [`labels`], so that `subrt gc` can find
//! the ones whose owning process is gone (see [`super::leftovers`]).

mod agent;
mod agent_protocol;
mod daemon;
mod files;
mod settings;
mod through_agent;

pub use agent::{Path as CommandPath, path_for as command_path};
pub use daemon::{DEFAULT_HOST, connect, daemon_message, kill, remove};
pub use settings::labels;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::AttachContainerResults;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::capture::Capture;
use super::cgroup::{Cgroup, CgroupUsage};
use super::driver::{self, Core, Exit, Process, Runner, sleep_until};
use super::users::{self, UserIds};
use super::{
    EventStream, ExecRequest, FileError, KillScope, KilledBy, LaunchSpec, RuntimeBackend,
    RuntimeError, RuntimeEvent, RuntimeInfo, StreamKind, SubmissionRuntime, process_tree,
};
use crate::spec::{DockerConfig, EnvironmentSpec};
use bytes::Bytes;
use daemon::{docker_error, ensure_image};
use settings::{container_body, static_path};

/// How long a container whose lifeline closed gets to stop on its own
/// before a forced remove kills it.
const NATURAL_STOP: Duration = Duration::from_secs(1);

/// Runs commands in a Docker container.
#[derive(Debug)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    docker: Docker,
    /// Its assets by their paths inside the container.
    core: Core,
    settings: DockerConfig,
    /// Who commands run as when the request names no one: `docker.user`,
    /// else the image's `USER` (`None`: root).
    default_user: Option<String>,
    run_id: String,
    body: ContainerCreateBody,
    /// How commands start: through the agent (until a container's agent
    /// fails to come up), or through exec.
    path: Mutex<agent::Path>,
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
    /// The attached stdin of the running container: while this connection
    /// is open the container lives (see [`settings::container_body`]).
    lifeline: Option<AttachContainerResults>,
    /// The running container's out-of-memory kill was reported already
    /// (the daemon's `OOMKilled` stays set for the container's life).
    oom_reported: bool,
    /// The running container's cgroup, when the daemon runs on this host:
    /// what each command costs is read there.
    cgroup: Option<Cgroup>,
    /// The connection to the running container's agent, when its commands
    /// start through it (it is then the lifeline, and `lifeline` is
    /// `None`).
    agent: Option<Arc<agent::Link>>,
    /// Users of the running container, resolved in its `/etc/passwd`.
    users: BTreeMap<String, UserIds>,
}

/// Why a container was not made.
enum Made {
    /// Its agent did not come up: why.
    AgentDown(String),
    Failed(RuntimeError),
}

impl From<RuntimeError> for Made {
    fn from(e: RuntimeError) -> Self {
        Made::Failed(e)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The user commands run as when their request names none, as the seed
/// chose it: `docker.user`; else, for an evaluation, `1000:1000`; else
/// `$HUID:$HGID` of subrt's environment when both are set. `None`: the
/// image's `USER` (root unless the image says otherwise, as the seed's
/// `0:0`).
fn default_user(settings: &DockerConfig, is_evaluation: bool) -> Option<String> {
    if let Some(user) = &settings.user {
        return Some(user.clone());
    }
    if is_evaluation {
        return Some(EVALUATION_USER.to_owned());
    }
    match (std::env::var("HUID"), std::env::var("HGID")) {
        (Ok(uid), Ok(gid)) if !uid.is_empty() && !gid.is_empty() => Some(format!("{uid}:{gid}")),
        _ => None,
    }
}

/// Who an evaluation's commands run as unless `docker.user` says (the
/// seed's `get_eval_user`).
pub const EVALUATION_USER: &str = "1000:1000";

fn settings_of(spec: &EnvironmentSpec) -> Result<&DockerConfig, RuntimeError> {
    spec.docker
        .as_ref()
        .ok_or_else(|| RuntimeError::InvalidSpec {
            environment: spec.name.clone(),
            reason: "type \"docker\" needs a `docker` table with at least `image`".into(),
        })
}

impl RuntimeBackend for DockerRuntime {
    async fn spawn(launch: LaunchSpec) -> Result<Self, RuntimeError> {
        let settings = settings_of(&launch.environment)?.clone();
        let docker = connect(settings.host.as_deref()).await?;
        let mut notes = ensure_image(&docker, &settings.image).await?;
        let body = container_body(&launch, &settings, &mut notes)?;
        let image = docker.inspect_image(&settings.image).await.ok();
        let default_user = default_user(&settings, launch.is_evaluation).or_else(|| {
            image
                .as_ref()
                .and_then(|image| image.config.as_ref())
                .and_then(|config| config.user.clone())
                .filter(|user| !user.is_empty())
        });
        let mut path = agent::path_for(settings.agent, settings.host.as_deref());
        let architecture = image.and_then(|image| image.architecture);
        if let (agent::Path::Agent(_), Some(architecture)) = (&path, &architecture)
            && !agent::runs_on(architecture)
        {
            path = agent::Path::Exec(format!("image {} is {architecture}", settings.image));
        }
        let assets = launch
            .static_assets
            .iter()
            .map(|(name, asset)| (name.clone(), static_path(&asset.save_path)))
            .collect();
        let inner = Arc::new(Inner {
            docker,
            settings,
            default_user,
            run_id: launch.run_id.clone(),
            core: Core::of(&launch, assets, notes),
            body,
            path: Mutex::new(path),
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
            Err(e) if daemon::is_not_found(&e) => Err(RuntimeError::Image {
                image: settings.image.clone(),
                reason: "not present on the daemon; a pull will be tried when a run starts".into(),
            }),
            Err(e) => Err(docker_error(format!("inspecting image {}", settings.image))(e)),
        }
    }
}

impl Inner {
    fn container(&self) -> MutexGuard<'_, Container> {
        self.container.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running container, made and started if there is none.
    ///
    /// With the agent as its init when commands take that path; a
    /// container whose agent does not come up is removed, and this session
    /// goes on through `docker exec` (said in a note).
    async fn ensure_container(&self) -> Result<String, RuntimeError> {
        loop {
            let agent_body = match &*lock(&self.path) {
                agent::Path::Agent(executable) => {
                    Some(settings::with_agent(self.body.clone(), executable))
                }
                agent::Path::Exec(_) => None,
            };
            match self.make_container(agent_body.as_ref()).await {
                Err(Made::AgentDown(why)) => {
                    let why = format!(
                        "the agent did not come up in image {}: {why}",
                        self.settings.image
                    );
                    self.lifecycle()
                        .notes
                        .push(format!("docker: {why}; commands start through docker exec"));
                    *lock(&self.path) = agent::Path::Exec(why);
                }
                Err(Made::Failed(e)) => return Err(e),
                Ok(id) => return Ok(id),
            }
        }
    }

    async fn make_container(
        &self,
        agent_body: Option<&ContainerCreateBody>,
    ) -> Result<String, Made> {
        let name = {
            let mut container = self.container();
            if let Some(id) = &container.id {
                return Ok(id.clone());
            }
            container.made += 1;
            let env: String = self
                .core
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
        let body = agent_body.unwrap_or(&self.body).clone();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(docker_error(format!(
                "creating container {name} from {}",
                self.settings.image
            )))?;
        // The lifeline: the container's main process (the agent, or a shell
        // under docker-init) waits for end-of-file on its stdin, which the
        // daemon closes when this connection does (`stdin_once`), so the
        // container stops when subrt dies.
        let options = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(agent_body.is_some())
            .stderr(agent_body.is_some())
            .stream(true)
            .build();
        let lifeline = match self
            .docker
            .attach_container(&created.id, Some(options))
            .await
        {
            Ok(lifeline) => lifeline,
            Err(e) => {
                let _ = remove(&self.docker, &created.id).await;
                return Err(docker_error(format!("attaching to container {name}"))(e).into());
            }
        };
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = remove(&self.docker, &created.id).await;
            // Without the agent it may start (an image with something at
            // its mount point).
            if agent_body.is_some() {
                return Err(Made::AgentDown(daemon_message(&e)));
            }
            return Err(docker_error(format!("starting container {name}"))(e).into());
        }
        let (lifeline, agent) = match agent_body {
            None => (Some(lifeline), None),
            Some(_) => {
                let AttachContainerResults { output, input } = lifeline;
                match agent::Link::open(input, output).await {
                    Ok(link) => (None, Some(Arc::new(link))),
                    Err(why) => {
                        let _ = remove(&self.docker, &created.id).await;
                        return Err(Made::AgentDown(why));
                    }
                }
            }
        };
        let cgroup = self.cgroup_of(&created.id).await;
        let mut container = self.container();
        container.id = Some(created.id.clone());
        container.lifeline = lifeline;
        container.agent = agent;
        container.users.clear();
        container.oom_reported = false;
        container.cgroup = cgroup;
        Ok(created.id)
    }

    /// The cgroup of container `id`, found through its init's pid when the
    /// daemon shares this host's process table (not a remote daemon).
    async fn cgroup_of(&self, id: &str) -> Option<Cgroup> {
        let inspect = self.docker.inspect_container(id, None).await.ok()?;
        let pid = inspect.state?.pid.filter(|&pid| pid > 0)?;
        Cgroup::of_process(u32::try_from(pid).ok()?)
    }

    /// Kills the container, if there is one, and forgets it: the next
    /// command gets a fresh one (and setup runs again).
    async fn kill_container(&self) -> Result<(), RuntimeError> {
        let (id, _lifeline) = {
            let mut container = self.container();
            let Some(id) = container.id.take() else {
                return Ok(());
            };
            container.unremoved.push(id.clone());
            if let Some(agent) = container.agent.take() {
                agent.close();
            }
            (id, container.lifeline.take())
        };
        self.lifecycle().setup_done = false;
        if !self.settings.keep_container_after_clean {
            // Closing the lifeline ends the container's main process, and
            // with it PID 1 and every process of the container: the kernel
            // does the killing, and the daemon runs no `runc kill` for it
            // (a process per container fewer; BENCHMARKS.md). A container
            // that has not stopped by then is killed by the forced remove.
            drop(_lifeline);
            self.stopped(&id, NATURAL_STOP).await;
            self.remove_unremoved().await;
            if self.container().unremoved.contains(&id) {
                return Err(RuntimeError::Docker {
                    action: format!("removing container {id}"),
                    reason: "the daemon refused; `subrt gc` will find it".into(),
                });
            }
            return Ok(());
        }
        kill(&self.docker, &id).await
    }

    /// Waits until container `id` is not running, for at most `limit`.
    async fn stopped(&self, id: &str, limit: Duration) {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut wait = self.docker.wait_container(id, Some(options));
        // An error (it is gone, or exited non-zero) means it is not running.
        let _ = tokio::time::timeout(limit, wait.next()).await;
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
        match remove(&self.docker, id).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(container = id, error = %e, "cannot remove container");
                false
            }
        }
    }
}

impl Runner for Inner {
    fn core(&self) -> &Core {
        &self.core
    }

    async fn run(&self, process: Process<'_>, captures: [Capture; 2]) -> (Exit, [Capture; 2]) {
        // Copies: `process` (with its stdin) stays whole for the agent.
        let Process {
            line,
            args,
            cwd,
            user,
            epoch,
            cancel,
            scope,
            phase,
            env,
            deadline,
            tx,
            ..
        } = process;
        let note = async |text: String| {
            let _ = tx.send(RuntimeEvent::Note(text)).await;
        };
        if !self.lifecycle().may_start(epoch) {
            return (Exit::killed(false), captures);
        }
        let container = match self.ensure_container().await {
            Ok(id) => id,
            Err(e) => {
                note(e.to_string()).await;
                return (Exit::not_started(), captures);
            }
        };
        // A kill or cleanup that came while the container was being made
        // found no container to remove: this one is removed here, and the
        // command does not start in it.
        if !self.lifecycle().may_start(epoch) {
            let _ = self.kill_container().await;
            return (Exit::killed(false), captures);
        }
        // What the command costs: the container's counters, read around it
        // (when it runs alone in the container).
        let meter = match scope {
            KillScope::Session => self.container().cgroup.clone(),
            KillScope::Command => None,
        };
        let meter = meter.map(|cgroup| {
            cgroup.reset_peak();
            let before = cgroup.usage();
            (cgroup, before)
        });
        let working_dir = match cwd {
            Some(cwd) if cwd.starts_with('/') => cwd.to_owned(),
            Some(cwd) => format!("{}/{cwd}", self.settings.workdir.trim_end_matches('/')),
            None => self.settings.workdir.clone(),
        };
        let argv: Vec<String> = ["/bin/sh", "-c", line]
            .into_iter()
            .chain((!args.is_empty()).then_some("sh"))
            .chain(args.iter().map(String::as_str))
            .map(str::to_owned)
            .collect();
        let user = user
            .map(str::to_owned)
            .or_else(|| self.default_user.clone());
        let agent = self.container().agent.clone();
        if let Some(agent) = agent {
            let command = through_agent::Prepared {
                container: &container,
                argv,
                working_dir,
                user,
                meter,
            };
            return self
                .run_through_agent(&agent, command, process, captures)
                .await;
        }
        let stdin = process.stdin;
        let options = CreateExecOptions {
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: Some(argv),
            working_dir: Some(working_dir),
            user,
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
                () = driver::abandoned(tx, cancel) => break,
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
                    if !self.lifecycle().killed(epoch) {
                        note(format!("reading the output of {line:?}: {e}")).await;
                    }
                    break;
                }
                None => break,
            };
            let capture = match stream {
                StreamKind::Stdout => &mut out,
                StreamKind::Stderr => &mut err,
            };
            if !driver::forward(tx, capture, stream, phase, data).await {
                break;
            }
        }
        if let Some(writer) = writer {
            writer.abort();
        }
        let exit = if timed_out || tx.is_closed() || cancel.is_cancelled() {
            if let Err(e) = self.kill_exec(&exec, scope).await {
                note(e.to_string()).await;
            }
            Exit::killed(timed_out)
        } else if self.lifecycle().killed(epoch) {
            Exit::killed(false)
        } else {
            let exit = self.exit_of(&exec).await;
            self.account(exit, meter.as_ref(), &container, line, tx)
                .await
        };
        (exit, [out, err])
    }
}

impl Inner {
    /// A finished command's cost (the container's counters, when `meter`
    /// was read around it; else what `exit` has) and, when it failed, what
    /// ended it.
    async fn account(
        &self,
        mut exit: Exit,
        meter: Option<&(Cgroup, CgroupUsage)>,
        container: &str,
        line: &str,
        tx: &tokio::sync::mpsc::Sender<RuntimeEvent>,
    ) -> Exit {
        let used = meter.map(|(cgroup, before)| cgroup.usage().since(before));
        if let Some(used) = &used {
            exit.usage = used.as_usage();
        }
        if !exit.success() {
            let oom = used.and_then(|u| u.oom_kills).map(|kills| kills > 0);
            exit.ended_by = self.what_ended(container, line, oom, tx).await;
        }
        exit
    }
}

impl Inner {
    /// Checks what a call asks for and starts it.
    async fn start_call(
        self: &Arc<Self>,
        request: ExecRequest,
        scope: KillScope,
    ) -> Result<EventStream, RuntimeError> {
        let container = self.container().id.clone();
        if let Some(user) = &request.user
            && let Some(container) = container
        {
            self.ids_of(&container, user).await?;
        }
        driver::start(self, request, scope)
    }

    /// `user` in the container's `/etc/passwd` (read through the archive
    /// API, so that users added by commands count).
    /// The ids of `user` in container `id`, resolved once per container
    /// (a read of its `/etc/passwd` through the daemon).
    async fn ids_of(&self, container: &str, user: &str) -> Result<UserIds, RuntimeError> {
        if let Some(ids) = self.container().users.get(user) {
            return Ok(*ids);
        }
        let ids = self.user_ids(container, user).await?;
        self.container().users.insert(user.to_owned(), ids);
        Ok(ids)
    }

    async fn user_ids(&self, container: &str, user: &str) -> Result<UserIds, RuntimeError> {
        let archive = self.archive(container, UserIds { uid: 0, gid: 0 });
        let passwd = archive
            .read("/etc/passwd", 16 << 20)
            .await
            .map(|data| String::from_utf8_lossy(&data).into_owned())
            .unwrap_or_default();
        users::lookup(&passwd, user, "the container's /etc/passwd").map_err(|reason| {
            RuntimeError::User {
                user: user.to_owned(),
                reason,
            }
        })
    }

    /// The container (made if there is none) and the session user's ids.
    async fn file_access(&self) -> Result<(String, UserIds), FileError> {
        if self.lifecycle().cleaned {
            return Err(RuntimeError::CleanedUp.into());
        }
        let container = self.ensure_container().await?;
        let user = match &self.default_user {
            Some(user) => self.ids_of(&container, user).await?,
            None => UserIds { uid: 0, gid: 0 },
        };
        Ok((container, user))
    }

    fn archive<'a>(&'a self, container: &'a str, user: UserIds) -> files::Archive<'a> {
        files::Archive {
            docker: &self.docker,
            container,
            workdir: &self.settings.workdir,
            user,
            exec_user: self.default_user.as_deref(),
        }
    }

    /// Kills a command that went over time or lost its reader: the
    /// container ([`KillScope::Session`]), or the exec's processes, found
    /// through this host's `/proc` (the container when the daemon is
    /// remote, with a note).
    async fn kill_exec(&self, exec: &str, scope: KillScope) -> Result<(), RuntimeError> {
        if scope == KillScope::Command {
            let pid = self
                .docker
                .inspect_exec(exec)
                .await
                .ok()
                .and_then(|inspect| inspect.pid)
                .and_then(|pid| i32::try_from(pid).ok())
                .filter(|&pid| pid > 0);
            match pid {
                Some(pid) if process_tree::visible(pid) => {
                    process_tree::kill_tree(pid);
                    return Ok(());
                }
                // It ended meanwhile.
                Some(_) | None
                    if self
                        .docker
                        .inspect_exec(exec)
                        .await
                        .is_ok_and(|i| i.running != Some(true)) =>
                {
                    return Ok(());
                }
                _ => {
                    tracing::warn!(
                        exec,
                        "the exec's processes are not visible here: killing the container"
                    );
                }
            }
        }
        self.kill_container().await
    }

    /// The exit of a finished exec (see [`Exit::from_shell_code`]).
    async fn exit_of(&self, exec: &str) -> Exit {
        for _ in 0..100 {
            match self.docker.inspect_exec(exec).await {
                Ok(inspect) if inspect.running != Some(true) => {
                    let code = inspect.exit_code.unwrap_or(-1) as i32;
                    return Exit::from_shell_code(code, false);
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => {
                    tracing::warn!(exec, error = %e, "cannot inspect exec");
                    break;
                }
            }
        }
        // The container died under it (killed from outside, or out of
        // memory): what ended it is found by the caller.
        Exit::killed(false)
    }

    /// What ended a command that failed in container `id`, when it was not
    /// the command itself: the out-of-memory killer (the daemon's
    /// `OOMKilled`, new since the last report), or a kill of the container
    /// from outside subrt (`docker kill`, its PID 1 killed), after which
    /// the next command gets a fresh container. Said in a note.
    async fn what_ended(
        &self,
        id: &str,
        line: &str,
        oom_in_cgroup: Option<bool>,
        tx: &tokio::sync::mpsc::Sender<RuntimeEvent>,
    ) -> Option<KilledBy> {
        let state = match self.docker.inspect_container(id, None).await {
            Ok(inspect) => inspect.state.unwrap_or_default(),
            // Gone altogether: removed from outside.
            Err(e) if daemon::is_not_found(&e) => Default::default(),
            Err(e) => {
                tracing::warn!(container = id, error = %e, "cannot inspect container");
                return None;
            }
        };
        let running = state.running == Some(true);
        // The cgroup's own count when it is readable; the daemon's flag
        // (set only when the container's init was the one killed, and for
        // the container's whole life) otherwise.
        let oom = oom_in_cgroup.unwrap_or_else(|| {
            state.oom_killed == Some(true) && {
                let mut container = self.container();
                !std::mem::replace(&mut container.oom_reported, true)
            }
        });
        let (cause, note) = if oom {
            let limit = self.settings.memory.as_deref().unwrap_or("the host's");
            let note = format!(
                "{line:?} ran out of memory: the kernel's out-of-memory killer ended it \
                 (memory limit {limit})"
            );
            (KilledBy::OutOfMemory, note)
        } else if !running {
            let note = format!(
                "killed from outside subrt: container {} stopped under {line:?} \
                 (docker kill or docker stop, or its PID 1 was killed)",
                id.get(..12).unwrap_or(id)
            );
            (KilledBy::Outside, note)
        } else {
            return None;
        };
        let _ = tx.send(RuntimeEvent::Note(note)).await;
        if !running {
            // What ran in it is gone: the next command gets a new one.
            let _ = self.kill_container().await;
        }
        Some(cause)
    }
}

#[async_trait]
impl SubmissionRuntime for DockerRuntime {
    async fn stream(&self, request: ExecRequest) -> Result<EventStream, RuntimeError> {
        self.inner.start_call(request, KillScope::Session).await
    }

    async fn start(&self, request: ExecRequest) -> Result<EventStream, RuntimeError> {
        self.inner.start_call(request, KillScope::Command).await
    }

    async fn read_file(&self, path: &str, limit: u64) -> Result<Bytes, FileError> {
        let (container, user) = self.inner.file_access().await?;
        self.inner.archive(&container, user).read(path, limit).await
    }

    async fn write_file(&self, path: &str, data: Bytes) -> Result<(), FileError> {
        let (container, user) = self.inner.file_access().await?;
        self.inner.archive(&container, user).write(path, data).await
    }

    fn poll(&self) -> Option<i32> {
        self.inner.lifecycle().poll()
    }

    async fn kill(&self) -> Result<(), RuntimeError> {
        self.inner.lifecycle().request_kill();
        self.inner.kill_container().await
    }

    async fn cleanup(&self) -> Result<(), RuntimeError> {
        self.inner.lifecycle().clean();
        let killed = self.inner.kill_container().await;
        // Also those a timeout or a dropped stream killed, whose removal may
        // still be under way in the command's task.
        self.inner.remove_unremoved().await;
        killed
    }

    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            kind: self.inner.core.environment.kind.clone(),
            state: self.inner.lifecycle().state(),
            pid: None,
            pgid: None,
            container_id: self.inner.container().id.clone(),
            containment: super::Containment::Container,
            init_pid: None,
            slurm_job: None,
            commands_start: Some(lock(&self.inner.path).label()),
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
