//! The Slurm runtime against the 3-node cluster of `assets/slurm/cluster.sh`:
//! the contract on the host's node and on a node in a network namespace,
//! and what is left on the cluster after a session.

mod common;
#[macro_use]
mod contract;

use std::sync::Arc;
use std::time::Duration;

use subrt::runtime::{ExecRequest, LaunchSpec, SubmissionRuntime, spawn_runtime};
use subrt::spec::{EnvironmentSpec, SlurmConfig};

use common::slurm::{cluster, jobs_named};

fn spec(node: Option<&str>) -> EnvironmentSpec {
    let mut spec = EnvironmentSpec::local("slurm-test");
    spec.kind = "slurm".into();
    spec.slurm = Some(SlurmConfig {
        nodes: node.map(str::to_owned),
        ..SlurmConfig::default()
    });
    spec
}

/// A workspace on the filesystem every node of this cluster shares.
fn workspace() -> std::path::PathBuf {
    tempfile::tempdir().unwrap().keep()
}

/// Sessions on `node` (any node when `None`).
struct Slurm {
    node: Option<&'static str>,
}

impl contract::Target for Slurm {
    async fn runtime(&self, setup: &[&str]) -> Arc<dyn SubmissionRuntime> {
        let mut spec = spec(self.node);
        spec.setup.commands = setup.iter().map(|s| s.to_string()).collect();
        Arc::from(
            spawn_runtime(LaunchSpec::new(spec, workspace()))
                .await
                .unwrap(),
        )
    }

    /// Every node of this cluster is a process of this machine.
    async fn alive(&self, _: &Arc<dyn SubmissionRuntime>, needle: &str) -> bool {
        !common::live_processes(needle).is_empty()
    }
}

mod on_the_host_node {
    use super::*;
    contract_tests!(if cluster() {
        Slurm { node: Some("n1") }
    } else {
        return;
    });
}

mod on_a_node_in_a_namespace {
    use super::*;
    contract_tests!(if cluster() {
        Slurm { node: Some("n2") }
    } else {
        return;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allocation_is_named_and_recorded_and_ends_at_cleanup() {
    if !cluster() {
        return;
    }
    let launch = LaunchSpec::new(spec(Some("n3")), workspace());
    let run_id = launch.run_id.clone();
    let rt = spawn_runtime(launch).await.unwrap();
    let job = rt.info().slurm_job.expect("a Slurm session has a job");
    assert_eq!(job.node, "n3");
    let listed = jobs_named(&run_id);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].starts_with(&format!(
        "{} RUNNING n3 subrt-slurm-test-{run_id}",
        job.job_id
    )));
    let result = rt
        .execute(ExecRequest::new("echo $SLURMD_NODENAME $SLURM_JOB_ID"))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&result.stdout.data),
        format!("n3 {}\n", job.job_id)
    );
    rt.cleanup().await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || jobs_named(&run_id).is_empty()),
        "the job is gone after cleanup: {:?}",
        jobs_named(&run_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_partition_is_named() {
    if !cluster() {
        return;
    }
    let mut spec = spec(None);
    spec.slurm.as_mut().unwrap().partition = Some("nosuch".into());
    let error = subrt::runtime::registry::builtins()
        .check(&spec)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no partition `nosuch`") && error.contains("debug"),
        "{error}"
    );
    let error = spawn_runtime(LaunchSpec::new(spec, workspace()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("salloc") && error.contains("partition"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_outside_ends_the_command_as_killed() {
    if !cluster() {
        return;
    }
    let rt = spawn_runtime(LaunchSpec::new(spec(None), workspace()))
        .await
        .unwrap();
    let job = rt.info().slurm_job.unwrap();
    let sleep = common::unique_sleep();
    let mut events = rt
        .stream(ExecRequest::new(format!("sleep {sleep}")))
        .await
        .unwrap();
    assert!(common::eventually(Duration::from_secs(5), || {
        !common::live_processes(&format!("sleep {sleep}")).is_empty()
    }));
    std::process::Command::new("scancel")
        .arg(&job.job_id)
        .status()
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next_event().await {
            if let subrt::runtime::RuntimeEvent::Finished(result) = event {
                return result;
            }
        }
        panic!("no result")
    })
    .await
    .expect("the command ends once its job is cancelled");
    assert!(result.killed, "{result:?}");
    assert!(common::gone(&format!("sleep {sleep}")));
    rt.cleanup().await.unwrap();
}
