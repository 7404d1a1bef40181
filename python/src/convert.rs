//! Results and runtime info as Python dicts, which `subrt/_models.py` turns
//! into the seed's objects.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use subrt::runtime::{CapturedOutput, RuntimeInfo, RuntimeResult};

/// A result as a dict: `exit_code`, `signal`, `elapsed` (seconds),
/// `timed_out`, `killed`, `setup_failure` (`None` or `(command, exit_code)`),
/// and per stream (`stdout`, `stderr`, `setup_stdout`, `setup_stderr`) the
/// kept bytes as `<stream>_bytes` and the count of every byte written as
/// `<stream>_total_bytes`.
pub(crate) fn result<'py>(py: Python<'py>, result: &RuntimeResult) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("exit_code", result.exit_code)?;
    dict.set_item("signal", result.signal)?;
    dict.set_item("elapsed", result.elapsed.as_secs_f64())?;
    dict.set_item("timed_out", result.timed_out)?;
    dict.set_item("killed", result.killed)?;
    let failure = result
        .setup_failure
        .as_ref()
        .map(|f| (f.command.clone(), f.exit_code));
    dict.set_item("setup_failure", failure)?;
    let streams: [(&str, &CapturedOutput); 4] = [
        ("stdout", &result.stdout),
        ("stderr", &result.stderr),
        ("setup_stdout", &result.setup_stdout),
        ("setup_stderr", &result.setup_stderr),
    ];
    for (name, captured) in streams {
        dict.set_item(format!("{name}_bytes"), PyBytes::new(py, &captured.data))?;
        dict.set_item(format!("{name}_total_bytes"), captured.total_bytes)?;
    }
    Ok(dict)
}

/// A runtime's info as a dict: `type`, `state`, `containment`, `pid`,
/// `pgid`, `init_pid`, `container_id`.
pub(crate) fn info<'py>(py: Python<'py>, info: &RuntimeInfo) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("type", &info.kind)?;
    let state = serde_json::to_value(info.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    dict.set_item("state", state)?;
    dict.set_item("containment", info.containment.to_string())?;
    dict.set_item("pid", info.pid)?;
    dict.set_item("pgid", info.pgid)?;
    dict.set_item("init_pid", info.init_pid)?;
    dict.set_item("container_id", &info.container_id)?;
    Ok(dict)
}
