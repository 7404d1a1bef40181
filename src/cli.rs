//! The command line: `subrt run`, `subrt batch`, `subrt ls`, ...

mod progress;

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use color_eyre::eyre::{Context, Result, bail, eyre};
use tokio::signal::unix::{SignalKind, signal};

use progress::Progress;
use subrt::config::Config;
use subrt::runlog::{self, ExportFormat, RunState, RunlogWriter, Store};
use subrt::runtime::{Containment, Verdict, docker, leftovers, slurm};
use subrt::runtime::{ExecRequest, LaunchSpec, RuntimeEvent, RuntimeResult, StreamKind, registry};
use subrt::supervisor::{SessionEvent, Supervisor};

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

/// Arguments of `subrt gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Every subrt container, whether its owner runs or not.
    #[arg(long)]
    pub all: bool,
    /// Only containers of this environment.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

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

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 7d, 12h or 30m: {e}"))
}

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

fn parse_mount(text: &str) -> Result<subrt::spec::Mount, String> {
    use subrt::spec::{Mount, MountMode};
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [source, target] => (source, target, MountMode::Ro),
        [source, target, "ro"] => (source, target, MountMode::Ro),
        [source, target, "rw"] => (source, target, MountMode::Rw),
        _ => {
            return Err(format!(
                "`{text}` is not a mount: write SRC:DST, SRC:DST:ro or SRC:DST:rw"
            ));
        }
    };
    Ok(Mount {
        source: PathBuf::from(source),
        target: (*target).to_owned(),
        mode,
    })
}

fn parse_port(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{text}` is not a port mapping: write HOST:CONTAINER, e.g. 8080:80");
    let (host, container) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        host.parse().map_err(|_| bad())?,
        container.parse().map_err(|_| bad())?,
    ))
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

/// Arguments of `subrt run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Environment to run in (default: the config's default_environment).
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Working directory of the submission (default: the current one).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Kill the command after this many seconds (exit status 124).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// Feed this file to the command's stdin (`-`: subrt's own stdin).
    #[arg(long, value_name = "FILE|-")]
    pub stdin: Option<PathBuf>,
    /// Run as an evaluation: the setup's eval_commands run too.
    #[arg(long)]
    pub eval: bool,
    /// Skip the setup commands.
    #[arg(long)]
    pub no_setup: bool,
    /// Print the result as one JSON object instead of the output.
    #[arg(long)]
    pub json: bool,
    /// Do not record the run in the store.
    #[arg(long)]
    pub no_log: bool,
    /// A label of the run (repeat for more): `subrt ls --label` finds it.
    #[arg(long, value_name = "K=V", value_parser = parse_label)]
    pub label: Vec<(String, String)>,
    /// A name for the run, shown by `ls` and the dashboard.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A static asset: `{{static:NAME}}` in the command is its path (repeat).
    #[arg(long, value_name = "NAME=PATH", value_parser = parse_label)]
    pub asset: Vec<(String, String)>,
    /// An extra bind mount (Docker): SRC:DST, read-only unless `:rw` (repeat).
    #[arg(long, value_name = "SRC:DST[:ro|rw]", value_parser = parse_mount)]
    pub mount: Vec<subrt::spec::Mount>,
    /// A published port (Docker, on 127.0.0.1): HOST:CONTAINER (repeat).
    #[arg(long, value_name = "HOST:CONTAINER", value_parser = parse_port)]
    pub port: Vec<(u16, u16)>,
    /// A variable of the command's environment (repeat).
    #[arg(long, value_name = "K=V", value_parser = parse_label)]
    pub var: Vec<(String, String)>,
    /// The command: one word is a shell command line (`'make && ./a.out'`);
    /// several words are an argv, each quoted for the shell.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
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
        Some(Command::Run(args)) => run(&config, args).await,
        Some(Command::Batch(args)) => batch(&config, &args).await,
        Some(Command::Specs) => specs(&config).await,
        Some(Command::Ls(args)) => ls(&config, &args),
        Some(Command::Export(args)) => export(&config, &args),
        Some(Command::Replay(args)) if !args.print => replay_in_dashboard(config, &args).await,
        Some(Command::Replay(args)) => replay(&config, &args),
        Some(Command::Gc(args)) => gc(&config, &args).await,
        Some(Command::Prune(args)) => prune(&config, &args),
        Some(Command::Tui) | None => tui(config, subrt::tui::Options::default()).await,
    }
}

/// `subrt replay RUN`: the dashboard, replaying RUN (the config's
/// `[ui] startup` commands are not started).
async fn replay_in_dashboard(config: Config, args: &ReplayArgs) -> Result<i32> {
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

async fn tui(config: Config, options: subrt::tui::Options) -> Result<i32> {
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

async fn specs(config: &Config) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:<8} {:<14} {:<10} STATUS",
        "NAME", "TYPE", "CONTAINMENT", "ISOLATION"
    )?;
    let mut weak = false;
    let mut open = Vec::new();
    let mut limited = Vec::new();
    for spec in &config.environments {
        let status = match registry::builtins().check(spec).await {
            Ok(()) => "ready".to_owned(),
            Err(e) => format!("unavailable: {e}"),
        };
        let default = if spec.name == config.default_environment {
            " (default)"
        } else {
            ""
        };
        let containment = containment_of(spec);
        weak |= containment == Some(Containment::ProcessGroup);
        let containment = containment.map_or("none".to_owned(), |c| c.to_string());
        let isolation = isolation_of(spec);
        if isolation == "none" {
            open.push(spec.name.clone());
        }
        if !spec.limits.is_empty() {
            limited.push(format!("{}: {}", spec.name, spec.limits.describe()));
        }
        writeln!(
            out,
            "{:<20} {:<8} {containment:<14} {isolation:<10} {status}{default}",
            spec.name, spec.kind
        )?;
    }
    for line in &limited {
        writeln!(out, "  limits of {line}")?;
    }
    // What isolating nothing means, plainly, below the table.
    if !open.is_empty() {
        writeln!(
            out,
            "\nisolation none ({}): commands read and write whatever this user can and reach \
             the network. For untrusted code use local.isolation = \"sandbox\" or Docker.",
            open.join(", ")
        )?;
    }
    // What a weak containment means, once, below the table.
    if weak {
        let reason = subrt::runtime::pid_namespaces()
            .err()
            .unwrap_or("chosen in the config");
        writeln!(
            out,
            "\nprocess-group: PID namespaces are not used ({reason}); a process that calls \
             setsid can outlive its session. Run as root (or with CAP_SYS_ADMIN) for pid-namespace."
        )?;
    }
    Ok(0)
}

/// What a session of `spec` is kept from: `none` (a local session with
/// `isolation = "process"`), `sandbox`, `container` (Docker, Slurm with a
/// container), `node` (a Slurm step without one: the node's cgroup only).
fn isolation_of(spec: &subrt::spec::EnvironmentSpec) -> &'static str {
    match spec.kind.as_str() {
        "docker" => "container",
        "slurm" if spec.slurm.as_ref().is_some_and(|s| s.container.is_some()) => "container",
        "slurm" => "none",
        _ => match spec.local.isolation {
            subrt::spec::Isolation::Sandbox => "sandbox",
            subrt::spec::Isolation::Process => "none",
        },
    }
}

/// What holds the processes of a session of `spec` together; `None` when
/// the spec asks for what this machine cannot give.
fn containment_of(spec: &subrt::spec::EnvironmentSpec) -> Option<Containment> {
    match spec.kind.as_str() {
        "docker" => Some(Containment::Container),
        "slurm" => Some(Containment::SlurmStep),
        _ => subrt::runtime::local_containment(spec).ok(),
    }
}

async fn run(config: &Config, args: RunArgs) -> Result<i32> {
    let spec = config.environment(args.env.as_deref())?;
    let working_dir = match args.workdir {
        Some(dir) => std::path::absolute(&dir)
            .wrap_err_with(|| format!("cannot resolve working directory {}", dir.display()))?,
        None => std::env::current_dir().wrap_err("cannot read the current directory")?,
    };
    let stdin = match &args.stdin {
        None => None,
        Some(path) if path.as_os_str() == "-" => {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut data)
                .wrap_err("cannot read subrt's stdin")?;
            Some(Bytes::from(data))
        }
        // A file in the submission's folder must stay in it (a link there
        // to a host file is refused); the operator's own files are read as
        // named.
        Some(path) => {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let path = subrt::runtime::beneath::lexical(&path);
            let data = match subrt::runtime::beneath::relative_to(&working_dir, &path) {
                Some(relative) => subrt::runtime::beneath::read(
                    &working_dir,
                    &relative,
                    subrt::batch::MAX_STDIN_BYTES,
                )
                .map_err(|e| eyre!("stdin file: {e}"))?,
                None => std::fs::read(&path)
                    .wrap_err_with(|| format!("cannot read stdin file {}", path.display()))?,
            };
            Some(Bytes::from(data))
        }
    };

    // Handlers first: a signal must never find a command running without them.
    let mut signals = Signals::new()?;
    let mut launch = LaunchSpec::new(spec.clone(), working_dir);
    launch.is_evaluation = args.eval;
    launch.disable_setup = args.no_setup;
    launch.labels = args.label.iter().cloned().collect();
    launch.env_vars = args.var.iter().cloned().collect();
    launch.mounts = args.mount.clone();
    launch.ports = args
        .port
        .iter()
        .map(|&(host, container)| (container, host))
        .collect();
    launch.static_assets = args
        .asset
        .iter()
        .map(|(name, path)| {
            // Relative to where subrt was started, as a user reads it.
            let path = std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path));
            let asset = subrt::runtime::StaticAsset {
                path,
                save_path: PathBuf::from(name),
            };
            (name.clone(), asset)
        })
        .collect();
    if let Some(name) = &args.name {
        launch
            .labels
            .insert(subrt::batch::labels::NAME.into(), name.clone());
    }
    let run_id = launch.run_id.clone();
    let log_launch = (!args.no_log).then(|| launch.clone());
    let spawning = registry::builtins().spawn(launch);
    tokio::pin!(spawning);
    let runtime = tokio::select! {
        runtime = &mut spawning => runtime?,
        signal = signals.recv() => {
            // Let a spawn that is nearly done finish, so that what it made
            // (a container) is cleaned up here rather than left to `gc`.
            if let Ok(Ok(runtime)) = tokio::time::timeout(SPAWN_GRACE, spawning).await {
                runtime.cleanup().await?;
            }
            return Ok(128 + signal);
        }
    };
    let supervisor = match log_launch {
        Some(launch) => {
            let log = RunlogWriter::create(
                &config.store_dir,
                config.store_limits,
                &launch,
                &runtime.info(),
            );
            let log = match log {
                Ok(log) => log,
                Err(e) => {
                    runtime.cleanup().await?;
                    bail!("cannot record the run: {e} (--no-log runs without a log)");
                }
            };
            Supervisor::start_recorded(runtime, log)
        }
        None => Supervisor::start(runtime),
    };
    let mut events = supervisor.subscribe();

    let command = command_line(&args.command);
    let mut request = ExecRequest::new(command.clone()).capture_limit(if args.json {
        subrt::runtime::DEFAULT_CAPTURE_LIMIT
    } else {
        0
    });
    request.timeout = args.timeout;
    request.stdin = stdin;
    let _reply = supervisor.submit(request).await;

    let mut out = RawOutput::default();
    let mut result = None;
    while result.is_none() {
        let event = tokio::select! {
            event = events.recv() => event,
            signal = signals.recv() => {
                // Cleanup, not kill: a kill finds nothing to kill while the
                // command is still on its way to the runtime, and cleanup
                // also stops it from starting.
                supervisor.cleanup().await?;
                return Ok(128 + signal);
            }
        };
        match event {
            Some(SessionEvent::Runtime { event, .. }) => match event {
                RuntimeEvent::Output(chunk) if !args.json => out.write(chunk.stream, &chunk.data),
                RuntimeEvent::Output(_)
                | RuntimeEvent::SetupStarted { .. }
                | RuntimeEvent::ProcessStarted { .. } => {}
                RuntimeEvent::Note(note) => say(&note),
                RuntimeEvent::Finished(finished) => result = Some(finished),
            },
            Some(SessionEvent::Failed { error, .. }) => {
                supervisor.cleanup().await?;
                bail!("{error}");
            }
            Some(SessionEvent::CommandStarted { .. }) => {}
            None => bail!("the session ended without a result"),
        }
    }
    supervisor.cleanup().await?;
    // Said while cleaning up: the log found incomplete at its end.
    while let Ok(event) = events.try_recv() {
        if let SessionEvent::Runtime {
            event: RuntimeEvent::Note(note),
            ..
        } = event
        {
            say(&note);
        }
    }
    let result = result.expect("the loop ends with a result");

    if args.json {
        let stdout = std::io::stdout().lock();
        let mut writer = std::io::BufWriter::new(stdout);
        let document = RunJson {
            run_id: &run_id,
            command: &command,
            elapsed: result.elapsed.as_secs_f64(),
            outcome: result.outcome(),
            stdout: &result.stdout,
            stderr: &result.stderr,
            setup_stdout: &result.setup_stdout,
            setup_stderr: &result.setup_stderr,
        };
        serde_json::to_writer(&mut writer, &document)?;
        writeln!(writer)?;
        writer.flush()?;
    } else if let Some(failure) = &result.setup_failure {
        say(format_args!(
            "setup command `{}` failed with exit status {}; the command did not run",
            failure.command, failure.exit_code
        ));
    }
    Ok(exit_status(&result))
}

/// What `subrt run --json` prints: the run, its [`Outcome`] (the fields
/// `ls --json` and `export --format json` use too) and the output.
///
/// [`Outcome`]: subrt::runtime::Outcome
#[derive(serde::Serialize)]
struct RunJson<'a> {
    run_id: &'a str,
    command: &'a str,
    elapsed: f64,
    #[serde(flatten)]
    outcome: subrt::runtime::Outcome,
    stdout: &'a subrt::runtime::CapturedOutput,
    stderr: &'a subrt::runtime::CapturedOutput,
    setup_stdout: &'a subrt::runtime::CapturedOutput,
    setup_stderr: &'a subrt::runtime::CapturedOutput,
}

/// How long a spawn under way may still take after a signal.
const SPAWN_GRACE: Duration = Duration::from_millis(500);

/// SIGINT, SIGTERM and SIGHUP, which end `subrt run` with 128+N.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next of them to arrive.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a signal not returned stays pending.
    async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => libc::SIGINT,
            _ = self.terminate.recv() => libc::SIGTERM,
            _ = self.hangup.recv() => libc::SIGHUP,
        }
    }
}

fn ls(config: &Config, args: &LsArgs) -> Result<i32> {
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

fn export(config: &Config, args: &ExportArgs) -> Result<i32> {
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

fn replay(config: &Config, args: &ReplayArgs) -> Result<i32> {
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

/// `subrt batch`. Interrupted (SIGINT, SIGTERM), it cleans up every running
/// session and exits 128 + the signal. When the reader of its stdout goes
/// away (`subrt batch --json FILE | head -1`) it does the same and exits 141,
/// what a shell shows for a process that SIGPIPE ended: the batch did not
/// finish, so its status must not say it did; unlike `subrt ls | head`,
/// where nothing is lost and the status stays 0.
async fn batch(config: &Config, args: &BatchArgs) -> Result<i32> {
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

fn prune(config: &Config, args: &PruneArgs) -> Result<i32> {
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

async fn gc(config: &Config, args: &GcArgs) -> Result<i32> {
    // The default daemon, and every other one an environment names.
    let mut hosts: Vec<Option<String>> = vec![None];
    for spec in &config.environments {
        let host = spec.docker.as_ref().and_then(|d| d.host.clone());
        if host.is_some() && !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    let mut status = 0;
    let (mut found, mut removed) = (0, 0);
    for host in hosts {
        let docker = match docker::connect(host.as_deref()).await {
            Ok(docker) => docker,
            Err(e) => {
                say(&e);
                status = 1;
                continue;
            }
        };
        let mut containers = leftovers::leftovers(&docker, args.all).await?;
        if let Some(env) = &args.env {
            containers.retain(|c| &c.environment == env);
        }
        for container in containers {
            found += 1;
            let what = format!(
                "{} ({}) run {} env {}: {}",
                container.name,
                container.id.get(..12).unwrap_or(&container.id),
                container.run_id,
                container.environment,
                container.verdict
            );
            if args.dry_run {
                writeln!(std::io::stdout(), "would remove {what}")?;
            } else {
                match leftovers::remove(&docker, &container.id).await {
                    Ok(()) => {
                        removed += 1;
                        writeln!(std::io::stdout(), "removed {what}")?;
                    }
                    Err(e) => {
                        say(&e);
                        status = 1;
                    }
                }
            }
        }
    }
    // Jobs on a Slurm cluster, when an environment runs on one.
    let slurm = config.environments.iter().any(|e| e.kind == "slurm");
    if slurm {
        match gc_slurm(args).await {
            Ok((jobs_found, jobs_cancelled)) => {
                found += jobs_found;
                removed += jobs_cancelled;
            }
            Err(e) => {
                say(&e);
                status = 1;
            }
        }
    }
    let scope = match (args.all, slurm) {
        (true, true) => "subrt containers and jobs",
        (true, false) => "subrt containers",
        (false, true) => "leftover containers and jobs",
        (false, false) => "leftover containers",
    };
    match (found, args.dry_run) {
        (0, _) => writeln!(std::io::stdout(), "no {scope}")?,
        (n, true) => writeln!(std::io::stdout(), "{n} {scope} (dry run: none removed)")?,
        (n, false) => writeln!(std::io::stdout(), "{removed} of {n} {scope} removed")?,
    }
    Ok(status)
}

/// `subrt gc` on the Slurm cluster: subrt's jobs whose owner is gone (or
/// all of them), cancelled. Returns how many were found and cancelled.
async fn gc_slurm(args: &GcArgs) -> Result<(usize, usize)> {
    let mut jobs = slurm::leftover_jobs(args.all).await?;
    if let Some(env) = &args.env {
        let prefix = format!("subrt-{env}-");
        jobs.retain(|j| j.name.starts_with(&prefix));
    }
    let mut cancelled = 0;
    for job in &jobs {
        let what = format!(
            "slurm job {} ({}, {} on {}), owner {}{}",
            job.job_id,
            job.name,
            job.state,
            job.nodes,
            job.owner,
            if job.owner_gone { " (gone)" } else { "" }
        );
        if args.dry_run {
            writeln!(std::io::stdout(), "would cancel {what}")?;
        } else {
            slurm::cancel_job(&job.job_id).await?;
            cancelled += 1;
            writeln!(std::io::stdout(), "cancelled {what}")?;
        }
    }
    Ok((jobs.len(), cancelled))
}

/// The exit status `subrt run` reports for `result`: the command's own,
/// 124 after a timeout, 128+N after signal N.
pub fn exit_status(result: &RuntimeResult) -> i32 {
    if result.timed_out {
        EXIT_TIMED_OUT
    } else if (0..=255).contains(&result.exit_code) {
        result.exit_code
    } else {
        1
    }
}

/// Unbuffered writes to fds 1 and 2, so bytes go out as they arrive and
/// without a copy. A stream whose reader went away (EPIPE) is dropped
/// silently; the command keeps running.
#[derive(Default)]
struct RawOutput {
    closed: [bool; 2],
}

impl RawOutput {
    fn write(&mut self, stream: StreamKind, data: &[u8]) {
        let (fd, index) = match stream {
            StreamKind::Stdout => (1, 0),
            StreamKind::Stderr => (2, 1),
        };
        if self.closed[index] {
            return;
        }
        // SAFETY: fds 1 and 2 stay open for the life of the process, and
        // ManuallyDrop keeps this File from closing them.
        let mut file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        if file.write_all(data).is_err() {
            self.closed[index] = true;
        }
    }
}
