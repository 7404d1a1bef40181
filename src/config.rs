//! `config.toml`: the environments, the run store and the defaults.
//!
//! Every error names the file, and where the problem has a place in it, the
//! line and column, e.g. `config.toml:7:1: unknown field `imagee``.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::runlog::StoreLimits;
use crate::spec::{EnvironmentSpec, parse_size};

/// The default configuration file, looked up in the current directory.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// A loaded configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (`None` for the built-in configuration).
    pub path: Option<PathBuf>,
    /// The environment used when none is named.
    pub default_environment: String,
    /// Where run logs are stored, resolved against the config file's folder.
    pub store_dir: PathBuf,
    /// How much the store keeps (`[store] max_run_bytes`, `max_bytes`).
    pub store_limits: StoreLimits,
    /// The environments, in the order of the file.
    pub environments: Vec<EnvironmentSpec>,
    /// Commands the TUI starts on the default environment when it opens
    /// (`[ui] startup`), run in the config file's folder.
    pub startup: Vec<String>,
}

/// What went wrong while loading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the
    /// wrong type, or breaks a rule of the format.
    #[error("{location}: {message}")]
    Invalid {
        /// Where in which file.
        location: Location,
        /// What was wrong and what was expected.
        message: String,
    },
    /// No environment of that name is configured.
    #[error(
        "{origin}: no environment named `{name}` (configured: {})",
        list(available)
    )]
    UnknownEnvironment {
        /// The name asked for.
        name: String,
        /// The config file, or "built-in configuration".
        origin: String,
        /// The names that are configured.
        available: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A place in a config file: `path:line:column`, both 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// Line, from 1; 0 when the error has no place in the file.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.path.display())
        } else {
            write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
        }
    }
}

impl Location {
    /// The place of byte range `span` of `source`, the text of `path`.
    pub fn of(path: &Path, source: &str, span: Option<Range<usize>>) -> Self {
        let Some(span) = span else {
            return Self {
                path: path.to_owned(),
                line: 0,
                column: 0,
            };
        };
        let before = &source[..span.start.min(source.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self {
            path: path.to_owned(),
            line,
            column,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    default_environment: Option<Spanned<String>>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    environments: Vec<Spanned<EnvironmentSpec>>,
    #[serde(default)]
    ui: RawUi,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    #[serde(default)]
    startup: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default = "default_store_dir")]
    dir: PathBuf,
    max_run_bytes: Option<Spanned<RawSize>>,
    max_bytes: Option<Spanned<RawSize>>,
}

/// A size: bytes, or a string such as `"100m"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            dir: default_store_dir(),
            max_run_bytes: None,
            max_bytes: None,
        }
    }
}

fn default_store_dir() -> PathBuf {
    PathBuf::from("runs")
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&source, path)
    }

    /// Loads `explicit` when given; otherwise `./config.toml` when it exists,
    /// else the [built-in configuration](Config::builtin).
    pub fn load_or_builtin(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        match explicit {
            Some(path) => Self::load(path),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => Self::load(DEFAULT_CONFIG_FILE),
            None => Ok(Self::builtin()),
        }
    }

    /// One `local` environment that inherits the caller's environment, and
    /// the store in [`user_store_dir`]: what subrt uses when there is no
    /// config file.
    pub fn builtin() -> Self {
        let mut local = EnvironmentSpec::local("local");
        local.environment.include_os_env = true;
        Self {
            path: None,
            default_environment: local.name.clone(),
            store_dir: user_store_dir(),
            store_limits: StoreLimits::default(),
            environments: vec![local],
            startup: Vec::new(),
        }
    }

    /// Parses `source` as the contents of the file `path`.
    pub fn parse(source: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |span: Option<Range<usize>>, message: String| ConfigError::Invalid {
            location: Location::of(path, source, span),
            message,
        };
        let raw: RawConfig =
            toml::from_str(source).map_err(|e| invalid(e.span(), e.message().trim().to_owned()))?;

        let mut environments: Vec<EnvironmentSpec> = Vec::with_capacity(raw.environments.len());
        for spanned in raw.environments {
            let span = spanned.span();
            let spec = spanned.into_inner();
            if let Err(message) = spec.check() {
                return Err(invalid(Some(span), message));
            }
            if environments.iter().any(|e| e.name == spec.name) {
                return Err(invalid(
                    Some(span),
                    format!("environment `{}` is defined twice", spec.name),
                ));
            }
            environments.push(spec);
        }

        if environments.is_empty() {
            return Err(invalid(
                None,
                "no [[environments]]: a config needs at least one (see the shipped config.toml)"
                    .into(),
            ));
        }
        let default_environment = match raw.default_environment {
            Some(name) => {
                if !environments.iter().any(|e| &e.name == name.get_ref()) {
                    return Err(invalid(
                        Some(name.span()),
                        format!(
                            "default_environment `{}` is not defined (environments: {})",
                            name.get_ref(),
                            list(&names(&environments))
                        ),
                    ));
                }
                name.into_inner()
            }
            None => environments
                .first()
                .map(|e| e.name.clone())
                .unwrap_or_default(),
        };

        let size = |field: &str, value: Option<Spanned<RawSize>>| match value {
            None => Ok(None),
            Some(spanned) => {
                let span = spanned.span();
                let bytes = match spanned.into_inner() {
                    RawSize::Bytes(bytes) => Some(bytes),
                    RawSize::Text(text) => parse_size(&text),
                };
                match bytes {
                    Some(bytes) if bytes > 0 => Ok(Some(bytes)),
                    _ => Err(invalid(
                        Some(span),
                        format!("[store] {field} is not a size like \"100m\" or \"1g\""),
                    )),
                }
            }
        };
        let store_limits = StoreLimits {
            max_run_bytes: size("max_run_bytes", raw.store.max_run_bytes)?
                .unwrap_or(StoreLimits::default().max_run_bytes),
            max_bytes: size("max_bytes", raw.store.max_bytes)?,
        };

        let base = path.parent().unwrap_or(Path::new("."));
        Ok(Self {
            path: Some(path.to_owned()),
            default_environment,
            store_limits,
            store_dir: base.join(raw.store.dir),
            environments,
            startup: raw.ui.startup,
        })
    }

    /// The environment called `name`, or the default one when `None`.
    pub fn environment(&self, name: Option<&str>) -> Result<&EnvironmentSpec, ConfigError> {
        let name = name.unwrap_or(&self.default_environment);
        self.environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ConfigError::UnknownEnvironment {
                name: name.to_owned(),
                origin: self.origin(),
                available: names(&self.environments),
            })
    }

    /// The config file's path for messages, or "built-in configuration".
    pub fn origin(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "built-in configuration".to_owned(),
        }
    }
}

/// The variable that names the store over the config file's (`SUBRT_STORE`):
/// the CLI, the dashboard and the Python package all read and write there.
pub const STORE_ENV: &str = "SUBRT_STORE";

/// The store `SUBRT_STORE` names, if it is set and not empty.
pub fn env_store_dir() -> Option<PathBuf> {
    std::env::var_os(STORE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where runs go without a config file: `$XDG_STATE_HOME/subrt/runs`, else
/// `~/.local/state/subrt/runs`, else `./runs`; not the current directory, so
/// running subrt somewhere leaves nothing there.
pub fn user_store_dir() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")));
    match state {
        Some(state) => state.join("subrt").join("runs"),
        None => default_store_dir(),
    }
}

fn names(environments: &[EnvironmentSpec]) -> Vec<String> {
    environments.iter().map(|e| e.name.clone()).collect()
}
