//! The `subrt` binary: parses arguments, installs color-eyre, calls the CLI.

use std::io::Write;

use clap::Parser;

mod cli;

fn main() -> color_eyre::Result<()> {
    // What subrt inherited is not for its commands (see inherited_fds).
    use subrt::runtime::inherited_fds;
    inherited_fds::close_on_exec(&inherited_fds::inheritable());
    // color-eyre's hook for panics; for errors a plain one: subrt's
    // errors are for people, printed on one line (below), and capturing a
    // backtrace for each (as RUST_BACKTRACE=1 asks color-eyre's handler
    // to) took 200 MB and a second for a missing file in a debug build.
    let (panic_hook, _) = color_eyre::config::HookBuilder::default().into_hooks();
    panic_hook.install();
    color_eyre::eyre::set_hook(Box::new(|_| Box::new(PlainErrors)))?;
    let cli = cli::Cli::parse();
    let runtime = match cli.command {
        // One thread: subrt's tasks share a core and leave the other to the
        // command. Measured in BENCHMARKS.md (fewer context switches).
        Some(cli::Command::Run(_)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        // The dashboard runs many sessions at once; its event loop must not
        // wait behind their readers (measured: key latency under 20 floods).
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    let status = match runtime.block_on(cli::main(cli)) {
        Ok(status) => status,
        // The reader of our output went away (`subrt ls | head`): nothing
        // more to say, and nobody to say it to.
        Err(report) if is_broken_pipe(&report) => 0,
        Err(report) => {
            // Expected failures (bad config, missing dir, daemon down) are
            // for the user, not a backtrace: one line, each cause once.
            // Not eprintln: stderr may be a terminal that closed (the
            // dashboard's), and a failed print would panic.
            // Sanitised: an error may quote an id or a folder name.
            let line = subrt::sanitize::plain(&one_line(&report));
            let _ = writeln!(std::io::stderr(), "subrt: {line}");
            cli::EXIT_USAGE
        }
    };
    // Dropping the runtime cancels what is left; the session was cleaned up.
    drop(runtime);
    std::process::exit(status);
}

/// Whether `report` comes from writing to a closed pipe.
fn is_broken_pipe(report: &color_eyre::Report) -> bool {
    report.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The chain of causes on one line, leaving out a cause that the message
/// before it already says (errors that print their source themselves).
fn one_line(report: &color_eyre::Report) -> String {
    let mut line = String::new();
    for cause in report.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// The error handler of the binary: the error and its causes, nothing
/// captured.
struct PlainErrors;

impl color_eyre::eyre::EyreHandler for PlainErrors {
    fn debug(
        &self,
        error: &(dyn std::error::Error + 'static),
        f: &mut std::fmt::Formatter<'_>,
    ) -> std::fmt::Result {
        write!(f, "{error}")?;
        let mut cause = error.source();
        while let Some(next) = cause {
            write!(f, ": {next}")?;
            cause = next.source();
        }
        Ok(())
    }
}
