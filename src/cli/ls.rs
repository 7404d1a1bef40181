//! `subrt ls`: the runs in the store, newest first, filtered.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use color_eyre::eyre::Result;

use super::{clip, parse_duration, parse_label, say};
use subrt::config::Config;
use subrt::runlog::{RunState, Store};
use subrt::runtime::Verdict;

/// Arguments of `subrt ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only runs whose session is alive (running or idle).
    #[arg(long)]
    pub live: bool,
    /// One JSON object per run, one per line.
    #[arg(long)]
    pub json: bool,
    /// Only runs of this batch.
    #[arg(long, value_name = "ID")]
    pub batch: Option<String>,
    /// Only runs with this label (repeat for more).
    #[arg(long, value_name = "K=V", value_parser = parse_label)]
    pub label: Vec<(String, String)>,
    /// Only runs in this state: running, idle, interrupted, ok, failed,
    /// timed_out, killed (how each is decided: the README's "Outcome
    /// words"), or finished (ended, whatever the verdict).
    #[arg(long, value_name = "STATE", value_parser = parse_state_filter)]
    pub state: Option<String>,
    /// Only runs of this environment.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Only runs started within this long (`1h`, `2d`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// At most N runs (the newest).
    #[arg(short = 'n', long = "limit", value_name = "N")]
    pub limit: Option<usize>,
}

fn parse_state_filter(text: &str) -> Result<String, String> {
    if text == "finished" || Verdict::from_key(text).is_some() {
        Ok(text.to_owned())
    } else {
        let keys: Vec<&str> = Verdict::ALL.iter().map(|v| v.key()).collect();
        Err(format!(
            "`{text}` is not a state; one of {}, finished",
            keys.join(", ")
        ))
    }
}

/// Whether `run` passes the filters of `args`.
fn ls_keeps(args: &LsArgs, run: &subrt::runlog::RunSummary, now: std::time::SystemTime) -> bool {
    use subrt::batch::labels;
    let label = |key: &str| run.labels.get(key).map(String::as_str);
    let state_ok = match args.state.as_deref() {
        None => true,
        Some("finished") => run.state == RunState::Finished,
        Some(key) => run.verdict() == Verdict::from_key(key),
    };
    let recent = match args.since {
        None => true,
        Some(window) => humantime::parse_rfc3339(&run.started_at)
            .ok()
            .and_then(|started| now.duration_since(started).ok())
            .is_some_and(|age| age <= window),
    };
    (!args.live || run.state.is_live())
        && args
            .batch
            .as_deref()
            .is_none_or(|b| label(labels::BATCH) == Some(b))
        && args.label.iter().all(|(k, v)| label(k) == Some(v.as_str()))
        && args.env.as_deref().is_none_or(|e| run.environment == e)
        && state_ok
        && recent
}

pub(super) fn ls(config: &Config, args: &LsArgs) -> Result<i32> {
    let (runs, warnings) = Store::new(&config.store_dir).list()?;
    for warning in warnings {
        say(format_args!("warning: {warning}"));
    }
    let now = std::time::SystemTime::now();
    let runs = runs
        .into_iter()
        .filter(|r| ls_keeps(args, r, now))
        .take(args.limit.unwrap_or(usize::MAX));
    // Buffered: stdout is line-buffered, a write per run.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if args.json {
        for run in runs {
            let line = LsJson {
                verdict: run.verdict(),
                run: &run,
            };
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
        }
        out.flush()?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:<26} {:<16} {:<12} {:<28} {:<24} {:>5} {:<19} {:>9} {:>10} {:>10}",
        "RUN", "NAME", "ENV", "COMMAND", "STATE", "EXIT", "STARTED", "DURATION", "OUT", "ERR"
    )?;
    for run in runs {
        let name = [subrt::batch::labels::NAME, subrt::batch::labels::SUBMISSION]
            .iter()
            .find_map(|key| run.labels.get(*key))
            .map_or("-", String::as_str);
        let exit = match &run.outcome {
            Some(outcome) if outcome.status_lost.is_some() => "?".to_owned(),
            Some(outcome) => match outcome.signal {
                Some(signal) if outcome.killed || outcome.timed_out => format!("sig{signal}"),
                _ => outcome.exit_code.to_string(),
            },
            None => "-".to_owned(),
        };
        writeln!(
            out,
            "{:<26} {:<16} {:<12} {:<28} {:<24} {:>5} {:<19} {:>8.1}s {:>10} {:>10}",
            run.run_id,
            clip(name, 16),
            clip(&run.environment, 12),
            clip(run.command.as_deref().unwrap_or("-"), 28),
            clip(&state_words(&run), 24),
            exit,
            run.started_at.get(..19).unwrap_or(&run.started_at),
            run.duration.as_secs_f64(),
            run.bytes_out,
            run.bytes_err,
        )?;
    }
    out.flush()?;
    Ok(0)
}

/// One line of `subrt ls --json`: the run and its verdict.
#[derive(serde::Serialize)]
struct LsJson<'a> {
    #[serde(flatten)]
    run: &'a subrt::runlog::RunSummary,
    verdict: Option<Verdict>,
}

/// The STATE column: the run's verdict (the one vocabulary, see
/// [`Verdict`]), then what qualifies it: `failed, setup`, `killed,
/// outside`, `failed, out of memory`, `..., truncated`, `..., log
/// incomplete`.
fn state_words(run: &subrt::runlog::RunSummary) -> String {
    let mut words = vec![
        run.verdict()
            .map_or("finished, no command", Verdict::word)
            .to_owned(),
    ];
    if let Some(outcome) = &run.outcome {
        if run.state == RunState::Idle || run.state == RunState::Interrupted {
            // How its last command ended, beside the session's state.
            words.push(format!("last {}", Verdict::of(outcome)));
        }
        if outcome.status_lost.is_some() {
            words.push("status lost".into());
        } else if outcome.setup_failure.is_some() {
            words.push("setup".into());
        } else if outcome.oom_killed {
            words.push("out of memory".into());
        } else if outcome.killed_by == Some(subrt::runtime::KilledBy::Outside) {
            words.push("outside".into());
        }
    }
    if run.truncated {
        words.push("truncated".into());
    }
    if run.log_incomplete.is_some() {
        words.push("log incomplete".into());
    }
    words.join(", ")
}
