//! The `subrt` binary: parses arguments, installs color-eyre, calls the CLI.

use clap::Parser;

mod cli;

fn main() -> color_eyre::Result<()> {
    color_eyre::install()?;
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
        Err(report) => {
            // Expected failures (bad config, missing dir, daemon down) are
            // for the user, not a backtrace: print the chain of causes.
            let causes: Vec<String> = report.chain().map(ToString::to_string).collect();
            eprintln!("subrt: {}", causes.join(": "));
            cli::EXIT_USAGE
        }
    };
    // Dropping the runtime cancels what is left; the session was cleaned up.
    drop(runtime);
    std::process::exit(status);
}
