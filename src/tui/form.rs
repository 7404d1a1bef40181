//! The new-run form (`n`, or Enter on an environment): environment,
//! working dir, command and timeout; checked before anything starts.

use std::time::Duration;

use super::action::Action;
use super::app::{App, Effect, Modal};

/// The fields of the new-run form, in Tab order.
pub const FORM_FIELDS: [&str; 5] = [
    "environment",
    "working dir",
    "command",
    "stdin file",
    "timeout (s)",
];

/// The environment field: picked from the configured ones (↑ ↓), not typed.
pub const ENVIRONMENT: usize = 0;
/// The working dir field.
pub const WORKING_DIR: usize = 1;
/// The command field (↑ ↓: the commands of the listed runs).
pub const COMMAND: usize = 2;
/// A file whose contents are the command's stdin (relative to the dir).
pub const STDIN: usize = 3;
/// The timeout field.
pub const TIMEOUT: usize = 4;

/// What the new-run form holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRunForm {
    /// Field texts, as [`FORM_FIELDS`].
    pub fields: [String; 5],
    /// The field being edited.
    pub focus: usize,
    /// Why the last submit was refused.
    pub error: Option<String>,
    /// Which earlier command the command field shows (0: the newest);
    /// `None`: what was typed.
    pub history_at: Option<usize>,
    /// What was typed in the command field before ↑ went through history.
    pub draft: String,
}

/// A run to start, from the form or a re-run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Environment name.
    pub environment: String,
    /// Working directory.
    pub working_dir: std::path::PathBuf,
    /// Command line.
    pub command: String,
    /// A file to read the command's stdin from.
    pub stdin: Option<std::path::PathBuf>,
    /// Timeout.
    pub timeout: Option<Duration>,
}

impl App {
    /// A key in the form.
    pub(super) fn form_key(&mut self, action: Action) -> Option<Effect> {
        let fields = FORM_FIELDS.len();
        let focus = self.form.focus;
        match action {
            // The environment is picked, not typed.
            Action::Type(_) | Action::Erase if focus == ENVIRONMENT => {}
            Action::Type(c) => {
                self.form.fields[focus].push(c);
                self.form.history_at = None;
            }
            Action::Erase => {
                self.form.fields[focus].pop();
                self.form.history_at = None;
            }
            Action::Up | Action::Down if focus == ENVIRONMENT => {
                self.pick_environment(action == Action::Down)
            }
            Action::Up | Action::Down if focus == COMMAND => {
                self.command_history_step(action == Action::Up)
            }
            Action::NextField | Action::Down => self.form.focus = (focus + 1) % fields,
            Action::PrevField | Action::Up => self.form.focus = (focus + fields - 1) % fields,
            Action::Yes => return self.submit_form(),
            Action::Close | Action::Quit => self.modal = Modal::None,
            _ => {}
        }
        None
    }

    /// The next (or previous) configured environment, around the end.
    fn pick_environment(&mut self, next: bool) {
        let names: Vec<&str> = self.environments.iter().map(|e| e.name.as_str()).collect();
        if names.is_empty() {
            return;
        }
        let at = names
            .iter()
            .position(|n| *n == self.form.fields[ENVIRONMENT])
            .unwrap_or(0);
        let to = if next {
            (at + 1) % names.len()
        } else {
            (at + names.len() - 1) % names.len()
        };
        self.form.fields[ENVIRONMENT] = names[to].to_owned();
    }

    /// The commands of the listed runs, newest first, each once.
    pub fn command_history(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.sessions
            .iter()
            .map(|s| s.command.as_str())
            .filter(|c| !c.trim().is_empty() && seen.insert(*c))
            .collect()
    }

    /// An earlier (`older`) or later command into the command field; past
    /// the newest, what was typed comes back.
    fn command_history_step(&mut self, older: bool) {
        let history: Vec<String> = self
            .command_history()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let form = &mut self.form;
        let to = match (form.history_at, older) {
            (None, true) if !history.is_empty() => {
                form.draft = form.fields[COMMAND].clone();
                Some(0)
            }
            (None, _) => None,
            (Some(at), true) => Some((at + 1).min(history.len().saturating_sub(1))),
            (Some(0), false) => None,
            (Some(at), false) => Some(at - 1),
        };
        form.fields[COMMAND] = match to {
            Some(at) => history[at].clone(),
            None => form.draft.clone(),
        };
        form.history_at = to;
    }

    pub(super) fn open_form(&mut self, environment: Option<String>, command: String) {
        let environment = environment
            .or_else(|| {
                self.environments
                    .get(self.selected_environment)
                    .map(|e| e.name.clone())
            })
            .unwrap_or_default();
        let mut fields: [String; 5] = Default::default();
        fields[ENVIRONMENT] = environment;
        fields[WORKING_DIR] = self.default_dir.clone();
        fields[COMMAND] = command;
        self.form = NewRunForm {
            fields,
            focus: COMMAND,
            ..NewRunForm::default()
        };
        self.modal = Modal::NewRun;
    }

    /// Checks the form; on success the run waits in `pending_run`.
    pub(super) fn submit_form(&mut self) -> Option<Effect> {
        match self.checked_form() {
            Ok(run) => {
                self.pending_run = Some(run);
                self.modal = Modal::None;
                Some(Effect::Launch)
            }
            Err(error) => {
                self.form.error = Some(error);
                None
            }
        }
    }

    /// The run the form asks for, or what is wrong with it.
    fn checked_form(&self) -> Result<RunRequest, String> {
        let fields = &self.form.fields;
        let (environment, dir, command) =
            (&fields[ENVIRONMENT], &fields[WORKING_DIR], &fields[COMMAND]);
        if !self.environments.iter().any(|e| &e.name == environment) {
            return Err(if self.environments.is_empty() {
                "no environment is configured (see config.toml)".to_owned()
            } else {
                format!("pick an environment with ↑ ↓ in its field (not `{environment}`)")
            });
        }
        if command.trim().is_empty() {
            return Err("the command is empty".to_owned());
        }
        let working_dir = std::path::PathBuf::from(dir);
        if !working_dir.is_dir() {
            return Err(format!("working dir `{dir}` is not a directory"));
        }
        let stdin = match fields[STDIN].trim() {
            "" => None,
            file => {
                let path = working_dir.join(file);
                if !path.is_file() {
                    return Err(format!(
                        "stdin file `{file}` is not a file (in {})",
                        working_dir.display()
                    ));
                }
                Some(path)
            }
        };
        let timeout = match fields[TIMEOUT].trim() {
            "" => None,
            text => Some(
                text.parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("timeout `{text}` is not a number of seconds"))?,
            ),
        };
        Ok(RunRequest {
            environment: environment.clone(),
            working_dir,
            command: command.clone(),
            stdin,
            timeout,
        })
    }
}
