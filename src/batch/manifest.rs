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
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file, as given.
    pub path: PathBuf,
    /// Sessions run at once (`jobs`), unless `-j` says otherwise.
    pub jobs: Option<usize>,
    /// Labels of every run (the file's own; JSON Lines have none).
    pub labels: BTreeMap<String, String>,
    /// How many submissions it has.
    pub count: usize,
    source: Source,
}

/// Where the submissions come from as the batch runs.
#[derive(Debug, Clone)]
enum Source {
    /// TOML: read whole (it is small), checked, kept.
    Kept(Vec<Submission>),
    /// JSON Lines: checked a line at a time at load, and read again a line
    /// at a time as the batch runs, so that no more than a line and the
    /// submissions running are in memory, however large the file.
    Streamed {
        config: Box<Config>,
        overrides: Overrides,
    },
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
/// must stay in (see the module).
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
            let checker = Checker::new(path, "", config, overrides, None, None)?;
            let mut seen = std::collections::HashSet::new();
            let mut count = 0;
            for line in jsonl_lines(path, std::io::BufReader::new(file)) {
                let (number, raw) = line?;
                let submission = checker.submission(Place::Line(number), raw)?;
                if !seen.insert(submission.id.clone()) {
                    return Err(checker.invalid(
                        Place::Line(number),
                        0..0,
                        format!(
                            "submission id `{}` is used twice",
                            sanitize::plain(&submission.id)
                        ),
                    ));
                }
                count += 1;
            }
            if count == 0 {
                return Err(checker.invalid(
                    Place::Top,
                    0..0,
                    "no submissions: nothing to run".into(),
                ));
            }
            return Ok(Manifest {
                path: path.to_owned(),
                jobs: None,
                labels: BTreeMap::new(),
                count,
                source: Source::Streamed {
                    config: Box::new(config.clone()),
                    overrides: overrides.clone(),
                },
            });
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
        let mut checker = Checker::new(
            path,
            &source,
            config,
            overrides,
            raw.environment.clone(),
            raw.timeout.clone(),
        )?;
        let jobs = match &raw.jobs {
            Some(jobs) => match usize::try_from(*jobs.get_ref()) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(checker.invalid(
                        Place::Top,
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
        checker.labels = raw_labels(&raw.labels, |message| {
            checker.invalid(Place::Top, 0..0, message)
        })?;
        if raw.submissions.is_empty() {
            return Err(checker.invalid(
                Place::Top,
                0..0,
                "no [[submissions]]: nothing to run".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut submissions = Vec::with_capacity(raw.submissions.len());
        for raw in raw.submissions {
            let id_span = raw.get_ref().id.span();
            let submission = checker.submission(Place::Toml, raw)?;
            if !seen.insert(submission.id.clone()) {
                return Err(checker.invalid(
                    Place::Toml,
                    id_span,
                    format!(
                        "submission id `{}` is used twice",
                        sanitize::plain(&submission.id)
                    ),
                ));
            }
            submissions.push(submission);
        }
        Ok(Manifest {
            path: path.to_owned(),
            jobs,
            labels: checker.labels,
            count: submissions.len(),
            source: Source::Kept(submissions),
        })
    }

    /// The submissions, in the file's order. JSON Lines are read again, a
    /// line at a time, and checked as at load: a line changed since then
    /// is an error of its own.
    pub fn submissions(
        &self,
    ) -> Box<dyn Iterator<Item = Result<Submission, ManifestError>> + Send + '_> {
        match &self.source {
            Source::Kept(submissions) => Box::new(submissions.iter().cloned().map(Ok)),
            Source::Streamed { config, overrides } => {
                let file = match std::fs::File::open(&self.path) {
                    Ok(file) => file,
                    Err(source) => {
                        let error = ManifestError::Read {
                            path: self.path.clone(),
                            source,
                        };
                        return Box::new(std::iter::once(Err(error)));
                    }
                };
                let checker = match Checker::new(&self.path, "", config, overrides, None, None) {
                    Ok(checker) => checker,
                    Err(e) => return Box::new(std::iter::once(Err(e))),
                };
                let lines = jsonl_lines(&self.path, std::io::BufReader::new(file));
                Box::new(lines.map(move |line| {
                    let (number, raw) = line?;
                    checker.submission(Place::Line(number), raw)
                }))
            }
        }
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

/// Where a value is: in the TOML text (its span says where), on a line of
/// JSON Lines, or nowhere in particular (the file's top).
#[derive(Debug, Clone, Copy)]
enum Place {
    Toml,
    Line(usize),
    Top,
}

/// The submissions of a JSON Lines file, a line at a time, with their line
/// numbers; blank lines are skipped.
fn jsonl_lines<'a>(
    path: &'a Path,
    mut reader: impl std::io::BufRead + Send + 'a,
) -> impl Iterator<Item = Result<(usize, Spanned<RawSubmission>), ManifestError>> + Send + 'a {
    let mut number = 0;
    let mut line = Vec::new();
    let mut done = false;
    std::iter::from_fn(move || {
        while !done {
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
            );
            let read = match read {
                Ok(read) => read,
                Err(source) => {
                    done = true;
                    return Some(Err(ManifestError::Read {
                        path: path.to_owned(),
                        source,
                    }));
                }
            };
            if read == 0 {
                done = true;
                return None;
            }
            if line.len() > MAX_JSONL_LINE {
                done = true;
                return Some(Err(invalid(
                    1,
                    format!("a line longer than {MAX_JSONL_LINE} bytes"),
                )));
            }
            let text = match std::str::from_utf8(&line) {
                Ok(text) => text,
                Err(e) => {
                    let valid = e.valid_up_to();
                    let column = String::from_utf8_lossy(&line[..valid]).chars().count() + 1;
                    let message = format!("byte 0x{:02x} is not UTF-8 text", line[valid]);
                    return Some(Err(invalid(column, message)));
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            let raw: JsonSubmission = match serde_json::from_str(text) {
                Ok(raw) => raw,
                Err(e) => return Some(Err(invalid(e.column(), e.to_string()))),
            };
            return Some(Ok((number, raw.into_raw())));
        }
        None
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

impl JsonSubmission {
    /// As a TOML submission, with no places (its line is its place).
    fn into_raw(self) -> Spanned<RawSubmission> {
        let nowhere = |value: String| Spanned::new(0..0, value);
        Spanned::new(
            0..0,
            RawSubmission {
                id: nowhere(self.id),
                workdir: Spanned::new(0..0, self.workdir),
                environment: self.environment.map(nowhere),
                setup: self.setup,
                commands: self
                    .commands
                    .into_iter()
                    .map(|c| Spanned::new(0..0, c))
                    .collect(),
                labels: self.labels,
                assets: self
                    .assets
                    .into_iter()
                    .map(|(k, v)| (k, Spanned::new(0..0, v)))
                    .collect(),
                stop_on_failure: self.stop_on_failure,
                timeout: self.timeout.map(|t| Spanned::new(0..0, t)),
            },
        )
    }
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

/// What every submission of a file is checked with: the file's place
/// finder, its defaults, the config and the command line.
struct Checker<'a> {
    path: &'a Path,
    /// The TOML text (spans point into it); empty for JSON Lines.
    source: &'a str,
    config: &'a Config,
    overrides: &'a Overrides,
    base: PathBuf,
    file_environment: Option<Spanned<String>>,
    default_timeout: Option<Duration>,
    /// The file's labels, under each submission's own.
    labels: BTreeMap<String, String>,
}

impl<'a> Checker<'a> {
    fn new(
        path: &'a Path,
        source: &'a str,
        config: &'a Config,
        overrides: &'a Overrides,
        file_environment: Option<Spanned<String>>,
        file_timeout: Option<Spanned<f64>>,
    ) -> Result<Self, ManifestError> {
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
        let mut checker = Self {
            path,
            source,
            config,
            overrides,
            base,
            file_environment,
            default_timeout: None,
            labels: BTreeMap::new(),
        };
        let file_timeout = match &file_timeout {
            Some(t) => {
                Some(seconds(*t.get_ref()).map_err(|e| checker.invalid(Place::Toml, t.span(), e))?)
            }
            None => None,
        };
        // --timeout over the file's own default.
        checker.default_timeout = overrides.timeout.or(file_timeout);
        Ok(checker)
    }

    fn invalid(
        &self,
        place: Place,
        span: std::ops::Range<usize>,
        message: String,
    ) -> ManifestError {
        let location = match place {
            Place::Toml => Location::of(self.path, self.source, Some(span)),
            Place::Line(line) => Location {
                path: self.path.to_owned(),
                line,
                column: 1,
            },
            Place::Top if self.source.is_empty() => Location::of(self.path, "", None),
            Place::Top => Location::of(self.path, self.source, Some(span)),
        };
        ManifestError::Invalid { location, message }
    }

    /// A submission's own environment, else `--env`, else the file's, else
    /// the config's default.
    fn environment(
        &self,
        place: Place,
        own: Option<&Spanned<String>>,
    ) -> Result<String, ManifestError> {
        let (name, span) = match (own, &self.overrides.environment, &self.file_environment) {
            (Some(name), _, _) => (name.get_ref().clone(), Some((place, name.span()))),
            (None, Some(name), _) => (name.clone(), None),
            (None, None, Some(name)) => (name.get_ref().clone(), Some((Place::Top, name.span()))),
            (None, None, None) => return Ok(self.config.default_environment.clone()),
        };
        match (self.config.environment(Some(&name)), span) {
            (Ok(_), _) => Ok(name),
            (Err(e), Some((place, span))) => Err(self.invalid(place, span, e.to_string())),
            (Err(e), None) => Err(ManifestError::Invalid {
                location: Location::of(self.path, "", None),
                message: format!("--env {name}: {e}"),
            }),
        }
    }

    /// Checks one submission; duplicates are the caller's to find.
    fn submission(
        &self,
        at: Place,
        spanned: Spanned<RawSubmission>,
    ) -> Result<Submission, ManifestError> {
        let resolver = Resolver {
            base: &self.base,
            allow_outside: self.overrides.allow_outside,
        };
        let span = spanned.span();
        let raw = spanned.into_inner();
        let id = raw.id.get_ref().clone();
        if id.trim().is_empty() || id.contains('/') || id.chars().any(char::is_control) {
            // Escaped, so the operator sees what is there.
            return Err(self.invalid(
                at,
                raw.id.span(),
                format!("submission id {id:?} is empty, has a `/` or a control character"),
            ));
        }
        // Said sanitised: an id is the operator's text, but a generated
        // file may carry anything.
        let shown = sanitize::plain(&id);
        let environment = self.environment(at, raw.environment.as_ref())?;
        let in_submission = |span: std::ops::Range<usize>, message: String| {
            self.invalid(at, span, format!("submission `{shown}`: {message}"))
        };
        let workdir = resolver
            .resolve(&self.base, raw.workdir.get_ref())
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
            None => self.default_timeout,
        };
        let mut commands = Vec::with_capacity(raw.commands.len());
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
                .resolve(&self.base, asset.get_ref())
                .map_err(|e| in_submission(asset.span(), format!("asset `{name}`: {e}")))?;
            assets.insert(name, host);
        }
        let own = raw_labels(&raw.labels, |message| {
            self.invalid(at, span.clone(), message)
        })?;
        let mut labels = self.labels.clone();
        labels.extend(own);
        Ok(Submission {
            id,
            workdir,
            environment,
            setup: raw.setup,
            commands,
            labels,
            assets,
            stop_on_failure: raw.stop_on_failure,
        })
    }
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
