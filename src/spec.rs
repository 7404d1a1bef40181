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
    /// Shell that runs each command as `<shell> -c <command>`.
    #[serde(default = "default_shell")]
    pub shell: PathBuf,
    /// The submission expects a terminal (not supported yet; recorded so
    /// configs written for it still load).
    #[serde(default)]
    pub requires_tty: bool,
    /// What holds a session's processes together (see [`LocalContainment`]).
    #[serde(default)]
    pub containment: LocalContainment,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            shell: default_shell(),
            requires_tty: false,
            containment: LocalContainment::default(),
        }
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

/// Settings of the Docker runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Image of the container, e.g. `python:3.12-slim`.
    pub image: String,
    /// Working directory inside the container; the workspace is mounted here.
    #[serde(default = "default_workdir")]
    pub workdir: String,
    /// Bind-mount the workspace read-write at `workdir`.
    #[serde(default = "default_true")]
    pub mount_workspace: bool,
    /// More bind mounts; a relative `source` is resolved against the workspace.
    #[serde(default)]
    pub extra_mounts: Vec<Mount>,
    /// Docker network mode; `"none"` leaves only loopback.
    #[serde(default = "default_network")]
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
}

impl DockerConfig {
    /// Settings for `image` with every default: workspace mounted at
    /// `/workspace`, no network, no limits.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
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
        }
    }
}

fn default_workdir() -> String {
    "/workspace".to_owned()
}

fn default_network() -> String {
    "none".to_owned()
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
            local: LocalConfig::default(),
            docker: None,
            slurm: None,
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
    /// then `eval_commands` when `is_evaluation`.
    pub fn setup_commands(&self, is_evaluation: bool) -> Vec<String> {
        let mut commands = self.setup.commands.clone();
        if is_evaluation {
            commands.extend(self.setup.eval_commands.iter().cloned());
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
        assert_eq!(spec.setup_commands(false), ["a"]);
        assert_eq!(spec.setup_commands(true), ["a", "b"]);
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
