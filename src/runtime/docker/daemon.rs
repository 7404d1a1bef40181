//! The connection to the Docker daemon: connecting, what its errors mean,
//! images, and the kill and remove calls that the runtime and `subrt gc`
//! share.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bollard::query_parameters::{
    CreateImageOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use futures_util::StreamExt;

use crate::runtime::RuntimeError;

/// The daemon tried when neither the spec nor `DOCKER_HOST` names one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long connecting to the daemon may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any call may take: bollard's default, as `connect_with_host`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Connects to the daemon of `settings` (its `host`, else `DOCKER_HOST`,
/// else the local socket) and agrees on an API version.
///
/// The version is agreed once per daemon and process: asking `/version`
/// makes the daemon run `runc --version` and `docker-init --version`, two
/// processes for every session of a batch otherwise. Later connections to
/// the same daemon only `/_ping` it, which is what tells a daemon that went
/// down from one that answers.
///
/// # Errors
///
/// [`RuntimeError::DockerUnreachable`], naming the socket or address, when
/// the daemon does not answer within 5 s or refuses.
pub async fn connect(host: Option<&str>) -> Result<Docker, RuntimeError> {
    let target = match host {
        Some(host) => host.to_owned(),
        None => std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_owned()),
    };
    if let Some(docker) = agreed(&target) {
        answer(&target, docker.ping()).await?;
        return Ok(docker);
    }
    let docker =
        Docker::connect_with_host(&target).map_err(|e| RuntimeError::DockerUnreachable {
            host: target.clone(),
            reason: e.to_string(),
        })?;
    let docker = answer(&target, docker.negotiate_version()).await?;
    crate::runtime::fork_gate::lock(&AGREED).insert(target, docker.client_version());
    Ok(docker)
}

/// What the daemon at `host` answered within [`CONNECT_TIMEOUT`].
async fn answer<T>(
    host: &str,
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, RuntimeError> {
    let unreachable = |reason| RuntimeError::DockerUnreachable {
        host: host.to_owned(),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, call).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// The API version agreed with each daemon so far, by host.
static AGREED: Mutex<BTreeMap<String, ClientVersion>> = Mutex::new(BTreeMap::new());

/// A client of `target` speaking the version agreed before, if one was and
/// the address is a local socket or plain HTTP (others negotiate again).
fn agreed(target: &str) -> Option<Docker> {
    let version = *crate::runtime::fork_gate::lock(&AGREED).get(target)?;
    let timeout = REQUEST_TIMEOUT.as_secs();
    if target.starts_with("unix://") {
        Docker::connect_with_unix(target, timeout, &version).ok()
    } else if target.starts_with("tcp://") || target.starts_with("http://") {
        Docker::connect_with_http(target, timeout, &version).ok()
    } else {
        None
    }
}

pub(crate) fn docker_error(
    action: impl Into<String>,
) -> impl FnOnce(bollard::errors::Error) -> RuntimeError {
    let action = action.into();
    move |e| RuntimeError::Docker {
        action,
        reason: daemon_message(&e),
    }
}

/// The daemon's own words when it gave some, else the client error.
pub fn daemon_message(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Makes sure `image` is on the daemon, pulling it if not. Returns notes
/// with the pull's progress.
pub(crate) async fn ensure_image(
    docker: &Docker,
    image: &str,
) -> Result<Vec<String>, RuntimeError> {
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

/// Kills a container with SIGKILL; it stays, stopped, until removed. A
/// container that is not running is not an error.
///
/// # Errors
///
/// The daemon refused, with its words.
pub async fn kill(docker: &Docker, id: &str) -> Result<(), RuntimeError> {
    let options = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    match docker.kill_container(id, Some(options)).await {
        // Not running (409) or gone (404): there is nothing left to kill.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        other => other.map_err(docker_error(format!("killing container {id}"))),
    }
}

/// How long a removal the daemon already has under way is waited for.
const REMOVAL_WAIT: Duration = Duration::from_secs(5);

/// Kills and removes a container (with its anonymous volumes); returns once
/// it is gone. A container that is already gone is not an error.
///
/// # Errors
///
/// The daemon refused, with its words, or a removal it had under way (the
/// auto-remove of a container that stopped) did not end within
/// `REMOVAL_WAIT`.
pub async fn remove(docker: &Docker, id: &str) -> Result<(), RuntimeError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Err(e) if is_not_found(&e) => Ok(()),
        // Removal already under way (auto-remove after the container
        // stopped): "removed" means gone, so wait for it to end.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => gone(docker, id).await,
        other => other.map_err(docker_error(format!("removing container {id}"))),
    }
}

/// Waits until container `id` no longer exists, at most [`REMOVAL_WAIT`].
async fn gone(docker: &Docker, id: &str) -> Result<(), RuntimeError> {
    let deadline = tokio::time::Instant::now() + REMOVAL_WAIT;
    while tokio::time::Instant::now() < deadline {
        match docker.inspect_container(id, None).await {
            Err(e) if is_not_found(&e) => return Ok(()),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    Err(RuntimeError::Docker {
        action: format!("removing container {id}"),
        reason: format!(
            "the daemon's own removal did not end within {} s",
            REMOVAL_WAIT.as_secs()
        ),
    })
}
