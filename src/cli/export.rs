//! `subrt export RUN`: a run's output or results from its log.

use std::fs::File;
use std::path::PathBuf;

use clap::Args;
use color_eyre::eyre::{Context, Result};

use super::say;
use subrt::config::Config;
use subrt::runlog::{self, ExportFormat, Store};

/// Arguments of `subrt export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run id, a unique prefix of one, or `last`.
    pub run: String,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out the setup commands' output.
    #[arg(long)]
    pub no_setup: bool,
}

/// `--format` of `subrt export`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// The stdout bytes exactly as written.
    Stdout,
    /// The stderr bytes exactly as written.
    Stderr,
    /// asciicast v3, for sharing.
    Asciicast,
    /// How each command ended and how much it printed.
    Json,
}

pub(super) fn export(config: &Config, args: &ExportArgs) -> Result<i32> {
    let path = Store::new(&config.store_dir).resolve(&args.run)?;
    let mut reader = runlog::open(&path)?;
    let format = match args.format {
        FormatArg::Stdout => ExportFormat::Stdout,
        FormatArg::Stderr => ExportFormat::Stderr,
        FormatArg::Asciicast => ExportFormat::Asciicast,
        FormatArg::Json => ExportFormat::Json,
    };
    let written = match &args.output {
        Some(file) => {
            let out =
                File::create(file).wrap_err_with(|| format!("cannot create {}", file.display()))?;
            let mut out = std::io::BufWriter::new(out);
            runlog::export(&mut reader, format, !args.no_setup, &mut out)
                .wrap_err_with(|| format!("cannot write {}", file.display()))
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            runlog::export(&mut reader, format, !args.no_setup, &mut out)
                .wrap_err("cannot write to stdout")
        }
    };
    for warning in &reader.warnings {
        say(format_args!("warning: {warning}"));
    }
    written?;
    Ok(0)
}
