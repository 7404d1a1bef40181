//! Environment specs: where and how a submission runs.
//!
//! An [`EnvironmentSpec`] is one `[[environments]]` table of `config.toml`.
//! Its `type` picks the runtime (see [`crate::runtime::registry`]); the other
//! tables describe the environment variables, the setup commands, how the
//! command line is composed and the backend-specific settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The placeholder that [`CommandConfig::entry_file`] replaces.
pub const ENTRY_FILE_PLACEHOLDER: &str = "{entry_file}";

/// One environment a submission can run in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Name users pick the environment by (`subrt run --env NAME`).
    pub name: String,
    /// Runtime type, looked up in the registry: `"local"`, `"docker"`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Environment variables of every command.
    #[serde(default)]
    pub environment: EnvironmentConfig,
    /// Commands that prepare the environment before the first command.
    #[serde(default)]
    pub setup: SetupConfig,
    /// How the command line of a submission is composed.
    #[serde(default)]
    pub commands: CommandConfig,
    /// What the seed snapshots of a workspace (see [`SnapshotConfig`]).
    #[serde(default, skip_serializing_if = "SnapshotConfig::is_default")]
    pub snapshot: SnapshotConfig,
    /// Settings of the local runtime.
    #[serde(default)]
    pub local: LocalConfig,
    /// Settings of the Docker runtime; required when `type = "docker"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerConfig>,
    /// Settings of the Slurm runtime (`type = "slurm"`); every field has a
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmConfig>,
    /// What a session may use, on every runtime where it maps (see
    /// [`Limits`]).
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
}

/// What a session may use. Each limit applies where the runtime can apply
/// it: a sandboxed local session (cgroups, rlimits, its tmpfs), Docker
/// (the container's limits), Slurm (the allocation's).
///
/// | field | local sandbox | Docker | Slurm |
/// |---|---|---|---|
/// | `memory` | cgroup `memory.max` / `limit_in_bytes` | `--memory` | `--mem` |
/// | `pids` | cgroup `pids.max` | `--pids-limit` | (not mapped) |
/// | `cpus` | cgroup CPU quota | `--cpus` | `--cpus-per-task` (rounded up) |
/// | `tmp` | size of its `/tmp` and `/dev/shm` | a `/tmp` tmpfs of that size | (not mapped) |
/// | `file_size` | `RLIMIT_FSIZE` | `--ulimit fsize` | (not mapped) |
/// | `open_files` | `RLIMIT_NOFILE` | `--ulimit nofile` | (not mapped) |
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory, e.g. `"512m"`; no swap beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Processes (and threads) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// CPU, in cores (`1.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Size of `/tmp` (and `/dev/shm`), e.g. `"256m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp: Option<String>,
    /// Largest file a process may write, e.g. `"1g"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<String>,
    /// Descriptors a process may have open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
}

impl Limits {
    /// No limit set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// `memory` in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory.as_deref().and_then(parse_size)
    }

    /// `tmp` in bytes.
    pub fn tmp_bytes(&self) -> Option<u64> {
        self.tmp.as_deref().and_then(parse_size)
    }

    /// `file_size` in bytes.
    pub fn file_size_bytes(&self) -> Option<u64> {
        self.file_size.as_deref().and_then(parse_size)
    }

    /// Checks what the types cannot: sizes that are sizes, positive numbers.
    ///
    /// # Errors
    ///
    /// The field that is wrong, and why.
    pub fn check(&self) -> Result<(), String> {
        for (field, value) in [
            ("memory", &self.memory),
            ("tmp", &self.tmp),
            ("file_size", &self.file_size),
        ] {
            if let Some(text) = value
                && parse_size(text).is_none()
            {
                return Err(format!(
                    "limits.{field} `{text}` is not a size like \"512m\" or \"1g\""
                ));
            }
        }
        if let Some(cpus) = self.cpus
            && !(cpus.is_finite() && cpus > 0.0)
        {
            return Err(format!(
                "limits.cpus {cpus} is not a positive number of cores"
            ));
        }
        for (field, value) in [("pids", self.pids), ("open_files", self.open_files)] {
            if value == Some(0) {
                return Err(format!("limits.{field} 0 is not a positive number"));
            }
        }
        Ok(())
    }

    /// The limits in words, for `subrt specs`: `memory 512m, pids 256`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut push = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                parts.push(format!("{name} {value}"));
            }
        };
        push("memory", self.memory.clone());
        push("pids", self.pids.map(|p| p.to_string()));
        push("cpus", self.cpus.map(|c| c.to_string()));
        push("tmp", self.tmp.clone());
        push("file_size", self.file_size.clone());
        push("open_files", self.open_files.map(|n| n.to_string()));
        if parts.is_empty() {
            "no limits".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Environment variables of every command of an environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Variables set for every command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Start from the environment of the subrt process (default: no, so a run
    /// does not depend on who started it).
    #[serde(default)]
    pub include_os_env: bool,
}

/// Setup commands, run once per runtime before its first command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupConfig {
    /// Run before every first command.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Run after `commands` when the launch is an evaluation.
    #[serde(default)]
    pub eval_commands: Vec<String>,
    /// Run after the others when the launch resumes a session from a
    /// snapshot of its workspace (`LaunchSpec::resume`; the seed's
    /// `resume_commands`, which its harness ran itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resume_commands: Vec<String>,
}

/// `snapshot`: which files of a workspace the seed's harness archives
/// between checkpoints. subrt keeps the table so that the seed's configs
/// load and its harness reads the same values back; subrt itself archives
/// nothing (its run log keeps what commands printed, not the workspace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Globs of files always included.
    #[serde(default)]
    pub keep_globs: Option<Vec<String>>,
    /// Globs of files left out.
    #[serde(default = "default_ignore_globs")]
    pub ignore_globs: Vec<String>,
    /// `gz`, `bz2`, `xz` or `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Where archives go.
    #[serde(default)]
    pub archive_save_dir: Option<PathBuf>,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            keep_globs: None,
            ignore_globs: default_ignore_globs(),
            compression: default_compression(),
            archive_save_dir: None,
        }
    }
}

impl SnapshotConfig {
    fn is_default(&self) -> bool {
        *self == SnapshotConfig::default()
    }
}

/// The seed's default: compiled Python, virtual environments and its test
/// folder.
fn default_ignore_globs() -> Vec<String> {
    ["*.pyc", "venv/*", ".venv/*", ".evaluation_tests/*"]
        .map(String::from)
        .to_vec()
}

fn default_compression() -> String {
    "gz".to_owned()
}

/// How the command line of a submission is composed from its entry file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Format of the entry file; `{entry_file}` is replaced by its name.
    #[serde(default = "default_entry_file")]
    pub entry_file: String,
    /// Program that evaluates the entry file, e.g. `python3`.
    #[serde(default)]
    pub command: String,
    /// Program an agent uses instead of `command`; defaults to `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_command: Option<String>,
}

impl Default for CommandConfig {
    fn default() -> Self {
        Self {
            entry_file: default_entry_file(),
            command: String::new(),
            agent_command: None,
        }
    }
}

fn default_entry_file() -> String {
    ENTRY_FILE_PLACEHOLDER.to_owned()
}

/// Settings of the local runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Shell that runs each command as `<shell> -c <command>`; `null` (as
    /// the seed's configs write it) is the default, `/bin/sh`.
    #[serde(default = "default_shell", deserialize_with = "shell_or_default")]
    pub shell: PathBuf,
    /// The submission expects a terminal (not supported yet; recorded so
    /// configs written for it still load).
    #[serde(default)]
    pub requires_tty: bool,
    /// What holds a session's processes together (see [`LocalContainment`]).
    #[serde(default)]
    pub containment: LocalContainment,
    /// What the session is kept from (see [`Isolation`]).
    #[serde(default)]
    pub isolation: Isolation,
    /// How a sandboxed session is made (`isolation = "sandbox"`).
    #[serde(default, skip_serializing_if = "SandboxConfig::is_default")]
    pub sandbox: SandboxConfig,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            shell: default_shell(),
            requires_tty: false,
            containment: LocalContainment::default(),
            isolation: Isolation::default(),
            sandbox: SandboxConfig::default(),
        }
    }
}

/// `local.isolation`: what a local session is kept from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Nothing but its processes held together (see `containment`): it
    /// reads and writes what the user running subrt can. Trusted code only.
    #[default]
    Process,
    /// Namespaces, an unprivileged user and limits (see [`SandboxConfig`]).
    Sandbox,
}

/// `local.sandbox`: the view of the filesystem and the network a sandboxed
/// session gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// A root filesystem folder to run in (read-only), instead of the
    /// host's system folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    /// An image of the local Docker daemon to run in: exported once into
    /// the cache (`~/.cache/subrt/images`, shared with the Slurm runtime's
    /// exports) and used as `rootfs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The host folders shown read-only when there is no `rootfs`
    /// (default: `/usr`, `/bin`, `/sbin`, `/lib`, `/lib32`, `/lib64`,
    /// `/libx32`, `/etc`, `/opt`, those of them that exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Vec<PathBuf>>,
    /// Paths inside what is shown that are hidden (an empty folder or file
    /// in their place); by default `/etc/shadow`, `/etc/gshadow` and the
    /// Docker socket's paths, should they be shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hide: Vec<PathBuf>,
    /// Let commands use the host's network (default: loopback only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
    /// The user commands run as, `uid` or `uid:gid` (default `1000:1000`;
    /// never root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl SandboxConfig {
    fn is_default(&self) -> bool {
        *self == SandboxConfig::default()
    }
}

/// `local.containment`: how a local session's processes are held together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalContainment {
    /// A PID namespace where the kernel allows one, else process groups
    /// (with a note saying so).
    #[default]
    Auto,
    /// A PID namespace, or the session does not start.
    PidNamespace,
    /// Process groups only (`setsid` escapes them).
    ProcessGroup,
}

fn default_shell() -> PathBuf {
    PathBuf::from("/bin/sh")
}

fn shell_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Ok(Option::<PathBuf>::deserialize(d)?.unwrap_or_else(default_shell))
}

/// Settings of the Docker runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Image of the container, e.g. `python:3.12-slim`.
    pub image: String,
    /// The seed's Docker CLI binary. subrt talks to the daemon's API
    /// (`host` picks the daemon), so the field is kept but not used.
    #[serde(default = "default_binary", skip_serializing_if = "is_default_binary")]
    pub binary: String,
    /// Working directory inside the container; the workspace is mounted here.
    #[serde(default = "default_workdir")]
    pub workdir: String,
    /// Bind-mount the workspace read-write at `workdir`.
    #[serde(default = "default_true")]
    pub mount_workspace: bool,
    /// More bind mounts; a relative `source` is resolved against the
    /// workspace. A list of `{ source, target, mode }`, or the seed's
    /// mapping: `{ "host/path" = "/container/path" }` (read-only) or
    /// `{ "host/path" = { bind = "/container/path", mode = "rw" } }`.
    #[serde(default, deserialize_with = "mounts_list_or_map")]
    pub extra_mounts: Vec<Mount>,
    /// Docker network mode; `"none"` (the default) leaves only loopback.
    /// `null`, as the seed writes it, is Docker's default network,
    /// `"bridge"`.
    #[serde(default = "default_network", deserialize_with = "network_or_bridge")]
    pub network: String,
    /// User the commands run as (`uid`, `uid:gid` or a name in the image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Keep the container after cleanup (for inspection).
    #[serde(default)]
    pub keep_container_after_clean: bool,
    /// Memory limit, e.g. `"512m"` or `"1g"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. `1.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Maximum number of processes in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Docker daemon to use instead of `DOCKER_HOST` or the local socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Start commands through subrt's agent, the container's init, where
    /// the daemon runs on this host (`false`: always `docker exec`).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub agent: bool,
}

impl DockerConfig {
    /// Settings for `image` with every default: workspace mounted at
    /// `/workspace`, no network, no limits.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            binary: default_binary(),
            workdir: default_workdir(),
            mount_workspace: true,
            extra_mounts: Vec::new(),
            network: default_network(),
            user: None,
            keep_container_after_clean: false,
            memory: None,
            cpus: None,
            pids_limit: None,
            host: None,
            agent: true,
        }
    }
}

fn default_workdir() -> String {
    "/workspace".to_owned()
}

fn default_network() -> String {
    "none".to_owned()
}

fn network_or_bridge<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(|| "bridge".to_owned()))
}

fn default_binary() -> String {
    "docker".to_owned()
}

fn is_default_binary(binary: &str) -> bool {
    binary == "docker"
}

fn read_write() -> MountMode {
    MountMode::Rw
}

/// `extra_mounts` as a list of [`Mount`], or as the seed's mapping from a
/// host path to a container path or to `{ bind, mode }` (the Docker SDK's
/// shape). A visitor, not an untagged enum, so that an error inside either
/// form names its field (`unknown field `sorce``) rather than both forms.
fn mounts_list_or_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Mount>, D::Error> {
    use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};

    /// A target of the mapping form.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Target {
        Path(String),
        Bind(Bind),
    }
    // The Docker SDK's shape, whose mode is read-write unless said.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Bind {
        bind: String,
        #[serde(default = "read_write")]
        mode: MountMode,
    }

    struct Mounts;
    impl<'de> serde::de::Visitor<'de> for Mounts {
        type Value = Vec<Mount>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "a list of { source, target, mode } or a mapping of host path to \
                 container path (or to { bind, mode })",
            )
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::<Mount>::deserialize(SeqAccessDeserializer::new(seq))
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let map = BTreeMap::<PathBuf, Target>::deserialize(MapAccessDeserializer::new(map))?;
            Ok(map
                .into_iter()
                .map(|(source, target)| match target {
                    Target::Path(target) => Mount {
                        source,
                        target,
                        mode: MountMode::Ro,
                    },
                    Target::Bind(Bind { bind, mode }) => Mount {
                        source,
                        target: bind,
                        mode,
                    },
                })
                .collect())
        }
    }
    d.deserialize_any(Mounts)
}

fn is_true(value: &bool) -> bool {
    *value
}

fn default_true() -> bool {
    true
}

/// Settings of the Slurm runtime: what each session's allocation asks for.
///
/// A session is one allocation (`salloc`) of one task on one node; each
/// command is a step in it. The working dir must be on a filesystem the
/// nodes share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// Partition (`--partition`); the cluster's default without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Account charged (`--account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The allocation's time limit (`--time`, Slurm's format: `"30"`
    /// minutes, `"1:00:00"`); always set, so that an allocation whose owner
    /// vanished without a trace still ends. Commands' timeouts are subrt's
    /// own and much finer.
    #[serde(default = "default_slurm_time")]
    pub time: String,
    /// Memory of the allocation (`--mem`, e.g. `"512M"`); enforced by the
    /// cluster's cgroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// CPUs of the session's task (`--cpus-per-task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Nodes to run on (`--nodelist`, e.g. `"n2"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    /// Node features required (`--constraint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// More `salloc` arguments, as words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// Run each step in a container (`srun --container`), from `bundle` or
    /// `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<SlurmContainer>,
    /// In a batch, hand the allocation of a session that ended cleanly on to
    /// the next session asking for the same (default `true`; a submission
    /// then costs a step, not an allocation). `false`: a job of its own for
    /// every submission, as for accounting by job.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub reuse_allocations: bool,
}

/// `slurm.container`: the root filesystem steps run in, through the
/// cluster's `oci.conf` (runc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmContainer {
    /// An OCI bundle (a folder with `config.json` and its root filesystem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
    /// An image of the local Docker daemon, exported once into the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Where session bundles and exported images go (default
    /// `~/.cache/subrt/slurm`); on a filesystem the nodes share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            partition: None,
            account: None,
            time: default_slurm_time(),
            mem: None,
            cpus: None,
            nodes: None,
            constraint: None,
            extra_args: Vec::new(),
            container: None,
            reuse_allocations: true,
        }
    }
}

fn default_slurm_time() -> String {
    "60".to_owned()
}

/// A bind mount from the host into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Path on the host; relative paths are resolved against the workspace.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    /// Read-only or read-write (default read-only).
    #[serde(default)]
    pub mode: MountMode,
}

/// Whether a mount can be written to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountMode {
    /// Read-only.
    #[default]
    Ro,
    /// Read-write.
    Rw,
}

impl EnvironmentSpec {
    /// A local environment with default settings, for tests and the built-in
    /// configuration.
    pub fn local(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: "local".to_owned(),
            environment: EnvironmentConfig::default(),
            setup: SetupConfig::default(),
            commands: CommandConfig::default(),
            snapshot: SnapshotConfig::default(),
            local: LocalConfig::default(),
            docker: None,
            slurm: None,
            limits: Limits::default(),
        }
    }

    /// Checks what the fields' types cannot: a name that is not blank, and a
    /// `docker` table when `type = "docker"`.
    ///
    /// # Errors
    ///
    /// What is wrong, in words that name the field.
    pub fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("environment name is empty".into());
        }
        if self.kind == "docker" && self.docker.is_none() {
            return Err(format!(
                "environment `{}` has type \"docker\" but no `docker` table \
                 (at least `docker = {{ image = \"...\" }}`)",
                self.name
            ));
        }
        self.limits
            .check()
            .map_err(|e| format!("environment `{}`: {e}", self.name))?;
        if self.local.sandbox.rootfs.is_some() && self.local.sandbox.image.is_some() {
            return Err(format!(
                "environment `{}`: local.sandbox takes `rootfs` or `image`, not both",
                self.name
            ));
        }
        if self.local.isolation == Isolation::Sandbox
            && let Some(user) = &self.local.sandbox.user
            && crate::runtime::sandbox::parse_user(user).is_none()
        {
            return Err(format!(
                "environment `{}`: local.sandbox.user `{user}` is not `uid` or `uid:gid` \
                 (numbers, not 0: the sandbox never runs commands as root)",
                self.name
            ));
        }
        if let Some(docker) = &self.docker {
            if let Some(memory) = &docker.memory
                && parse_size(memory).is_none()
            {
                return Err(format!(
                    "environment `{}`: docker.memory `{memory}` is not a size like \"512m\" or \"1g\"",
                    self.name
                ));
            }
            if let Some(cpus) = docker.cpus
                && !(cpus.is_finite() && cpus > 0.0)
            {
                return Err(format!(
                    "environment `{}`: docker.cpus {cpus} is not a positive number of cores",
                    self.name
                ));
            }
            if let Some(pids) = docker.pids_limit
                && pids <= 0
            {
                return Err(format!(
                    "environment `{}`: docker.pids_limit {pids} is not a positive number \
                     (leave it out for no limit)",
                    self.name
                ));
            }
        }
        if let Some(container) = self.slurm.as_ref().and_then(|s| s.container.as_ref())
            && container.bundle.is_some() == container.image.is_some()
        {
            return Err(format!(
                "environment `{}`: `slurm.container` needs one of `bundle` (an OCI bundle) \
                 or `image` (an image of the local Docker daemon)",
                self.name
            ));
        }
        Ok(())
    }

    /// The setup commands of a launch, in the order they run: `commands`,
    /// then `eval_commands` when `is_evaluation`, then `resume_commands`
    /// when `resume`.
    pub fn setup_commands(&self, is_evaluation: bool, resume: bool) -> Vec<String> {
        let mut commands = self.setup.commands.clone();
        if is_evaluation {
            commands.extend(self.setup.eval_commands.iter().cloned());
        }
        if resume {
            commands.extend(self.setup.resume_commands.iter().cloned());
        }
        commands
    }

    /// The entry file's name as the spec formats it:
    /// `entry_file = "{entry_file}.py"` turns `main` into `main.py`.
    pub fn format_entry_file(&self, entry_file: &str) -> String {
        self.commands
            .entry_file
            .replace(ENTRY_FILE_PLACEHOLDER, entry_file)
    }

    /// The command line that runs `entry_file`: the evaluation `command`, or
    /// `agent_command` (falling back to `command`) when `for_agent`.
    pub fn compose_command(&self, entry_file: &str, for_agent: bool) -> String {
        let program = match (&self.commands.agent_command, for_agent) {
            (Some(agent), true) => agent.as_str(),
            _ => self.commands.command.as_str(),
        };
        let entry = self.format_entry_file(entry_file);
        match (program.trim(), entry.trim()) {
            ("", entry) => entry.to_owned(),
            (program, "") => program.to_owned(),
            (program, entry) => format!("{program} {entry}"),
        }
    }

    /// The environment of a command, merged in order (later wins): the OS
    /// environment when `include_os_env`, the spec's `env`, `launch_env`,
    /// then `request_env`.
    pub fn merged_env(
        &self,
        launch_env: &BTreeMap<String, String>,
        request_env: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if self.environment.include_os_env {
            env.extend(
                std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
            );
        }
        for layer in [&self.environment.env, launch_env, request_env] {
            env.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        env
    }
}

/// Parses a size: bytes, or a number with `k`, `m`, `g` (powers of 1024, as
/// Docker reads them; an optional trailing `b` is accepted), as in
/// `memory = "512m"` or `max_run_bytes = "1g"`.
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => lower.split_at(i),
        None => (lower, ""),
    };
    let number: f64 = digits.parse().ok()?;
    let scale = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes >= 1.0 && bytes < i64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_reads_them() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("100kb"), Some(100 << 10));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("1t"), None);
    }

    #[test]
    fn compose_uses_agent_command_only_for_agents() {
        let mut spec = EnvironmentSpec::local("py");
        spec.commands.entry_file = "{entry_file}.py".into();
        spec.commands.command = "python3".into();
        assert_eq!(spec.compose_command("main", false), "python3 main.py");
        assert_eq!(spec.compose_command("main", true), "python3 main.py");
        spec.commands.agent_command = Some("python3 -u".into());
        assert_eq!(spec.compose_command("main", true), "python3 -u main.py");
        assert_eq!(spec.compose_command("main", false), "python3 main.py");
    }

    #[test]
    fn eval_setup_commands_follow_the_common_ones() {
        let mut spec = EnvironmentSpec::local("x");
        spec.setup.commands = vec!["a".into()];
        spec.setup.eval_commands = vec!["b".into()];
        assert_eq!(spec.setup_commands(false, false), ["a"]);
        assert_eq!(spec.setup_commands(true, false), ["a", "b"]);
        spec.setup.resume_commands = vec!["c".into()];
        assert_eq!(spec.setup_commands(false, true), ["a", "c"]);
        assert_eq!(spec.setup_commands(true, true), ["a", "b", "c"]);
    }

    /// The fields of the seed's own environment configs, as it writes them.
    #[test]
    fn the_seeds_fields_load_and_mean_what_they_mean_there() {
        let spec: EnvironmentSpec = serde_json::from_value(serde_json::json!({
            "type": "docker", "name": "py",
            "setup": {"resume_commands": ["python -m venv .venv"]},
            "snapshot": {"compression": "xz", "keep_globs": ["*.py"]},
            "local": {"shell": null},
            "docker": {
                "image": "python:3.12", "binary": "podman", "network": null,
                "extra_mounts": {"data": "/data", "/cache": {"bind": "/cache", "mode": "ro"},
                                 "out": {"bind": "/out"}},
            },
        }))
        .unwrap();
        assert_eq!(spec.setup.resume_commands, ["python -m venv .venv"]);
        assert_eq!(spec.snapshot.compression, "xz");
        assert_eq!(spec.local.shell, PathBuf::from("/bin/sh"));
        let docker = spec.docker.as_ref().unwrap();
        assert_eq!(
            (docker.binary.as_str(), docker.network.as_str()),
            ("podman", "bridge")
        );
        let mounts: Vec<_> = docker
            .extra_mounts
            .iter()
            .map(|m| (m.source.to_str().unwrap(), m.target.as_str(), m.mode))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/cache", "/cache", MountMode::Ro),
                ("data", "/data", MountMode::Ro),
                ("out", "/out", MountMode::Rw),
            ]
        );
        // Left out, the network is still subrt's default: none.
        let plain: DockerConfig =
            serde_json::from_value(serde_json::json!({"image": "i"})).unwrap();
        assert_eq!(plain.network, "none");
        let bad = serde_json::from_value::<DockerConfig>(
            serde_json::json!({"image": "i", "extra_mounts": 3}),
        );
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("mapping of host path")
        );
    }

    #[test]
    fn later_env_layers_win() {
        let mut spec = EnvironmentSpec::local("x");
        spec.environment.env = [("A".into(), "spec".into()), ("B".into(), "spec".into())].into();
        let launch = [("B".into(), "launch".into()), ("C".into(), "launch".into())].into();
        let request = [("C".into(), "request".into())].into();
        let env = spec.merged_env(&launch, &request);
        assert_eq!(env["A"], "spec");
        assert_eq!(env["B"], "launch");
        assert_eq!(env["C"], "request");
        assert!(!env.contains_key("PATH"), "OS env only when asked for");
        spec.environment.include_os_env = true;
        // cargo always runs tests with PATH set.
        assert!(spec.merged_env(&launch, &request).contains_key("PATH"));
    }
}
