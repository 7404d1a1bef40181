//! `subrt specs`: the configured environments and whether each can run
//! here now.

use std::io::Write;

use color_eyre::eyre::Result;

use subrt::config::Config;
use subrt::runtime::Containment;
use subrt::runtime::registry;

pub(super) async fn specs(config: &Config) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:<8} {:<14} {:<10} STATUS",
        "NAME", "TYPE", "CONTAINMENT", "ISOLATION"
    )?;
    let mut weak = false;
    let mut open = Vec::new();
    let mut limited = Vec::new();
    let mut docker_paths = Vec::new();
    for spec in &config.environments {
        if let Some(docker) = &spec.docker {
            let path = subrt::runtime::docker::command_path(docker.agent, docker.host.as_deref());
            docker_paths.push(format!("{}: {path}", spec.name));
        }
        let status = match registry::builtins().check(spec).await {
            Ok(()) => "ready".to_owned(),
            Err(e) => format!("unavailable: {e}"),
        };
        let default = if spec.name == config.default_environment {
            " (default)"
        } else {
            ""
        };
        let containment = containment_of(spec);
        weak |= containment == Some(Containment::ProcessGroup);
        let containment = containment.map_or("none".to_owned(), |c| c.to_string());
        let isolation = isolation_of(spec);
        if isolation == "none" {
            open.push(spec.name.clone());
        }
        if !spec.limits.is_empty() {
            limited.push(format!("{}: {}", spec.name, spec.limits.describe()));
        }
        writeln!(
            out,
            "{:<20} {:<8} {containment:<14} {isolation:<10} {status}{default}",
            spec.name, spec.kind
        )?;
    }
    for line in &limited {
        writeln!(out, "  limits of {line}")?;
    }
    // Before the image is seen: one of another architecture, or in which
    // the agent does not come up, goes through `docker exec` (the run log
    // says which a session took).
    for line in &docker_paths {
        writeln!(out, "  {line}")?;
    }
    // What isolating nothing means, plainly, below the table.
    if !open.is_empty() {
        writeln!(
            out,
            "\nisolation none ({}): commands read and write whatever this user can and reach \
             the network. For untrusted code use local.isolation = \"sandbox\" or Docker.",
            open.join(", ")
        )?;
    }
    // What a weak containment means, once, below the table.
    if weak {
        let reason = subrt::runtime::pid_namespaces()
            .err()
            .unwrap_or("chosen in the config");
        writeln!(
            out,
            "\nprocess-group: PID namespaces are not used ({reason}); a process that calls \
             setsid can outlive its session. Run as root (or with CAP_SYS_ADMIN) for pid-namespace."
        )?;
    }
    Ok(0)
}

/// What a session of `spec` is kept from: `none` (a local session with
/// `isolation = "process"`), `sandbox`, `container` (Docker, Slurm with a
/// container), `node` (a Slurm step without one: the node's cgroup only).
fn isolation_of(spec: &subrt::spec::EnvironmentSpec) -> &'static str {
    match spec.kind.as_str() {
        "docker" => "container",
        "slurm" if spec.slurm.as_ref().is_some_and(|s| s.container.is_some()) => "container",
        "slurm" => "none",
        _ => match spec.local.isolation {
            subrt::spec::Isolation::Sandbox => "sandbox",
            subrt::spec::Isolation::Process => "none",
        },
    }
}

/// What holds the processes of a session of `spec` together; `None` when
/// the spec asks for what this machine cannot give.
fn containment_of(spec: &subrt::spec::EnvironmentSpec) -> Option<Containment> {
    match spec.kind.as_str() {
        "docker" => Some(Containment::Container),
        "slurm" => Some(Containment::SlurmStep),
        _ => subrt::runtime::local_containment(spec).ok(),
    }
}
