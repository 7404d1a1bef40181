//! subrt runs submissions (programs under evaluation, often untrusted) on
//! pluggable runtimes and records what they print.
//!
//! - [`spec`] and [`config`]: environments from `config.toml`;
//! - [`runtime`]: the [`SubmissionRuntime`](runtime::SubmissionRuntime)
//!   contract, the registry and the runtimes;
//! - [`batch`]: many submissions from one file, up to `jobs` at once;
//! - [`supervisor`]: one task per session that owns a runtime and fans its
//!   events out to the CLI, the run log and the TUI;
//! - [`runlog`]: the saved log of every session, its reader and exports;
//! - [`tui`]: the terminal dashboard;
//! - [`sanitize`]: what of untrusted text may reach a terminal.

pub mod batch;
pub mod config;
pub mod runlog;
pub mod runtime;
pub mod sanitize;
pub mod spec;
pub mod supervisor;
pub mod tui;
