//! The command line: `subrt run`, `subrt batch`, `subrt ls`, ...: the
//! parsed arguments and the dispatch here, a file per subcommand beside.

mod batch;
mod export;
mod gc;
mod ls;
mod progress;
mod prune;
mod replay;
mod run;
mod signals;
mod specs;
mod tui;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use color_eyre::eyre::Result;

use subrt::config::Config;

pub use batch::BatchArgs;
pub use export::ExportArgs;
pub use gc::GcArgs;
pub use ls::LsArgs;
pub use prune::PruneArgs;
pub use replay::ReplayArgs;
pub use run::RunArgs;

/// Exit status of a command that timed out, as coreutils `timeout` uses.
pub const EXIT_TIMED_OUT: i32 = 124;

/// Exit status when subrt itself fails (bad config, missing dir, ...).
pub const EXIT_USAGE: i32 = 2;

/// Exit status of `subrt batch` when its output's reader went away: what a
/// shell shows for a process ended by SIGPIPE (128 + 13).
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// Runs submissions on pluggable runtimes.
#[derive(Debug, Parser)]
#[command(name = "subrt", version, about)]
pub struct Cli {
    /// Config file (default: ./config.toml if present, else built-in).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in an environment, forwarding its output byte for byte.
    Run(RunArgs),
    /// Run every submission of a batch file, up to -j at once.
    Batch(BatchArgs),
    /// List the configured environments and whether each can run here now.
    Specs,
    /// List the runs in the store, newest first.
    Ls(LsArgs),
    /// Write a run's output or results from its log.
    Export(ExportArgs),
    /// Play a run's output back with its original timing.
    Replay(ReplayArgs),
    /// Remove subrt containers whose owning process is gone.
    Gc(GcArgs),
    /// Remove finished runs from the store.
    Prune(PruneArgs),
    /// Open the terminal dashboard (also what `subrt` alone does).
    Tui,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 7d, 12h or 30m: {e}"))
}

/// The shell line of `subrt run -- WORDS`: one word is a command line as
/// it is; several are an argv, each word quoted for the shell (as `timeout`
/// and `docker run` take them).
pub fn command_line(words: &[String]) -> String {
    match words {
        [line] => line.clone(),
        words => words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `word` as one shell word: as it is when nothing in it is special, else in
/// single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not a label: write KEY=VALUE")),
    }
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a usable timeout"))
}

/// Runs the parsed command line and returns the process exit status.
pub async fn main(cli: Cli) -> Result<i32> {
    let mut config = Config::load_or_builtin(cli.config.as_deref())?;
    if let Some(store) = subrt::config::env_store_dir() {
        config.store_dir = store;
    }
    match cli.command {
        Some(Command::Run(args)) => run::run(&config, args).await,
        Some(Command::Batch(args)) => batch::batch(&config, &args).await,
        Some(Command::Specs) => specs::specs(&config).await,
        Some(Command::Ls(args)) => ls::ls(&config, &args),
        Some(Command::Export(args)) => export::export(&config, &args),
        Some(Command::Replay(args)) if !args.print => {
            replay::replay_in_dashboard(config, &args).await
        }
        Some(Command::Replay(args)) => replay::replay(&config, &args),
        Some(Command::Gc(args)) => gc::gc(&config, &args).await,
        Some(Command::Prune(args)) => prune::prune(&config, &args),
        Some(Command::Tui) | None => tui::tui(config, subrt::tui::Options::default()).await,
    }
}

/// Says `text` on stderr after `subrt: `, sanitised: notes, warnings and
/// errors quote command lines, ids and folder names, which are untrusted.
fn say(text: impl std::fmt::Display) {
    eprintln!("subrt: {}", subrt::sanitize::plain(&text.to_string()));
}

/// `text` cut to `width` characters, with an ellipsis when cut; escape
/// sequences and controls (from a command line, an id) dropped.
fn clip(text: &str, width: usize) -> String {
    let clean = subrt::sanitize::plain(text);
    if clean.chars().count() <= width {
        clean
    } else {
        clean.chars().take(width - 1).chain(['…']).collect()
    }
}
