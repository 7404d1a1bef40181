//! What `subrt batch` prints as it goes.
//!
//! - stdout: one JSON object per finished command (`--json`) and a summary
//!   object last, or one plain line per finished submission and a summary
//!   line. This is the part a script reads.
//! - stderr, only when it is a terminal: an indicatif bar with the counts
//!   by outcome and the submission running longest, redrawn at least once
//!   a second so its clock moves while nothing finishes. Lines for stdout
//!   are printed with the bar lifted, so the two never tear each other.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use subrt::batch::{BatchEvent, Counts, Summary};
use subrt::runtime::Outcome;
use subrt::sanitize::plain;

use super::clip;

/// How often the bar redraws on its own.
pub const TICK: Duration = Duration::from_secs(1);

/// The printer of one batch.
pub struct Progress {
    json: bool,
    bar: ProgressBar,
    counts: Counts,
    /// Submissions running now, and since when.
    running: BTreeMap<String, Instant>,
}

impl Progress {
    /// A printer for a batch of `total` submissions; the bar shows only
    /// when stderr is a terminal.
    pub fn new(total: usize, json: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:24.cyan/blue} {pos}/{len} {elapsed:>4} {wide_msg}")
                .expect("the template is valid")
                .progress_chars("━╸ "),
        );
        Self {
            json,
            bar,
            counts: Counts::default(),
            running: BTreeMap::new(),
        }
    }

    /// Takes in what the batch reported: counts it, and prints what is for
    /// stdout.
    ///
    /// # Errors
    ///
    /// Writing to stdout failed; [`io::ErrorKind::BrokenPipe`] when its
    /// reader went away (`subrt batch --json FILE | head`).
    pub fn show(&mut self, event: &BatchEvent) -> io::Result<()> {
        match event {
            BatchEvent::Started { submission, .. } => {
                self.running.insert(submission.clone(), Instant::now());
            }
            BatchEvent::Command {
                submission,
                number,
                name,
                run_id,
                outcome,
                elapsed,
            } => {
                self.counts.add(outcome);
                if self.json {
                    let line = CommandJson {
                        submission,
                        command: *number,
                        name: name.as_deref(),
                        run_id,
                        elapsed: elapsed.as_secs_f64(),
                        outcome,
                    };
                    self.print(|out| {
                        serde_json::to_writer(&mut *out, &line)?;
                        writeln!(out)
                    })?;
                }
            }
            BatchEvent::Finished {
                submission,
                run_id,
                counts,
                error,
            } => {
                self.running.remove(submission);
                self.bar.inc(1);
                if !self.json {
                    let submission = plain(submission);
                    self.print(|out| match error {
                        Some(error) => {
                            writeln!(out, "{submission}: could not run: {}", plain(error))
                        }
                        None => writeln!(
                            out,
                            "{submission}: {counts} (run {})",
                            run_id.as_deref().unwrap_or("-")
                        ),
                    })?;
                }
            }
            BatchEvent::Skipped { submission, run_id } => {
                self.bar.inc(1);
                if !self.json {
                    let submission = plain(submission);
                    self.print(|out| {
                        writeln!(out, "{submission}: finished before (run {run_id}), skipped")
                    })?;
                }
            }
        }
        self.tick();
        Ok(())
    }

    /// Redraws the bar's counts and the running clock.
    pub fn tick(&self) {
        self.bar.set_message(self.status());
    }

    /// Lifts the bar and prints the summary.
    ///
    /// # Errors
    ///
    /// As [`Progress::show`].
    pub fn finish(&self, summary: &Summary) -> io::Result<()> {
        self.bar.finish_and_clear();
        let mut out = io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut out, &serde_json::json!({ "summary": summary }))?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", summary_line(summary))?;
        }
        out.flush()
    }

    /// Lifts the bar (if it shows) while `write` writes to stdout.
    fn print(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        self.bar.suspend(|| {
            let mut out = io::stdout().lock();
            write(&mut out)?;
            out.flush()
        })
    }

    /// `30 ok · 2 failed · 1 timed out · 0 killed · 4 running, slowest bob 0:12`
    fn status(&self) -> String {
        let slowest = self
            .running
            .iter()
            .min_by_key(|(_, since)| **since)
            .map(|(id, since)| {
                let secs = since.elapsed().as_secs();
                format!(", slowest {} {}:{:02}", clip(id, 24), secs / 60, secs % 60)
            })
            .unwrap_or_default();
        let c = &self.counts;
        format!(
            "{} ok · {} failed · {} timed out · {} killed · {} running{slowest}",
            c.ok,
            c.failed,
            c.timed_out,
            c.killed,
            self.running.len()
        )
    }
}

/// `batch ID: 3 submissions; commands: 5 ok, 1 failed, 0 timed out, 1 killed`
fn summary_line(summary: &Summary) -> String {
    let mut line = format!(
        "batch {}: {} submissions; commands: {}",
        summary.batch, summary.submissions, summary.counts,
    );
    if summary.errors > 0 {
        line.push_str(&format!("; {} could not run", summary.errors));
    }
    if summary.skipped > 0 {
        line.push_str(&format!(", {} skipped", summary.skipped));
    }
    if summary.cancelled {
        line.push_str(", interrupted");
    }
    line
}

/// One line of `subrt batch --json`: a finished command.
#[derive(serde::Serialize)]
struct CommandJson<'a> {
    submission: &'a str,
    command: usize,
    name: Option<&'a str>,
    run_id: &'a str,
    elapsed: f64,
    #[serde(flatten)]
    outcome: &'a Outcome,
}
