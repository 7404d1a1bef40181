//! A batch file: which submissions run, where, with which commands.
//!
//! TOML (`[[submissions]]` with defaults at the top), or JSON Lines (one
//! submission a line, for harnesses that generate them). Everything is
//! checked before anything starts: unknown keys, duplicate ids, unknown
//! environments, missing working dirs, assets and stdin files; each error
//! names the file, line and column (or the submission).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Config, Location};

/// A checked batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file, as given.
    pub path: PathBuf,
    /// Sessions run at once (`jobs`), unless `-j` says otherwise.
    pub jobs: Option<usize>,
    /// Labels of every run.
    pub labels: BTreeMap<String, String>,
    /// The submissions, in the file's order.
    pub submissions: Vec<Submission>,
}

/// One submission: one session, its commands in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// Unique in the file.
    pub id: String,
    /// Its working dir (resolved against the file's folder).
    pub workdir: PathBuf,
    /// Its environment's name.
    pub environment: String,
    /// Setup commands over the environment's, when given.
    pub setup: Option<Vec<String>>,
    /// Its commands.
    pub commands: Vec<Command>,
    /// The file's labels and its own.
    pub labels: BTreeMap<String, String>,
    /// Asset name to its host path.
    pub assets: BTreeMap<String, PathBuf>,
    /// Stop at the first command that fails.
    pub stop_on_failure: bool,
}

/// One command of a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Its name (`t2`), or its number.
    pub name: Option<String>,
    /// The shell command line.
    pub run: String,
    /// A file fed to its stdin.
    pub stdin: Option<PathBuf>,
    /// Its timeout.
    pub timeout: Option<Duration>,
}

/// A batch file that cannot run, and where.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read batch file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A problem with a place in the file.
    #[error("{location}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    environment: Option<Spanned<String>>,
    jobs: Option<usize>,
    timeout: Option<f64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    submissions: Vec<Spanned<RawSubmission>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubmission {
    id: Spanned<String>,
    workdir: Spanned<PathBuf>,
    environment: Option<Spanned<String>>,
    setup: Option<Vec<String>>,
    commands: Vec<Spanned<RawCommand>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    assets: BTreeMap<String, Spanned<PathBuf>>,
    #[serde(default)]
    stop_on_failure: bool,
    timeout: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Line(String),
    Full(FullCommand),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullCommand {
    name: Option<String>,
    run: String,
    stdin: Option<PathBuf>,
    timeout: Option<f64>,
}

/// What the command line gives on top of the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--env`: the environment of submissions that name none.
    pub environment: Option<String>,
    /// `--timeout`: the timeout of commands that have none.
    pub timeout: Option<Duration>,
}

impl Manifest {
    /// Reads and checks the batch file at `path` against `config`.
    ///
    /// # Errors
    ///
    /// The first problem found, with its place.
    pub fn load(
        path: &Path,
        config: &Config,
        overrides: &Overrides,
    ) -> Result<Self, ManifestError> {
        let source = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let jsonl = path.extension().is_some_and(|x| x == "jsonl");
        let raw = if jsonl {
            parse_jsonl(path, &source)?
        } else {
            toml::from_str::<RawFile>(&source).map_err(|e| ManifestError::Invalid {
                location: Location::of(path, &source, e.span()),
                message: e.message().trim().to_owned(),
            })?
        };
        check(path, &source, raw, config, overrides)
    }
}

/// JSON Lines: every line a submission; the defaults come from the
/// command line.
fn parse_jsonl(path: &Path, source: &str) -> Result<RawFile, ManifestError> {
    let mut submissions = Vec::new();
    let mut offset = 0;
    for (number, line) in source.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        if line.trim().is_empty() {
            continue;
        }
        let raw: JsonSubmission =
            serde_json::from_str(line).map_err(|e| ManifestError::Invalid {
                location: Location {
                    path: path.to_owned(),
                    line: number + 1,
                    column: e.column(),
                },
                message: e.to_string(),
            })?;
        let span = start..start + line.trim_end().len();
        let spanned = |value| Spanned::new(span.clone(), value);
        let submission = RawSubmission {
            id: spanned(raw.id),
            workdir: Spanned::new(span.clone(), raw.workdir),
            environment: raw.environment.map(spanned),
            setup: raw.setup,
            commands: raw
                .commands
                .into_iter()
                .map(|c| Spanned::new(span.clone(), c))
                .collect(),
            labels: raw.labels,
            assets: raw
                .assets
                .into_iter()
                .map(|(k, v)| (k, Spanned::new(span.clone(), v)))
                .collect(),
            stop_on_failure: raw.stop_on_failure,
            timeout: raw.timeout,
        };
        submissions.push(Spanned::new(span, submission));
    }
    Ok(RawFile {
        environment: None,
        jobs: None,
        timeout: None,
        labels: BTreeMap::new(),
        submissions,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSubmission {
    id: String,
    workdir: PathBuf,
    environment: Option<String>,
    setup: Option<Vec<String>>,
    commands: Vec<RawCommand>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    assets: BTreeMap<String, PathBuf>,
    #[serde(default)]
    stop_on_failure: bool,
    timeout: Option<f64>,
}

fn seconds(value: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
}

fn check(
    path: &Path,
    source: &str,
    raw: RawFile,
    config: &Config,
    overrides: &Overrides,
) -> Result<Manifest, ManifestError> {
    let invalid = |span: std::ops::Range<usize>, message: String| ManifestError::Invalid {
        location: Location::of(path, source, Some(span)),
        message,
    };
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
    let environment_of = |name: Option<&Spanned<String>>| -> Result<String, ManifestError> {
        let (name, span) = match name {
            Some(name) => (name.get_ref().clone(), Some(name.span())),
            // From the command line: no place in the file to point at.
            None => match &overrides.environment {
                Some(name) => (name.clone(), None),
                None => return Ok(config.default_environment.clone()),
            },
        };
        match (config.environment(Some(&name)), span) {
            (Ok(_), _) => Ok(name),
            (Err(e), Some(span)) => Err(invalid(span, e.to_string())),
            (Err(e), None) => Err(ManifestError::Invalid {
                location: Location::of(path, source, None),
                message: format!("--env {name}: {e}"),
            }),
        }
    };
    let file_environment = raw.environment.as_ref();
    let default_timeout = raw.timeout.and_then(seconds).or(overrides.timeout);
    if raw.submissions.is_empty() {
        return Err(invalid(0..0, "no [[submissions]]: nothing to run".into()));
    }
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut submissions = Vec::new();
    for spanned in raw.submissions {
        let span = spanned.span();
        let raw = spanned.into_inner();
        let id = raw.id.get_ref().clone();
        if id.trim().is_empty() || id.contains('/') {
            return Err(invalid(
                raw.id.span(),
                format!("submission id `{id}` is empty or has a `/`"),
            ));
        }
        if seen.insert(id.clone(), ()).is_some() {
            return Err(invalid(
                raw.id.span(),
                format!("submission id `{id}` is used twice"),
            ));
        }
        let environment = environment_of(raw.environment.as_ref().or(file_environment))?;
        let workdir = base.join(raw.workdir.get_ref());
        if !workdir.is_dir() {
            return Err(invalid(
                raw.workdir.span(),
                format!(
                    "submission `{id}`: workdir {} is not a directory",
                    workdir.display()
                ),
            ));
        }
        if raw.commands.is_empty() {
            return Err(invalid(span, format!("submission `{id}` has no commands")));
        }
        let timeout = raw.timeout.and_then(seconds).or(default_timeout);
        let mut commands = Vec::new();
        for command in raw.commands {
            let command_span = command.span();
            commands.push(match command.into_inner() {
                RawCommand::Line(run) => Command {
                    name: None,
                    run,
                    stdin: None,
                    timeout,
                },
                RawCommand::Full(full) => {
                    let stdin = full.stdin.map(|p| workdir.join(p));
                    if let Some(stdin) = &stdin
                        && !stdin.is_file()
                    {
                        return Err(invalid(
                            command_span,
                            format!(
                                "submission `{id}`: stdin file {} does not exist",
                                stdin.display()
                            ),
                        ));
                    }
                    Command {
                        name: full.name,
                        run: full.run,
                        stdin,
                        timeout: full.timeout.and_then(seconds).or(timeout),
                    }
                }
            });
        }
        let mut assets = BTreeMap::new();
        for (name, asset) in raw.assets {
            let host = base.join(asset.get_ref());
            if !host.exists() {
                return Err(invalid(
                    asset.span(),
                    format!(
                        "submission `{id}`: asset `{name}` ({}) does not exist",
                        host.display()
                    ),
                ));
            }
            assets.insert(name, host);
        }
        let labels = raw_labels(&raw.labels, &invalid, span.clone())?;
        submissions.push(Submission {
            id,
            workdir,
            environment,
            setup: raw.setup,
            commands,
            labels,
            assets,
            stop_on_failure: raw.stop_on_failure,
        });
    }
    let labels = raw_labels(&raw.labels, &invalid, 0..0)?;
    for submission in &mut submissions {
        let own = std::mem::take(&mut submission.labels);
        submission.labels = labels.clone();
        submission.labels.extend(own);
    }
    Ok(Manifest {
        path: path.to_owned(),
        jobs: raw.jobs,
        labels,
        submissions,
    })
}

/// Labels as given; the names subrt sets itself are refused.
fn raw_labels(
    labels: &BTreeMap<String, String>,
    invalid: &impl Fn(std::ops::Range<usize>, String) -> ManifestError,
    span: std::ops::Range<usize>,
) -> Result<BTreeMap<String, String>, ManifestError> {
    for key in labels.keys() {
        if super::RESERVED_LABELS.contains(&key.as_str()) {
            return Err(invalid(
                span.clone(),
                format!("label `{key}` is set by subrt itself"),
            ));
        }
    }
    Ok(labels.clone())
}
