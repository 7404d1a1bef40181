//! What a container of a launch looks like: image, labels, mounts, limits.
//! Pure functions of the launch and the spec, so they are tested without a
//! daemon.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};

use crate::runtime::owner::Owner;
use crate::runtime::{LaunchSpec, RuntimeError, beneath};
use crate::spec::{DockerConfig, Mount, MountMode, parse_size};

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
    /// Before each of the run's own labels (batch, submission, the user's).
    pub const USER_PREFIX: &str = "subrt.label.";
}

/// `/static/<save_path>`.
pub(crate) fn static_path(save_path: &Path) -> String {
    Path::new("/static").join(save_path).display().to_string()
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

/// `body` with subrt's agent (the host file `executable`, mounted
/// read-only) as the container's init in place of `docker-init` and the
/// waiting shell: it reaps, starts commands, and is the lifeline (see
/// `agent.rs`).
pub(crate) fn with_agent(mut body: ContainerCreateBody, executable: &Path) -> ContainerCreateBody {
    body.entrypoint = Some(vec![super::agent::MOUNT_POINT.to_owned()]);
    body.cmd = Some(vec![]);
    body.attach_stdout = Some(true);
    body.attach_stderr = Some(true);
    let host = body.host_config.get_or_insert_default();
    host.init = Some(false);
    host.binds.get_or_insert_default().push(format!(
        "{}:{}:ro",
        executable.display(),
        super::agent::MOUNT_POINT
    ));
    body
}

/// The container to create for `launch`: image, labels, mounts, limits.
pub(crate) fn container_body(
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
    // The daemon is handed real paths: a link it would follow is resolved
    // here, where subrt checks where it leads.
    let working_dir = match std::fs::canonicalize(&launch.working_dir) {
        Ok(dir) if dir.is_dir() => dir,
        _ if settings.mount_workspace => {
            return Err(RuntimeError::WorkingDir {
                path: launch.working_dir.clone(),
                reason: "it does not exist or is not a directory".into(),
            });
        }
        _ => {
            std::path::absolute(&launch.working_dir).unwrap_or_else(|_| launch.working_dir.clone())
        }
    };
    let in_submission = |what: String, path: &Path| {
        beneath::resolve_in_submission(&working_dir, path)
            .map_err(|source| RuntimeError::Path { what, source })
    };

    let mut binds = Vec::new();
    if settings.mount_workspace {
        binds.push(format!(
            "{}:{}:rw",
            working_dir.display(),
            workdir.display()
        ));
    }
    for (name, asset) in &launch.static_assets {
        let source = in_submission(format!("static asset `{name}`"), &asset.path)?;
        binds.push(format!(
            "{}:{}:ro",
            source.display(),
            static_path(&asset.save_path)
        ));
    }
    for mount in settings.extra_mounts.iter().chain(&launch.mounts) {
        let source = in_submission(
            format!("mount source {}", mount.source.display()),
            &working_dir.join(&mount.source),
        )?;
        let mount = Mount {
            source,
            ..mount.clone()
        };
        binds.push(bind_of(&mount, &working_dir, &workdir).map_err(invalid)?);
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

    // The environment's `limits` (the same on every runtime) over the
    // Docker table's own.
    let limits = &launch.environment.limits;
    let memory_text = limits.memory.as_ref().or(settings.memory.as_ref());
    let memory = match memory_text {
        Some(text) => Some(parse_size(text).map(|b| b as i64).ok_or_else(|| {
            invalid(format!(
                "memory `{text}` is not a size like \"512m\" or \"1g\""
            ))
        })?),
        None => None,
    };
    let pids_limit = limits
        .pids
        .and_then(|p| i64::try_from(p).ok())
        .or(settings.pids_limit);
    let mut ulimits = Vec::new();
    for (name, value) in [
        ("fsize", limits.file_size_bytes()),
        ("nofile", limits.open_files),
    ] {
        if let Some(value) = value.and_then(|v| i64::try_from(v).ok()) {
            ulimits.push(bollard::models::ResourcesUlimits {
                name: Some(name.to_owned()),
                soft: Some(value),
                hard: Some(value),
            });
        }
    }
    let tmpfs = limits.tmp_bytes().map(|bytes| {
        HashMap::from([(
            "/tmp".to_owned(),
            format!("rw,nosuid,nodev,size={bytes},mode=1777"),
        )])
    });
    let nano_cpus = match limits.cpus.or(settings.cpus) {
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
        (labels::OWNER.to_owned(), owner.label()),
    ]);
    if settings.keep_container_after_clean {
        labels.insert(labels::KEEP.to_owned(), "true".to_owned());
    }
    for (key, value) in &launch.labels {
        labels.insert(format!("{}{key}", labels::USER_PREFIX), value.clone());
    }
    Ok(ContainerCreateBody {
        image: Some(settings.image.clone()),
        // PID 1 (docker-init) reaps orphans; its child waits for end-of-file
        // on stdin, which comes when the owner's attached connection closes
        // (the owner died, or dropped the runtime). Then the container stops,
        // and is removed unless the spec keeps it.
        entrypoint: Some(vec![]),
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), "read -r _ || :".into()]),
        open_stdin: Some(true),
        stdin_once: Some(true),
        attach_stdin: Some(true),
        working_dir: Some(workdir.display().to_string()),
        // The container's own processes run as root, every command as its
        // user (see `DockerRuntime`'s doc): with no-new-privileges, a
        // command run as root in a container whose process is another user
        // would get no capabilities at all.
        user: Some("0:0".into()),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        // With no network (the default), no network either for the daemon
        // to set up: it then skips the prestart hook that re-executes
        // dockerd once per container, about a third of the CPU a container
        // costs (measured in BENCHMARKS.md). The container still has its
        // own network namespace with loopback up, as with `none`.
        network_disabled: Some(settings.network == "none"),
        host_config: Some(HostConfig {
            binds: Some(binds),
            network_mode: Some(settings.network.clone()),
            memory,
            // No swap beyond the limit: it means what it says.
            memory_swap: memory,
            nano_cpus,
            pids_limit,
            ulimits: (!ulimits.is_empty()).then_some(ulimits),
            tmpfs,
            security_opt: Some(vec!["no-new-privileges".into()]),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            init: Some(true),
            auto_remove: Some(!settings.keep_container_after_clean),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_carries_the_runs_labels_and_its_lifeline() {
        let mut launch = LaunchSpec::new(crate::spec::EnvironmentSpec::local("env"), "/tmp");
        launch.labels.insert("batch".into(), "01B".into());
        launch.labels.insert("student".into(), "alice".into());
        let settings = DockerConfig::new("image:1");
        let body = container_body(&launch, &settings, &mut Vec::new()).unwrap();
        let labels = body.labels.unwrap();
        assert_eq!(labels["subrt.label.batch"], "01B");
        assert_eq!(labels["subrt.label.student"], "alice");
        assert_eq!(labels[labels::RUN], launch.run_id);
        // The main process waits on a stdin the daemon closes with the
        // owner's connection; the container goes when it stops.
        assert_eq!((body.open_stdin, body.stdin_once), (Some(true), Some(true)));
        assert_eq!(body.host_config.unwrap().auto_remove, Some(true));
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
