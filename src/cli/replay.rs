//! `subrt replay RUN`: a run's output with its timing, printed or in the
//! dashboard.

use clap::Args;
use color_eyre::eyre::{Context, Result, bail};

use super::say;
use super::tui::tui;
use subrt::config::Config;
use subrt::runlog::{self, Store};

/// Arguments of `subrt replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A run id, a unique prefix of one, or `last`.
    pub run: String,
    /// Print to stdout and stderr; without it, the dashboard opens on the
    /// run and replays it.
    #[arg(long)]
    pub print: bool,
    /// Speed factor; 0 prints without delay (the dashboard plays from ×1/16
    /// to ×64).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Leave out the setup commands' output.
    #[arg(long)]
    pub no_setup: bool,
}

/// `subrt replay RUN`: the dashboard, replaying RUN (the config's
/// `[ui] startup` commands are not started).
pub(super) async fn replay_in_dashboard(config: Config, args: &ReplayArgs) -> Result<i32> {
    check_speed(args.speed)?;
    let path = Store::new(&config.store_dir).resolve(&args.run)?;
    let (run, _) = runlog::summarize(&path)?;
    let options = subrt::tui::Options {
        replay: Some(subrt::tui::ReplayStart {
            run,
            speed: args.speed,
        }),
    };
    tui(config, options).await
}

fn check_speed(speed: f64) -> Result<()> {
    if !(speed >= 0.0 && speed.is_finite()) {
        bail!("--speed must be 0 or a positive number, not {speed}");
    }
    Ok(())
}

pub(super) fn replay(config: &Config, args: &ReplayArgs) -> Result<i32> {
    check_speed(args.speed)?;
    let path = Store::new(&config.store_dir).resolve(&args.run)?;
    let mut reader = runlog::open(&path)?;
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let played = runlog::replay_print(
        &mut reader,
        args.speed,
        !args.no_setup,
        &mut stdout,
        &mut stderr,
    );
    for warning in &reader.warnings {
        say(format_args!("warning: {warning}"));
    }
    played.wrap_err("cannot write the output back")?;
    Ok(0)
}
