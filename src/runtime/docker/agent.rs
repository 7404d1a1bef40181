//! Commands of a Docker session through `subrt-agent` (the crate in
//! `agent/`), the container's init, instead of `docker exec`.
//!
//! An exec goes through the daemon, containerd's shim and `runc exec` (a
//! new process joining the container's namespaces and cgroup each time):
//! about 36 ms here. The agent is already in the container; starting a
//! command is a frame on the container's attach connection and a `fork`
//! there (BENCHMARKS.md has both). The connection is also the lifeline:
//! when it closes the agent kills every process of the container and exits.
//!
//! The agent is a static executable built by `build.rs` and embedded in
//! subrt; [`installed`] writes it once to a private folder of this user
//! and the container mounts it read-only as its entrypoint. The path is
//! taken when the daemon runs on this host (a bind mount of a host file)
//! and the image's architecture is this one's; otherwise, or with
//! `docker.agent = false`, commands go through `docker exec` as before
//! (see [`Path`]). Which one a session took is said in its run log and by
//! `subrt specs`.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bollard::container::LogOutput;
use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::agent_protocol as protocol;
use protocol::{Exited, Start};

/// The agent's executable, built by `build.rs` (empty where it is not
/// built: then no session takes this path).
static EXECUTABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/subrt-agent"));

/// Where the agent is mounted in a container.
pub(crate) const MOUNT_POINT: &str = "/.subrt-agent";
/// How long a new container's agent may take to say it is up.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Replies queued for one command before the connection's reader waits.
const QUEUE: usize = 256;
/// Bytes of stdin per frame.
const STDIN_CHUNK: usize = 256 * 1024;

/// How a session's commands start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// Through the agent, mounted from this host file.
    Agent(PathBuf),
    /// Through `docker exec`, and why.
    Exec(String),
}

impl Path {
    /// What `RuntimeInfo::commands_start` and the run log say:
    /// `subrt-agent`, or `docker exec (why)`.
    pub fn label(&self) -> String {
        match self {
            Path::Agent(_) => "subrt-agent".to_owned(),
            Path::Exec(why) => format!("docker exec ({why})"),
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Agent(_) => {
                f.write_str("commands start through subrt-agent, the container's init")
            }
            Path::Exec(why) => write!(f, "commands start through docker exec ({why})"),
        }
    }
}

/// Which path a session on `host` (the daemon's address, `None`: this
/// host's default), asking for the agent or not, takes, before the image
/// is known.
pub fn path_for(wanted: bool, host: Option<&str>) -> Path {
    if !wanted {
        return Path::Exec("docker.agent = false".into());
    }
    let host = host
        .map(str::to_owned)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| super::DEFAULT_HOST.to_owned());
    if !host.starts_with("unix://") {
        return Path::Exec(format!(
            "the daemon at {host} may not run on this host, where the agent is"
        ));
    }
    match installed() {
        Ok(path) => Path::Agent(path.to_owned()),
        Err(why) => Path::Exec(why.clone()),
    }
}

/// The image's architecture (Docker's name) is the agent's.
pub(crate) fn runs_on(architecture: &str) -> bool {
    let ours = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    architecture == ours
}

/// The agent's executable in this user's private folder of the temporary
/// directory, written there once per content.
///
/// # Errors
///
/// Why it is not there: not built for this platform, or the folder is not
/// this user's alone (a file anyone could swap would run as every
/// container's init), or it could not be written.
pub(crate) fn installed() -> Result<&'static FsPath, &'static String> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    crate::runtime::fork_gate::once(&INSTALLED, install).as_deref()
}

fn install() -> Result<PathBuf, String> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if EXECUTABLE.is_empty() {
        return Err("the agent is not built for this platform".into());
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("subrt-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not a folder of this user's alone; the agent is not put there",
            dir.display()
        ));
    }
    let mut hasher = std::hash::DefaultHasher::new();
    EXECUTABLE.hash(&mut hasher);
    let path = dir.join(format!("agent-{:016x}", hasher.finish()));
    if std::fs::read(&path).is_ok_and(|there| there == EXECUTABLE) {
        return Ok(path);
    }
    let write = || -> std::io::Result<()> {
        let temp = tempfile::Builder::new()
            .prefix(".agent")
            .tempfile_in(&dir)?;
        std::fs::write(temp.path(), EXECUTABLE)?;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))?;
        temp.persist(&path)?;
        Ok(())
    };
    write().map_err(|e| format!("cannot write the agent to {}: {e}", path.display()))?;
    Ok(path)
}

/// What the agent says of one command.
#[derive(Debug)]
pub(crate) enum Reply {
    Started,
    Stdout(Bytes),
    Stderr(Bytes),
    Exited(Exited),
    Failed(String),
}

type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// Where each running command's replies go; `open` is false once the
/// connection ended (a command started after that would wait forever).
#[derive(Default)]
struct Routes {
    open: bool,
    to: HashMap<u32, mpsc::Sender<Reply>>,
}

impl Routes {
    /// Ends every route: their commands see the connection gone.
    fn close(&mut self) {
        self.open = false;
        self.to.clear();
    }
}
type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// The connection to a container's agent.
pub(crate) struct Link {
    /// The agent's stdin; `None` once closed (the container then ends).
    input: tokio::sync::Mutex<Option<Input>>,
    routes: Arc<Mutex<Routes>>,
    next_id: AtomicU32,
    reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    /// Takes over a started container's attach connection and waits for
    /// its agent to say it is up.
    ///
    /// # Errors
    ///
    /// The agent did not say so within [`READY_WITHIN`] (it could not run
    /// there, or the container ended): why, as far as it is known.
    pub(crate) async fn open(input: Input, output: Output) -> Result<Self, String> {
        let routes = Arc::new(Mutex::new(Routes {
            open: true,
            to: HashMap::new(),
        }));
        let (ready_tx, ready_rx) = oneshot::channel();
        let reader = tokio::spawn(read_replies(output, Arc::clone(&routes), ready_tx));
        let link = Self {
            input: tokio::sync::Mutex::new(Some(input)),
            routes,
            next_id: AtomicU32::new(1),
            reader,
        };
        match tokio::time::timeout(READY_WITHIN, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(link),
            Ok(Ok(Err(said))) => Err(said),
            Ok(Err(_)) => Err("the container ended before its agent was up".into()),
            Err(_) => Err(format!(
                "its agent did not answer within {} s",
                READY_WITHIN.as_secs()
            )),
        }
    }

    /// Starts a command; its replies come on the returned receiver, which
    /// ends (without `Exited`) if the connection does.
    ///
    /// # Errors
    ///
    /// The connection is closed.
    pub(crate) async fn start(
        self: &Arc<Self>,
        start: &Start,
        stdin: Option<Bytes>,
    ) -> Result<(u32, mpsc::Receiver<Reply>), String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        {
            let mut routes = lock(&self.routes);
            if !routes.open {
                return Err("the connection to the container's agent has ended".into());
            }
            routes.to.insert(id, tx);
        }
        if let Err(e) = self.send(protocol::START, id, &start.encode()).await {
            lock(&self.routes).to.remove(&id);
            return Err(e);
        }
        if let Some(data) = stdin {
            let link = Arc::clone(self);
            tokio::spawn(async move {
                for chunk in data.chunks(STDIN_CHUNK) {
                    if link.send(protocol::STDIN, id, chunk).await.is_err() {
                        return;
                    }
                }
                let _ = link.send(protocol::STDIN, id, &[]).await;
            });
        }
        Ok((id, rx))
    }

    /// Signals command `id`'s group (and with SIGKILL its whole tree).
    pub(crate) async fn signal(&self, id: u32, signal: i32) -> Result<(), String> {
        self.send(protocol::SIGNAL, id, &[signal as u8]).await
    }

    async fn send(&self, kind: u8, id: u32, payload: &[u8]) -> Result<(), String> {
        let mut input = self.input.lock().await;
        let Some(pipe) = input.as_mut() else {
            return Err("the connection to the container's agent is closed".into());
        };
        let frame = protocol::frame(kind, id, payload);
        let written = async {
            pipe.write_all(&frame).await?;
            pipe.flush().await
        };
        written
            .await
            .map_err(|e| format!("writing to the container's agent: {e}"))
    }

    /// Closes the connection: the agent kills every process of the
    /// container and exits. Without waiting for a frame being written (the
    /// container's forced removal follows).
    pub(crate) fn close(&self) {
        if let Ok(mut input) = self.input.try_lock() {
            input.take();
        }
        self.reader.abort();
        lock(&self.routes).close();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the agent's frames and hands each to its command; the first,
/// `READY`, to `ready`. Ends with the connection, dropping every route.
async fn read_replies(
    mut output: Output,
    routes: Arc<Mutex<Routes>>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut buf = BytesMut::new();
    let mut said = String::new();
    'read: while let Some(item) = output.next().await {
        let data = match item {
            Ok(LogOutput::StdOut { message }) => message,
            Ok(LogOutput::StdErr { message }) | Ok(LogOutput::Console { message }) => {
                let text = String::from_utf8_lossy(&message);
                tracing::warn!(agent = %text.trim_end(), "the container's agent said");
                said.push_str(&text);
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading from the container's agent");
                break;
            }
        };
        buf.extend_from_slice(&data);
        while buf.len() >= protocol::HEADER {
            let header: [u8; protocol::HEADER] = buf[..protocol::HEADER].try_into().expect("size");
            let (kind, id, len) = protocol::parse_header(&header);
            if len > protocol::MAX_PAYLOAD {
                tracing::warn!(len, "a frame too big from the container's agent");
                break 'read;
            }
            if buf.len() < protocol::HEADER + len as usize {
                break;
            }
            buf.advance(protocol::HEADER);
            let payload = buf.split_to(len as usize).freeze();
            let reply = match kind {
                protocol::READY => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    continue;
                }
                protocol::STARTED => Reply::Started,
                protocol::STDOUT => Reply::Stdout(payload),
                protocol::STDERR => Reply::Stderr(payload),
                protocol::EXITED => match Exited::decode(&payload) {
                    Some(exited) => Reply::Exited(exited),
                    None => continue,
                },
                protocol::FAILED => Reply::Failed(String::from_utf8_lossy(&payload).into_owned()),
                _ => continue,
            };
            let last = matches!(reply, Reply::Exited(_) | Reply::Failed(_));
            let route = if last {
                lock(&routes).to.remove(&id)
            } else {
                lock(&routes).to.get(&id).cloned()
            };
            // A command whose caller is gone: its replies are dropped.
            if let Some(route) = route {
                let _ = route.send(reply).await;
            }
        }
    }
    if let Some(ready) = ready.take() {
        let said = said.trim();
        let _ = ready.send(Err(if said.is_empty() {
            "the container ended before its agent was up".into()
        } else {
            format!("the container ended before its agent was up: {said}")
        }));
    }
    lock(&routes).close();
}
