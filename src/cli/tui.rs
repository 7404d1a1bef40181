//! `subrt` or `subrt tui`: the dashboard.

use color_eyre::eyre::{Context, Result, bail};

use subrt::config::Config;

pub(super) async fn tui(config: Config, options: subrt::tui::Options) -> Result<i32> {
    use std::io::IsTerminal;
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        bail!(
            "the dashboard needs a terminal; without one, `subrt ls` lists the runs \
             and `subrt run -- COMMAND` runs one"
        );
    }
    // Diagnostics go to a file: nothing may write over the dashboard.
    std::fs::create_dir_all(&config.store_dir)
        .wrap_err_with(|| format!("cannot create the store {}", config.store_dir.display()))?;
    let log_path = config.store_dir.join("subrt-tui.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .wrap_err_with(|| format!("cannot open {}", log_path.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(log))
        .with_ansi(false)
        .try_init();
    // Ended by SIGTERM or SIGHUP (after cleaning up): say so, as 128+N.
    Ok(subrt::tui::run(config, options)
        .await?
        .map_or(0, |signal| 128 + signal))
}
