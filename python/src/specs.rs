//! Environment specs for Python: checked by the library's own types, so a
//! spec means in Python exactly what it means in `config.toml`.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use subrt::config::Config;
use subrt::spec::EnvironmentSpec;

/// Parses and checks a spec given as JSON (the Python classes serialise
/// their fields), and returns it as JSON with every default filled in.
///
/// # Errors
///
/// `ValueError` naming the field: `docker.memroy: unknown field ...`.
pub(crate) fn parse(json: &str) -> PyResult<EnvironmentSpec> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let spec: EnvironmentSpec =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde_json appends "at line 1 column 57" of the JSON we made,
            // which means nothing to the caller.
            let message = strip_position(&inner.to_string());
            if path == "." {
                PyValueError::new_err(message)
            } else {
                PyValueError::new_err(format!("{path}: {message}"))
            }
        })?;
    spec.check().map_err(PyValueError::new_err)?;
    Ok(spec)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Checks a spec and returns it with its defaults, as JSON.
#[pyfunction]
pub(crate) fn check_spec(json: &str) -> PyResult<String> {
    let spec = parse(json)?;
    serde_json::to_string(&spec).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// What a `config.toml` gives the package: its default environment's name,
/// its store and the store's bounds (`max_run_bytes`, `max_bytes`), and its
/// environments (as JSON, in the file's order).
type LoadedConfig = (String, PathBuf, u64, Option<u64>, Vec<String>);

/// Loads a `config.toml` (see [`LoadedConfig`]).
#[pyfunction]
pub(crate) fn load_config(path: PathBuf) -> PyResult<LoadedConfig> {
    let config = Config::load(&path).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let environments = config
        .environments
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((
        config.default_environment,
        config.store_dir,
        config.store_limits.max_run_bytes,
        config.store_limits.max_bytes,
        environments,
    ))
}

/// The runtime types the Rust library provides (`local`, `docker`, ...).
#[pyfunction]
pub(crate) fn runtime_types() -> Vec<String> {
    subrt::runtime::registry::builtins().kinds()
}
