//! A batch file: which submissions run, where, with which commands.
//!
//! TOML (`[[submissions]]` with defaults at the top), or JSON Lines (one
//! submission a line, for harnesses that generate them; read a line at a
//! time, so a batch of any size is checked in memory proportional to its
//! submissions, not to a parser's tree). Everything is checked before
//! anything starts: unknown keys, duplicate ids, unknown environments,
//! timeouts and `jobs` that are not positive numbers, missing working dirs,
//! assets and stdin files, and paths that lead where they must not; each
//! error names the file, line and column (or the submission).
//!
//! **Where paths may lead.** The batch file is the operator's; the
//! submissions' folders are not. A path of the file is resolved against
//! the file's folder and must stay inside it (no `..` out of it, no link
//! out of it) unless `--allow-outside` is given; a stdin file or asset
//! inside a submission's folder must stay inside that folder, always. See
//! [`crate::runtime::beneath`].
//!
//! **Which default wins.** A submission's own `environment` and `timeout`
//! (and a command's `timeout`) win; then `--env` and `--timeout` on the
//! command line; then the file's top-level `environment` and `timeout`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Config, Location};
use crate::runtime::beneath;
use crate::sanitize;

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
    pub stdin: Option<StdinFile>,
    /// Its timeout.
    pub timeout: Option<Duration>,
}

/// A stdin file, read when its command starts, from inside the folder it
/// must stay in (see the [module](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct StdinFile {
    /// The folder it must stay in (the submission's, or the batch file's);
    /// `None` with `--allow-outside` for a file outside both.
    pub root: Option<PathBuf>,
    /// Its path, relative to `root` (or as given without one).
    pub path: PathBuf,
}

impl StdinFile {
    /// Where it is, for messages.
    pub fn display(&self) -> String {
        match &self.root {
            Some(root) => root.join(&self.path).display().to_string(),
            None => self.path.display().to_string(),
        }
    }

    /// Its bytes, up to `limit`.
    ///
    /// # Errors
    ///
    /// It is gone, leads out of its folder (a link made since the check),
    /// or is larger than `limit`.
    pub fn read(&self, limit: u64) -> Result<Vec<u8>, String> {
        match &self.root {
            Some(root) => {
                crate::runtime::beneath::read(root, &self.path, limit).map_err(|e| e.to_string())
            }
            None => {
                let root = self.path.parent().unwrap_or(Path::new("/"));
                let name = self.path.file_name().map(Path::new).unwrap_or(&self.path);
                crate::runtime::beneath::read(root, name, limit).map_err(|e| e.to_string())
            }
        }
    }
}

/// A stdin file is read whole before its command starts: at most this.
pub const MAX_STDIN_BYTES: u64 = 1 << 30;
/// TOML batch files larger than this are refused (parsing one takes tens
/// of times its size); JSON Lines have no such bound.
pub const MAX_TOML_BYTES: u64 = 8 << 20;
/// A line of a JSON Lines batch is at most this long.
const MAX_JSONL_LINE: usize = 16 << 20;

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
    jobs: Option<Spanned<i64>>,
    timeout: Option<Spanned<f64>>,
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
    timeout: Option<Spanned<f64>>,
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
    /// `--env`: the environment of submissions that name none (over the
    /// file's top-level `environment`).
    pub environment: Option<String>,
    /// `--timeout`: the timeout of commands whose submission gives none
    /// (over the file's top-level `timeout`).
    pub timeout: Option<Duration>,
    /// `--allow-outside`: paths of the file may lead out of its folder.
    pub allow_outside: bool,
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
        let read_error = |source| ManifestError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        if path.extension().is_some_and(|x| x == "jsonl") {
            let (raw, lines) = parse_jsonl(path, std::io::BufReader::new(file))?;
            let places = Places {
                path,
                source: "",
                lines: Some(lines),
            };
            return check(&places, raw, config, overrides);
        }
        let size = file.metadata().map_err(read_error)?.len();
        if size > MAX_TOML_BYTES {
            return Err(ManifestError::Invalid {
                location: Location::of(path, "", None),
                message: format!(
                    "a TOML batch file of {size} bytes is more than subrt reads \
                     ({MAX_TOML_BYTES}): write a batch this large as JSON Lines (`.jsonl`, \
                     a submission a line), which is read a line at a time"
                ),
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_TOML_BYTES + 1),
            &mut bytes,
        )
        .map_err(read_error)?;
        let source = utf8(path, bytes)?;
        let raw = toml::from_str::<RawFile>(&source).map_err(|e| ManifestError::Invalid {
            location: Location::of(path, &source, e.span()),
            message: e.message().trim().to_owned(),
        })?;
        let places = Places {
            path,
            source: &source,
            lines: None,
        };
        check(&places, raw, config, overrides)
    }
}

/// `bytes` as text, or an error at the first byte that is not UTF-8.
fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, ManifestError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        // The valid prefix is text: its lines and characters say where.
        let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        ManifestError::Invalid {
            location: Location::of(path, before, Some(valid..valid)),
            message: format!("byte 0x{:02x} is not UTF-8 text", bytes[valid]),
        }
    })
}

/// How places in the file are found: byte ranges of a TOML file's text, or
/// for JSON Lines the line of each submission.
struct Places<'a> {
    path: &'a Path,
    source: &'a str,
    /// JSON Lines: the line of each submission, in order.
    lines: Option<Vec<usize>>,
}

impl Places<'_> {
    /// Where `span` of submission `index` is (`None`: the file's top).
    fn at(&self, index: Option<usize>, span: std::ops::Range<usize>) -> Location {
        match (&self.lines, index) {
            (Some(lines), Some(index)) => Location {
                path: self.path.to_owned(),
                line: lines[index],
                column: 1,
            },
            (Some(_), None) => Location::of(self.path, "", None),
            (None, _) => Location::of(self.path, self.source, Some(span)),
        }
    }
}

/// JSON Lines: every line a submission; the defaults come from the command
/// line. Read a line at a time. Returns the submissions and their lines.
fn parse_jsonl(
    path: &Path,
    mut reader: impl std::io::BufRead,
) -> Result<(RawFile, Vec<usize>), ManifestError> {
    let mut submissions = Vec::new();
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        number += 1;
        line.clear();
        let invalid = |column: usize, message: String| ManifestError::Invalid {
            location: Location {
                path: path.to_owned(),
                line: number,
                column,
            },
            message,
        };
        let read = std::io::BufRead::read_until(
            &mut std::io::Read::take(&mut reader, MAX_JSONL_LINE as u64 + 1),
            b'\n',
            &mut line,
        )
        .map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        if read == 0 {
            break;
        }
        if line.len() > MAX_JSONL_LINE {
            return Err(invalid(
                1,
                format!("a line longer than {MAX_JSONL_LINE} bytes"),
            ));
        }
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text,
            Err(e) => {
                let valid = e.valid_up_to();
                let column = String::from_utf8_lossy(&line[..valid]).chars().count() + 1;
                let message = format!("byte 0x{:02x} is not UTF-8 text", line[valid]);
                return Err(invalid(column, message));
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let raw: JsonSubmission =
            serde_json::from_str(text).map_err(|e| invalid(e.column(), e.to_string()))?;
        let nowhere = |value: String| Spanned::new(0..0, value);
        submissions.push(Spanned::new(
            0..0,
            RawSubmission {
                id: nowhere(raw.id),
                workdir: Spanned::new(0..0, raw.workdir),
                environment: raw.environment.map(nowhere),
                setup: raw.setup,
                commands: raw
                    .commands
                    .into_iter()
                    .map(|c| Spanned::new(0..0, c))
                    .collect(),
                labels: raw.labels,
                assets: raw
                    .assets
                    .into_iter()
                    .map(|(k, v)| (k, Spanned::new(0..0, v)))
                    .collect(),
                stop_on_failure: raw.stop_on_failure,
                timeout: raw.timeout.map(|t| Spanned::new(0..0, t)),
            },
        ));
        lines.push(number);
    }
    let raw = RawFile {
        environment: None,
        jobs: None,
        timeout: None,
        labels: BTreeMap::new(),
        submissions,
    };
    Ok((raw, lines))
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

/// A timeout as the file gives it: a positive, finite number of seconds.
fn seconds(value: f64) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 {
        Duration::try_from_secs_f64(value).map_err(|e| format!("timeout {value}: {e}"))
    } else {
        Err(format!(
            "timeout {value} is not a positive number of seconds (leave `timeout` out for none)"
        ))
    }
}

/// Where a path of the file leads, checked: inside the submission's folder
/// when it is there (always), else inside the file's folder (unless
/// `--allow-outside`).
struct Resolver<'a> {
    base: &'a Path,
    allow_outside: bool,
}

impl Resolver<'_> {
    /// The folder `path` (relative to `dir`, else absolute) must stay in,
    /// and its path relative to that folder; `None` for the folder when
    /// `--allow-outside` lets it be anywhere.
    fn place(&self, dir: &Path, path: &Path) -> Result<(Option<PathBuf>, PathBuf), String> {
        let wanted = beneath::lexical(&dir.join(path));
        for root in [dir, self.base] {
            if let Ok(relative) = wanted.strip_prefix(root) {
                return Ok((Some(root.to_owned()), relative.to_owned()));
            }
        }
        if self.allow_outside {
            return Ok((None, wanted));
        }
        Err(format!(
            "{} is outside the batch file's folder {} (pass --allow-outside to allow it)",
            wanted.display(),
            self.base.display()
        ))
    }

    /// `path` resolved (links followed as far as they stay in its folder).
    fn resolve(&self, dir: &Path, path: &Path) -> Result<PathBuf, String> {
        match self.place(dir, path)? {
            (Some(root), relative) => beneath::resolve(&root, &relative).map_err(|e| match e {
                beneath::BeneathError::Io { path, source }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    format!("{} does not exist", path.display())
                }
                e => e.to_string(),
            }),
            (None, path) => {
                std::fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}

fn check(
    places: &Places<'_>,
    raw: RawFile,
    config: &Config,
    overrides: &Overrides,
) -> Result<Manifest, ManifestError> {
    let path = places.path;
    let invalid = |index: Option<usize>, span: std::ops::Range<usize>, message: String| {
        ManifestError::Invalid {
            location: places.at(index, span),
            message,
        }
    };
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
    let resolver = Resolver {
        base: &base,
        allow_outside: overrides.allow_outside,
    };
    // A submission's own environment, else --env, else the file's, else
    // the config's default.
    let environment_of = |index: usize, own: Option<&Spanned<String>>| {
        let (name, span) = match (own, &overrides.environment, raw.environment.as_ref()) {
            (Some(name), _, _) => (name.get_ref().clone(), Some((Some(index), name.span()))),
            (None, Some(name), _) => (name.clone(), None),
            (None, None, Some(name)) => (name.get_ref().clone(), Some((None, name.span()))),
            (None, None, None) => return Ok(config.default_environment.clone()),
        };
        match (config.environment(Some(&name)), span) {
            (Ok(_), _) => Ok(name),
            (Err(e), Some((index, span))) => Err(invalid(index, span, e.to_string())),
            (Err(e), None) => Err(ManifestError::Invalid {
                location: Location::of(path, "", None),
                message: format!("--env {name}: {e}"),
            }),
        }
    };
    let jobs = match &raw.jobs {
        Some(jobs) => match usize::try_from(*jobs.get_ref()) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(invalid(
                    None,
                    jobs.span(),
                    format!(
                        "jobs = {} is not a positive number of sessions",
                        jobs.get_ref()
                    ),
                ));
            }
        },
        None => None,
    };
    let file_timeout = match &raw.timeout {
        Some(t) => Some(seconds(*t.get_ref()).map_err(|e| invalid(None, t.span(), e))?),
        None => None,
    };
    let default_timeout = overrides.timeout.or(file_timeout);
    if raw.submissions.is_empty() {
        return Err(invalid(
            None,
            0..0,
            "no [[submissions]]: nothing to run".into(),
        ));
    }
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut submissions = Vec::new();
    for (index, spanned) in raw.submissions.into_iter().enumerate() {
        let at = Some(index);
        let span = spanned.span();
        let raw = spanned.into_inner();
        let id = raw.id.get_ref().clone();
        // Said escaped: an id is the operator's text, but a generated file
        // may carry anything.
        let shown = sanitize::plain(&id);
        if id.trim().is_empty() || id.contains('/') || id.chars().any(char::is_control) {
            // Escaped, so the operator sees what is there.
            return Err(invalid(
                at,
                raw.id.span(),
                format!("submission id {id:?} is empty, has a `/` or a control character"),
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(invalid(
                at,
                raw.id.span(),
                format!("submission id `{shown}` is used twice"),
            ));
        }
        let environment = environment_of(index, raw.environment.as_ref())?;
        let in_submission = |span: std::ops::Range<usize>, message: String| {
            invalid(at, span, format!("submission `{shown}`: {message}"))
        };
        let workdir = resolver
            .resolve(&base, raw.workdir.get_ref())
            .map_err(|e| in_submission(raw.workdir.span(), format!("workdir {e}")))?;
        if !workdir.is_dir() {
            return Err(in_submission(
                raw.workdir.span(),
                format!("workdir {} is not a directory", workdir.display()),
            ));
        }
        if raw.commands.is_empty() {
            return Err(in_submission(span, "no commands".into()));
        }
        let timeout = match &raw.timeout {
            Some(t) => Some(seconds(*t.get_ref()).map_err(|e| in_submission(t.span(), e))?),
            None => default_timeout,
        };
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
                    let stdin = match &full.stdin {
                        Some(file) => {
                            let (root, relative) = resolver.place(&workdir, file).map_err(|e| {
                                in_submission(command_span.clone(), format!("stdin file {e}"))
                            })?;
                            let stdin = StdinFile {
                                root,
                                path: relative,
                            };
                            // Checked now; read when the command starts.
                            let opened = match &stdin.root {
                                Some(root) => beneath::open(root, &stdin.path)
                                    .map(drop)
                                    .map_err(|e| e.to_string()),
                                None => std::fs::metadata(&stdin.path)
                                    .map(drop)
                                    .map_err(|e| format!("{}: {e}", stdin.path.display())),
                            };
                            opened.map_err(|e| {
                                in_submission(command_span.clone(), format!("stdin file {e}"))
                            })?;
                            Some(stdin)
                        }
                        None => None,
                    };
                    let timeout = match full.timeout {
                        Some(t) => {
                            Some(seconds(t).map_err(|e| in_submission(command_span.clone(), e))?)
                        }
                        None => timeout,
                    };
                    Command {
                        name: full.name,
                        run: full.run,
                        stdin,
                        timeout,
                    }
                }
            });
        }
        let mut assets = BTreeMap::new();
        for (name, asset) in raw.assets {
            let host = resolver
                .resolve(&base, asset.get_ref())
                .map_err(|e| in_submission(asset.span(), format!("asset `{name}`: {e}")))?;
            assets.insert(name, host);
        }
        let labels = raw_labels(&raw.labels, |message| invalid(at, span.clone(), message))?;
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
    let labels = raw_labels(&raw.labels, |message| invalid(None, 0..0, message))?;
    for submission in &mut submissions {
        let own = std::mem::take(&mut submission.labels);
        submission.labels = labels.clone();
        submission.labels.extend(own);
    }
    Ok(Manifest {
        path: path.to_owned(),
        jobs,
        labels,
        submissions,
    })
}

/// Labels as given; the names subrt sets itself are refused.
fn raw_labels(
    labels: &BTreeMap<String, String>,
    invalid: impl Fn(String) -> ManifestError,
) -> Result<BTreeMap<String, String>, ManifestError> {
    for key in labels.keys() {
        if super::RESERVED_LABELS.contains(&key.as_str()) {
            return Err(invalid(format!("label `{key}` is set by subrt itself")));
        }
    }
    Ok(labels.clone())
}
