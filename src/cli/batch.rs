//! `subrt batch FILE`: every submission of a batch file, up to `-j` at once.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use color_eyre::eyre::{Context, Result};

use super::progress::{self, Progress};
use super::signals::Signals;
use super::{EXIT_BROKEN_PIPE, parse_secs};
use subrt::config::Config;

/// Arguments of `subrt batch`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The batch file: TOML, or JSON Lines (`.jsonl`, a submission a line).
    pub file: PathBuf,
    /// Sessions at once (default: the file's `jobs`, else the CPUs).
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Environment of submissions that name none.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Timeout of commands that have none, in seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// One JSON object per finished command, then a summary object.
    #[arg(long)]
    pub json: bool,
    /// Skip the submissions whose run of this file's last batch finished.
    #[arg(long)]
    pub resume: bool,
    /// Stop the batch at the first failed command.
    #[arg(long)]
    pub fail_fast: bool,
    /// Let the file's paths (workdirs, assets, stdin files) lead out of
    /// the file's folder. A file inside a submission's folder must still
    /// stay inside it.
    #[arg(long)]
    pub allow_outside: bool,
}

/// `subrt batch`. Interrupted (SIGINT, SIGTERM), it cleans up every running
/// session and exits 128 + the signal. When the reader of its stdout goes
/// away (`subrt batch --json FILE | head -1`) it does the same and exits 141,
/// what a shell shows for a process that SIGPIPE ended: the batch did not
/// finish, so its status must not say it did; unlike `subrt ls | head`,
/// where nothing is lost and the status stays 0.
pub(super) async fn batch(config: &Config, args: &BatchArgs) -> Result<i32> {
    use subrt::batch::{self, Manifest, Overrides};
    let overrides = Overrides {
        environment: args.env.clone(),
        timeout: args.timeout,
        allow_outside: args.allow_outside,
    };
    let manifest = Manifest::load(&args.file, config, &overrides)?;
    let mut signals = Signals::new()?;
    let options = batch::Options {
        jobs: args.jobs,
        fail_fast: args.fail_fast,
        resume: args.resume,
    };
    let (events_tx, mut events) = tokio::sync::mpsc::channel(256);
    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let running = batch::run(config, &manifest, &options, events_tx, cancel);
    tokio::pin!(running);
    let mut progress = Progress::new(manifest.count, args.json);
    let mut tick = tokio::time::interval(progress::TICK);
    // Why the batch stops early: once it is set, the batch is cancelled
    // and the loop waits for it to clean up, printing nothing more.
    let mut stop = None;
    let summary = loop {
        tokio::select! {
            summary = &mut running => break summary,
            Some(event) = events.recv() => {
                if stop.is_none() && let Err(e) = progress.show(&event) {
                    stop = Some(Stop::Output(e));
                    let _ = cancel_tx.send(true);
                }
            }
            signal = signals.recv(), if stop.is_none() => {
                stop = Some(Stop::Signal(signal));
                let _ = cancel_tx.send(true);
            }
            _ = tick.tick() => {
                progress.tick();
                // Found at once, not at the next line a slow batch prints.
                if stop.is_none() && stdout_reader_gone() {
                    stop = Some(Stop::Output(std::io::ErrorKind::BrokenPipe.into()));
                    let _ = cancel_tx.send(true);
                }
            }
        }
    };
    while let Ok(event) = events.try_recv() {
        if stop.is_none()
            && let Err(e) = progress.show(&event)
        {
            stop = Some(Stop::Output(e));
        }
    }
    let output = match stop {
        Some(Stop::Signal(signal)) => {
            // The summary says `cancelled`; it is printed if it can be.
            let _ = progress.finish(&summary);
            return Ok(128 + signal);
        }
        Some(Stop::Output(e)) => Err(e),
        None => progress.finish(&summary),
    };
    match output {
        Ok(()) => Ok(summary.exit_status()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(EXIT_BROKEN_PIPE),
        Err(e) => Err(e).wrap_err("cannot write to stdout"),
    }
}

/// Whether stdout is a pipe whose reader closed it: Linux reports
/// `POLLERR` on the writing end then, without a write.
fn stdout_reader_gone() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready == 1 && fd.revents & libc::POLLERR != 0
}

/// Why `subrt batch` stopped before its batch finished.
enum Stop {
    /// SIGINT or SIGTERM (the signal's number).
    Signal(i32),
    /// Stdout could not be written (its reader went away, the disk is full).
    Output(std::io::Error),
}
