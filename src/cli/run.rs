//! `subrt run -- COMMAND`: one command in an environment, its output
//! forwarded byte for byte, its exit status as the process's.

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use color_eyre::eyre::{Context, Result, bail, eyre};

use super::signals::Signals;
use super::{EXIT_TIMED_OUT, command_line, parse_label, parse_secs, say};
use subrt::config::Config;
use subrt::runtime::{ExecRequest, LaunchSpec, RuntimeEvent, RuntimeResult, StreamKind, registry};
use subrt::supervisor::{SessionEvent, Supervisor};

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

pub(super) async fn run(config: &Config, args: RunArgs) -> Result<i32> {
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
        Some(path) => Some(Bytes::from(
            subrt::runtime::beneath::read_in_submission(
                &working_dir,
                path,
                subrt::batch::MAX_STDIN_BYTES,
            )
            .map_err(|e| eyre!("stdin file: {e}"))?,
        )),
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
            subrt::runtime::StaticAsset::named(name, path)
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
            let started = Supervisor::start_in_store(
                runtime,
                &config.store_dir,
                config.store_limits,
                &launch,
            )
            .await;
            match started {
                Ok((supervisor, _)) => supervisor,
                Err(e) => bail!("cannot record the run: {e} (--no-log runs without a log)"),
            }
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
