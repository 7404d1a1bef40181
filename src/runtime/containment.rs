//! How a runtime keeps a session's processes together, and what this
//! machine allows.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::pid_namespace::PidNamespace;
use crate::spec::{EnvironmentSpec, LocalContainment};

/// What holds a session's processes, so that they can be killed as one and
/// die with subrt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Containment {
    /// A PID namespace per session whose init dies with subrt: nothing of
    /// the session survives it, `setsid` and double forks included.
    PidNamespace,
    /// A process group per command, with `PR_SET_PDEATHSIG` on its shell:
    /// what the kernel allows without namespaces. A process that leaves the
    /// group (`setsid`) or is not the shell escapes.
    ProcessGroup,
    /// A container per session (Docker).
    Container,
    /// A Slurm step per command, held by the node's cgroups
    /// (`proctrack/cgroup`), in an allocation that ends with subrt.
    SlurmStep,
}

impl Containment {
    /// A short phrase for `subrt specs` and the run log.
    pub fn describe(self) -> &'static str {
        match self {
            Containment::PidNamespace => "pid-namespace",
            Containment::ProcessGroup => {
                "process-group (weak: `setsid` escapes, and only the shell dies with subrt)"
            }
            Containment::Container => "container",
            Containment::SlurmStep => "slurm-step (proctrack/cgroup)",
        }
    }
}

impl std::fmt::Display for Containment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Containment::PidNamespace => "pid-namespace",
            Containment::ProcessGroup => "process-group",
            Containment::Container => "container",
            Containment::SlurmStep => "slurm-step",
        })
    }
}

/// Whether this process can make PID namespaces; the error is the kernel's
/// reason when it cannot. Tried once per process.
pub fn pid_namespaces() -> Result<(), &'static str> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    super::fork_gate::once(&PROBE, || {
        PidNamespace::create().map(drop).map_err(|e| e.to_string())
    })
    .as_ref()
    .map(|_| ())
    .map_err(String::as_str)
}

/// The containment a local session of `spec` gets here, or why the one the
/// spec insists on is not available.
///
/// # Errors
///
/// The spec asks for `pid-namespace` and the kernel refuses it.
pub fn local_containment(spec: &EnvironmentSpec) -> Result<Containment, String> {
    match spec.local.containment {
        LocalContainment::ProcessGroup => Ok(Containment::ProcessGroup),
        LocalContainment::Auto => Ok(match pid_namespaces() {
            Ok(()) => Containment::PidNamespace,
            Err(_) => Containment::ProcessGroup,
        }),
        LocalContainment::PidNamespace => pid_namespaces()
            .map(|()| Containment::PidNamespace)
            .map_err(|reason| format!("cannot create a PID namespace: {reason}")),
    }
}
