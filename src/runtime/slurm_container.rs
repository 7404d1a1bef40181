//! Slurm steps in a container: `srun --container=BUNDLE` runs a step in an
//! OCI bundle (through the cluster's `oci.conf`, runc here), with its own
//! root filesystem and PID namespace.
//!
//! Each session gets a bundle of its own, `<cache>/sessions/<run id>/`,
//! whose `rootfs` is hard links to a shared root filesystem, mounted
//! read-only, and
//! mounts the working dir read-write at its own path (where the command
//! starts), static assets read-only at theirs, and a fresh `/tmp`. The root
//! filesystem is the environment's `bundle`, or its `image` exported once
//! from the local Docker daemon into `<cache>/images/`. `<cache>` is
//! `container.cache`, else `$XDG_CACHE_HOME/subrt/slurm` (else
//! `~/.cache/subrt/slurm`): it must be on a filesystem the nodes share.
//!
//! In a container a step's processes end with the step (its PID namespace
//! goes), so background processes do not outlive their command there.

use std::path::{Path, PathBuf};

use bollard::models::ContainerCreateBody;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::docker::{connect, daemon_message};
use super::{LaunchSpec, RuntimeError};
use crate::spec::SlurmContainer;

/// What `runc spec` writes, without a terminal: the base of a bundle made
/// from an image.
const BASE_CONFIG: &str = r#"{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "subrt",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}"#;

/// A session's bundle; removed on drop.
#[derive(Debug)]
pub(crate) struct SessionBundle {
    pub(crate) dir: PathBuf,
}

impl Drop for SessionBundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

/// Where bundles and exported images are kept.
fn cache_dir(container: &SlurmContainer) -> PathBuf {
    if let Some(cache) = &container.cache {
        return cache.clone();
    }
    default_cache()
}

/// `~/.cache/subrt/slurm` (or `$XDG_CACHE_HOME`'s): exported images and
/// session bundles, unless a spec names its own cache.
pub(crate) fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("subrt").join("slurm")
}

/// Makes the bundle of the session `launch`.
///
/// # Errors
///
/// The bundle's `config.json` cannot be read, the image cannot be exported,
/// or the cache cannot be written.
pub(crate) async fn prepare(
    container: &SlurmContainer,
    launch: &LaunchSpec,
) -> Result<SessionBundle, RuntimeError> {
    let cache = cache_dir(container);
    let mut config: Value = match (&container.bundle, &container.image) {
        (Some(bundle), _) => {
            let path = bundle.join("config.json");
            let text = std::fs::read_to_string(&path).map_err(io_error(format!(
                "cannot read bundle config {}",
                path.display()
            )))?;
            let mut config: Value =
                serde_json::from_str(&text).map_err(|e| RuntimeError::InvalidSpec {
                    environment: launch.environment.name.clone(),
                    reason: format!("{}: {e}", path.display()),
                })?;
            let root = config["root"]["path"].as_str().unwrap_or("rootfs");
            let root = bundle.join(root);
            config["root"]["path"] = json!(root);
            config
        }
        (None, Some(image)) => {
            let rootfs = exported(image, &cache).await?;
            let mut config: Value = serde_json::from_str(BASE_CONFIG).expect("a valid template");
            config["root"]["path"] = json!(rootfs);
            config
        }
        (None, None) => {
            return Err(RuntimeError::InvalidSpec {
                environment: launch.environment.name.clone(),
                reason: "`slurm.container` needs `bundle` or `image`".into(),
            });
        }
    };

    let dir = cache.join("sessions").join(&launch.run_id);
    std::fs::create_dir_all(&dir)
        .map_err(io_error(format!("cannot create bundle {}", dir.display())))?;
    let bundle = SessionBundle { dir };
    let working_dir = launch.working_dir.display().to_string();
    config["process"]["terminal"] = json!(false);
    config["process"]["cwd"] = json!(working_dir);
    config["root"]["readonly"] = json!(true);
    // In order: a working dir under /tmp stays visible over the tmpfs.
    let mut mounts = vec![
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777"]}),
        json!({"destination": working_dir, "type": "bind", "source": working_dir,
               "options": ["rbind", "rw"]}),
    ];
    for asset in launch.static_assets.values() {
        let path = launch.working_dir.join(&asset.path).display().to_string();
        mounts.push(json!({"destination": path, "type": "bind", "source": path,
                           "options": ["rbind", "ro"]}));
    }
    match config["mounts"].as_array_mut() {
        Some(existing) => existing.extend(mounts),
        None => config["mounts"] = Value::Array(mounts),
    }
    // Slurm runs `<bundle>/rootfs` whatever `root.path` says, and runc
    // refuses a symlink there: the session's `rootfs` is a tree of hard
    // links to the shared one (cheap, and safe: it is mounted read-only).
    let root = PathBuf::from(config["root"]["path"].as_str().unwrap_or_default());
    let copy = bundle.dir.join("rootfs");
    let linked = tokio::process::Command::new("cp")
        .arg("-al")
        .arg(&root)
        .arg(&copy)
        .output()
        .await
        .map_err(io_error("cannot run cp".into()))?;
    if !linked.status.success() {
        return Err(RuntimeError::Io {
            context: format!("cannot link {} into {}", root.display(), copy.display()),
            source: std::io::Error::other(
                String::from_utf8_lossy(&linked.stderr).trim().to_owned(),
            ),
        });
    }
    config["root"]["path"] = json!("rootfs");
    let path = bundle.dir.join("config.json");
    std::fs::write(&path, config.to_string())
        .map_err(io_error(format!("cannot write {}", path.display())))?;
    Ok(bundle)
}

/// The root filesystem of `image`, exported from the local Docker daemon
/// into the cache the first time.
pub(crate) async fn exported(image: &str, cache: &Path) -> Result<PathBuf, RuntimeError> {
    let safe: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = cache.join("images").join(&safe);
    let rootfs = dir.join("rootfs");
    if dir.join(".complete").exists() {
        return Ok(rootfs);
    }
    let failed = |reason: String| RuntimeError::Image {
        image: image.to_owned(),
        reason,
    };
    let docker = connect(None).await?;
    docker
        .inspect_image(image)
        .await
        .map_err(|e| failed(format!("not on the local daemon: {}", daemon_message(&e))))?;
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["/bin/true".into()]),
        ..Default::default()
    };
    let created = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(|e| {
            failed(format!(
                "cannot create a container to export: {}",
                daemon_message(&e)
            ))
        })?;
    // Unpacked beside, then renamed: a half export is never taken for one.
    let making = cache
        .join("images")
        .join(format!(".{safe}.{}", std::process::id()));
    let unpacked = unpack(&docker, &created.id, &making.join("rootfs")).await;
    let _ = docker
        .remove_container(
            &created.id,
            None::<bollard::query_parameters::RemoveContainerOptions>,
        )
        .await;
    if let Err(reason) = unpacked {
        let _ = std::fs::remove_dir_all(&making);
        return Err(failed(reason));
    }
    std::fs::write(making.join(".complete"), b"")
        .map_err(io_error(format!("cannot write {}", making.display())))?;
    if std::fs::rename(&making, &dir).is_err() {
        // Another session exported it meanwhile.
        let _ = std::fs::remove_dir_all(&making);
    }
    Ok(rootfs)
}

/// `docker export` of container `id`, unpacked by `tar` into `into`.
async fn unpack(docker: &bollard::Docker, id: &str, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let mut tar = tokio::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let mut input = tar.stdin.take().expect("stdin is piped");
    let mut export = docker.export_container(id);
    while let Some(chunk) = export.next().await {
        let chunk = chunk.map_err(|e| format!("export failed: {}", daemon_message(&e)))?;
        input
            .write_all(&chunk)
            .await
            .map_err(|e| format!("tar stopped reading: {e}"))?;
    }
    drop(input);
    match tar.wait().await {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("tar failed: {status}")),
        Err(e) => Err(format!("tar: {e}")),
    }
}
