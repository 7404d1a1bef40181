//! Finding and removing containers that a subrt process left behind: the
//! code behind `subrt gc` and the TUI's leftover view.
//!
//! Every container subrt makes carries `subrt.owner = host/pid/start_time`.
//! A container is a leftover when that process is gone: on this host, no
//! process has that pid with that start time. Containers owned on another
//! host cannot be checked from here and count as owned, and containers kept
//! on purpose (`keep_container_after_clean`) are not leftovers either; `all`
//! takes every subrt container.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use serde::Serialize;

use super::RuntimeError;
use super::docker::labels;
use super::owner::Owner;

/// A subrt container and whether its owner still runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedContainer {
    /// Container id.
    pub id: String,
    /// Container name, without the leading `/`.
    pub name: String,
    /// The run it belongs to.
    pub run_id: String,
    /// Its environment.
    pub environment: String,
    /// Docker's state: running, exited...
    pub state: String,
    /// Its image, as the daemon names it.
    pub image: String,
    /// When it was created, in seconds since the Unix epoch.
    pub created: Option<i64>,
    /// The owner as labelled, `host/pid/start_time`.
    pub owner: String,
    /// Why it is (or is not) a leftover, in words.
    pub verdict: Verdict,
}

/// Whether a container's owner is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The owning process is gone: a leftover.
    OwnerGone,
    /// The owning process still runs.
    OwnerAlive,
    /// Owned on another host; cannot be checked from here.
    OtherHost,
    /// Kept after cleanup on purpose (`keep_container_after_clean`).
    Kept,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::OwnerGone => "owner gone",
            Verdict::OwnerAlive => "owner running",
            Verdict::OtherHost => "owner on another host",
            Verdict::Kept => "kept by its spec",
        })
    }
}

fn verdict(owner_label: &str) -> Verdict {
    match Owner::parse_label(owner_label) {
        Some(owner) if owner.host != super::owner::hostname() => Verdict::OtherHost,
        Some(owner) if owner.is_alive() => Verdict::OwnerAlive,
        _ => Verdict::OwnerGone,
    }
}

/// Every container labelled `subrt.managed=true` on `docker`, running or not.
pub async fn managed_containers(docker: &Docker) -> Result<Vec<ManagedContainer>, RuntimeError> {
    let filters = HashMap::from([("label", vec![format!("{}=true", labels::MANAGED)])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let summaries =
        docker
            .list_containers(Some(options))
            .await
            .map_err(|e| RuntimeError::Docker {
                action: "listing subrt containers".into(),
                reason: super::docker::daemon_message(&e),
            })?;
    Ok(summaries
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
            let owner = label(labels::OWNER);
            let verdict = match verdict(&owner) {
                Verdict::OwnerGone if label(labels::KEEP) == "true" => Verdict::Kept,
                other => other,
            };
            ManagedContainer {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                run_id: label(labels::RUN),
                environment: label(labels::ENV),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                created: c.created,
                verdict,
                owner,
            }
        })
        .collect())
}

/// The containers `subrt gc` removes: those whose owner is gone, or every
/// subrt container when `all`.
pub async fn leftovers(docker: &Docker, all: bool) -> Result<Vec<ManagedContainer>, RuntimeError> {
    let mut containers = managed_containers(docker).await?;
    containers.retain(|c| all || c.verdict == Verdict::OwnerGone);
    Ok(containers)
}

pub use super::docker::{kill, remove};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_parse_and_dead_ones_are_leftovers() {
        let owner = Owner::parse_label("box/42/1234").unwrap();
        assert_eq!(
            (owner.host.as_str(), owner.pid, owner.start_time),
            ("box", 42, Some(1234))
        );
        assert_eq!(verdict("elsewhere-host-x/1/1"), Verdict::OtherHost);
        let me = Owner::this_process();
        let label = format!("{}/{}/{}", me.host, me.pid, me.start_time.unwrap());
        assert_eq!(verdict(&label), Verdict::OwnerAlive);
        let stale = format!("{}/{}/{}", me.host, me.pid, me.start_time.unwrap() + 1);
        assert_eq!(
            verdict(&stale),
            Verdict::OwnerGone,
            "same pid, other start: a new process"
        );
        assert_eq!(verdict("garbage"), Verdict::OwnerGone);
    }
}
