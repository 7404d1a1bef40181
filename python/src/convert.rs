//! Results and runtime info as Python dicts, which `subrt/_models.py` turns
//! into the seed's objects.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use subrt::runtime::{CapturedOutput, RuntimeInfo, RuntimeResult};

/// A result as a dict: `exit_code`, `signal`, `elapsed` (seconds),
/// `timed_out`, `killed`, `killed_by`, `oom_killed`, `status_lost`,
/// `peak_memory_bytes`, `cpu_user_seconds`, `cpu_system_seconds`,
/// `setup_failure` (`None` or `(command, exit_code)`),
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
    let killed_by = result.killed_by.map(|k| {
        serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    });
    dict.set_item("killed_by", killed_by)?;
    dict.set_item("oom_killed", result.oom_killed)?;
    dict.set_item("status_lost", &result.status_lost)?;
    dict.set_item("peak_memory_bytes", result.usage.peak_memory_bytes)?;
    dict.set_item("cpu_user_seconds", result.usage.cpu_user_seconds)?;
    dict.set_item("cpu_system_seconds", result.usage.cpu_system_seconds)?;
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
