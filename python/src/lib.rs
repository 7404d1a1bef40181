//! `subrt._native`: the Rust half of the Python package.
//!
//! It exposes the library's runtimes and supervisor as a few small types;
//! the seed's API (spec classes, `spawn_runtime`, the registry of Python
//! runtimes, result objects) is built over them in `subrt/*.py`.
//!
//! - [`specs`]: checking environment specs and loading `config.toml`;
//! - [`session`]: a runtime under a supervisor, recorded in the store;
//! - [`events`]: the iterator of one streamed command;
//! - [`executor`]: the process's tokio runtime, re-made after a fork;
//! - [`convert`]: results and events as Python values.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

mod command;
mod convert;
mod events;
mod executor;
mod session;
mod specs;

create_exception!(
    _native,
    ExecutionError,
    PyException,
    "Running a submission failed for a reason other than the submission's own exit."
);
create_exception!(
    _native,
    SolutionRuntimeError,
    ExecutionError,
    "A runtime could not start, run a command or clean up: the Docker daemon \
     cannot be reached, an image is missing, the working directory is not usable..."
);

create_exception!(
    _native,
    FileTooLargeError,
    ExecutionError,
    "A file is larger than the reader's limit: args are (message, size, limit)."
);

/// A runtime error as the exception Python users catch, with the message the
/// CLI prints.
pub(crate) fn runtime_error(error: impl std::fmt::Display) -> PyErr {
    SolutionRuntimeError::new_err(error.to_string())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // A harness's forks wait for subrt's process-wide sections (see
    // `fork_gate`): registered now, before any fork can come.
    subrt::runtime::fork_gate::install();
    let py = m.py();
    m.add("ExecutionError", py.get_type::<ExecutionError>())?;
    m.add(
        "SolutionRuntimeError",
        py.get_type::<SolutionRuntimeError>(),
    )?;
    m.add_function(wrap_pyfunction!(specs::check_spec, m)?)?;
    m.add_function(wrap_pyfunction!(specs::load_config, m)?)?;
    m.add_function(wrap_pyfunction!(specs::runtime_types, m)?)?;
    m.add_function(wrap_pyfunction!(session::default_store, m)?)?;
    m.add_function(wrap_pyfunction!(session::remove_leftovers, m)?)?;
    m.add_class::<session::Session>()?;
    m.add_class::<session::Spawning>()?;
    m.add("FileTooLargeError", py.get_type::<FileTooLargeError>())?;
    m.add_class::<events::Events>()?;
    m.add_class::<command::Command>()?;
    Ok(())
}
