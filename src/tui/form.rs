//! The new-run form (`n`, or Enter on an environment): environment,
//! working dir, command and timeout; checked before anything starts.

use std::time::Duration;

use super::action::Action;
use super::app::{App, Effect, Modal};

/// The fields of the new-run form, in Tab order.
pub const FORM_FIELDS: [&str; 4] = ["environment", "working dir", "command", "timeout (s)"];

/// What the new-run form holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRunForm {
    /// Field texts, as [`FORM_FIELDS`].
    pub fields: [String; 4],
    /// The field being edited.
    pub focus: usize,
    /// Why the last submit was refused.
    pub error: Option<String>,
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
    /// Timeout.
    pub timeout: Option<Duration>,
}

impl App {
    /// A key in the form.
    pub(super) fn form_key(&mut self, action: Action) -> Option<Effect> {
        let form = &mut self.form;
        match action {
            Action::Type(c) => form.fields[form.focus].push(c),
            Action::Erase => {
                form.fields[form.focus].pop();
            }
            Action::NextField => form.focus = (form.focus + 1) % FORM_FIELDS.len(),
            Action::PrevField => {
                form.focus = (form.focus + FORM_FIELDS.len() - 1) % FORM_FIELDS.len()
            }
            Action::Yes => return self.submit_form(),
            Action::Close | Action::Quit => self.modal = Modal::None,
            _ => {}
        }
        None
    }

    pub(super) fn open_form(&mut self, environment: Option<String>, command: String) {
        let environment = environment
            .or_else(|| {
                self.environments
                    .get(self.selected_environment)
                    .map(|e| e.name.clone())
            })
            .unwrap_or_default();
        self.form = NewRunForm {
            fields: [
                environment,
                self.default_dir.clone(),
                command,
                String::new(),
            ],
            focus: 2,
            error: None,
        };
        self.modal = Modal::NewRun;
    }

    /// Checks the form; on success the run waits in `pending_run`.
    pub(super) fn submit_form(&mut self) -> Option<Effect> {
        let [environment, dir, command, timeout] = &self.form.fields;
        let error = if !self.environments.iter().any(|e| &e.name == environment) {
            Some(format!(
                "no environment `{environment}` (configured: {})",
                self.environments
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else if command.trim().is_empty() {
            Some("the command is empty".to_owned())
        } else if !std::path::Path::new(dir).is_dir() {
            Some(format!("working dir `{dir}` is not a directory"))
        } else {
            None
        };
        let timeout = match timeout.trim() {
            "" => None,
            text => match text
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
            {
                Some(t) => Some(t),
                None => {
                    self.form.error = Some(format!("timeout `{text}` is not a number of seconds"));
                    return None;
                }
            },
        };
        if let Some(error) = error {
            self.form.error = Some(error);
            return None;
        }
        self.pending_run = Some(RunRequest {
            environment: environment.clone(),
            working_dir: dir.into(),
            command: command.clone(),
            timeout,
        });
        self.modal = Modal::None;
        Some(Effect::Launch)
    }
}
