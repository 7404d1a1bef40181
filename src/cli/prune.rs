//! `subrt prune`: finished runs removed from the store.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use color_eyre::eyre::{Result, bail};

use super::{clip, parse_duration, say};
use subrt::config::Config;
use subrt::runlog::Store;

/// Arguments of `subrt prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only runs that started longer ago than this (`7d`, `12h`, `30m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Keep the newest N finished runs whatever their age.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) fn prune(config: &Config, args: &PruneArgs) -> Result<i32> {
    if args.older_than.is_none() && args.keep.is_none() {
        bail!("say which runs go: --older-than DURATION, --keep N, or both");
    }
    let store = Store::new(&config.store_dir);
    let runs = store.prunable(args.older_than, args.keep.unwrap_or(0))?;
    let mut out = std::io::stdout().lock();
    let mut status = 0;
    let mut removed = 0;
    for run in &runs {
        let what = format!(
            "{} {} {}",
            run.run_id,
            run.started_at.get(..19).unwrap_or(&run.started_at),
            clip(run.command.as_deref().unwrap_or("-"), 40)
        );
        if args.dry_run {
            writeln!(out, "would remove {what}")?;
        } else {
            match store.remove(run) {
                Ok(()) => {
                    removed += 1;
                    writeln!(out, "removed {what}")?;
                }
                Err(e) => {
                    say(&e);
                    status = 1;
                }
            }
        }
    }
    match (runs.len(), args.dry_run) {
        (0, _) => writeln!(out, "no runs to remove")?,
        (n, true) => writeln!(out, "{n} runs (dry run: none removed)")?,
        (n, false) => writeln!(out, "{removed} of {n} runs removed")?,
    }
    Ok(status)
}
