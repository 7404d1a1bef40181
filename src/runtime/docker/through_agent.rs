//! A command of a Docker session run through the container's agent (see
//! [`super::agent`]): the same results as through `docker exec`, from the
//! agent's frames.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::agent::{Link, Reply};
use super::agent_protocol::{Exited, Start};
use super::{Inner, UserIds};
use crate::runtime::capture::Capture;
use crate::runtime::cgroup::{Cgroup, CgroupUsage};
use crate::runtime::driver::{self, Exit, Process, Runner, sleep_until};
use crate::runtime::{KillScope, RuntimeEvent, StreamKind, Usage};

/// How long a killed command's end may take to come back from the agent
/// before the container is killed instead.
const KILL_CONFIRMED_WITHIN: Duration = Duration::from_secs(5);

/// What [`Inner::run`] made of a command for the container.
pub(super) struct Prepared<'a> {
    pub container: &'a str,
    pub argv: Vec<String>,
    pub working_dir: String,
    /// As the request or the session names it (`None`: the container's).
    pub user: Option<String>,
    /// The container's cgroup and its counters before the command, when
    /// the command runs alone in it.
    pub meter: Option<(Cgroup, CgroupUsage)>,
}

impl Inner {
    /// Runs `command` through `agent`: its output into events and
    /// `captures`, its end from the agent's `wait4` of it.
    pub(super) async fn run_through_agent(
        &self,
        agent: &Arc<Link>,
        prepared: Prepared<'_>,
        process: Process<'_>,
        captures: [Capture; 2],
    ) -> (Exit, [Capture; 2]) {
        let Prepared {
            container,
            argv,
            working_dir,
            user,
            meter,
        } = prepared;
        let Process {
            line,
            epoch,
            cancel,
            scope,
            phase,
            stdin,
            env,
            deadline,
            tx,
            ..
        } = process;
        let note = async |text: String| {
            let _ = tx.send(RuntimeEvent::Note(text)).await;
        };
        let ids = match &user {
            Some(user) => match self.ids_of(container, user).await {
                Ok(ids) => ids,
                Err(e) => {
                    note(e.to_string()).await;
                    return (Exit::not_started(), captures);
                }
            },
            None => UserIds { uid: 0, gid: 0 },
        };
        let start = Start {
            argv,
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            cwd: working_dir,
            uid: ids.uid,
            gid: ids.gid,
            stdin: stdin.is_some(),
        };
        let (id, mut replies) = match agent.start(&start, stdin).await {
            Ok(started) => started,
            Err(why) => {
                note(format!(
                    "cannot run {line:?} in container {container}: {why}"
                ))
                .await;
                return (Exit::not_started(), captures);
            }
        };

        let [mut out, mut err] = captures;
        let mut timed_out = false;
        let mut ended = None;
        loop {
            let reply = tokio::select! {
                reply = replies.recv() => reply,
                () = sleep_until(deadline) => {
                    timed_out = true;
                    break;
                }
                () = driver::abandoned(tx, cancel) => break,
            };
            let (stream, data) = match reply {
                Some(Reply::Started) => continue,
                Some(Reply::Stdout(data)) => (StreamKind::Stdout, data),
                Some(Reply::Stderr(data)) => (StreamKind::Stderr, data),
                Some(Reply::Exited(exited)) => {
                    ended = Some(Ok(exited));
                    break;
                }
                Some(Reply::Failed(why)) => {
                    ended = Some(Err(why));
                    break;
                }
                // The connection ended: the container was killed or died.
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
        let abandoned = tx.is_closed() || cancel.is_cancelled();
        if ended.is_none() && (timed_out || abandoned) {
            self.kill_through_agent(agent, id, scope, &mut replies)
                .await;
            return (Exit::killed(timed_out), [out, err]);
        }
        let exit = match ended {
            Some(Err(why)) => {
                note(format!(
                    "cannot run {line:?} in container {container}: {why}"
                ))
                .await;
                Exit::not_started()
            }
            _ if self.lifecycle().killed(epoch) => Exit::killed(false),
            None => {
                // Under the command, the container went (killed from
                // outside, out of memory): what ended it, or lost.
                let oom = meter.as_ref().and_then(|(cgroup, before)| {
                    cgroup
                        .usage()
                        .since(before)
                        .oom_kills
                        .map(|kills| kills > 0)
                });
                let mut exit = Exit::killed(false);
                exit.ended_by = self.what_ended(container, line, oom, tx).await;
                if exit.ended_by.is_none() {
                    exit = Exit::lost(
                        format!("the connection to container {container}'s agent ended"),
                        false,
                    );
                }
                exit
            }
            Some(Ok(exited)) => {
                // As through `docker exec`: a shell's 128+N is signal N.
                let status = std::process::ExitStatus::from_raw(exited.status);
                let mut exit = match status.code() {
                    Some(code) => Exit::from_shell_code(code, false),
                    None => Exit::from_status(status, false),
                };
                exit.usage = usage_of(&exited);
                self.account(exit, meter.as_ref(), container, line, tx)
                    .await
            }
        };
        (exit, [out, err])
    }

    /// Kills a command that went over time or lost its reader: its tree
    /// through the agent ([`KillScope::Command`], the container if the
    /// agent does not confirm it), or the container.
    async fn kill_through_agent(
        &self,
        agent: &Link,
        id: u32,
        scope: KillScope,
        replies: &mut mpsc::Receiver<Reply>,
    ) {
        if scope == KillScope::Command && agent.signal(id, libc::SIGKILL).await.is_ok() {
            let confirmed = tokio::time::timeout(KILL_CONFIRMED_WITHIN, async {
                while let Some(reply) = replies.recv().await {
                    if matches!(reply, Reply::Exited(_) | Reply::Failed(_)) {
                        return true;
                    }
                }
                false
            })
            .await;
            if confirmed == Ok(true) {
                return;
            }
        }
        if let Err(e) = self.kill_container().await {
            tracing::warn!(error = %e, "killing the container");
        }
    }
}

/// What a command cost, from the agent's `wait4` of it.
fn usage_of(exited: &Exited) -> Usage {
    Usage {
        peak_memory_bytes: Some(exited.max_rss_kib * 1024),
        cpu_user_seconds: Some(exited.user_us as f64 / 1e6),
        cpu_system_seconds: Some(exited.system_us as f64 / 1e6),
    }
}
