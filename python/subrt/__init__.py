"""subrt: run untrusted submissions on pluggable runtimes, with the seed's API.

>>> from subrt import spawn_runtime, LocalEnvironmentSpec
>>> with spawn_runtime(LocalEnvironmentSpec(), ".") as runtime:
...     runtime.execute("echo hi").stdout
'hi\\n'

Every session is recorded in subrt's store (``SUBRT_STORE``, else the user's)
where ``subrt ls`` and the dashboard see it live; ``store=False`` records
nothing.
"""

from ._native import ExecutionError, FileTooLargeError, SolutionRuntimeError
from .models import RuntimeEvent, RuntimeResult, SetupFailure
from .runtime import (
    DockerRuntime,
    ExecRuntime,
    LocalRuntime,
    RunningCommand,
    RustRuntime,
    SlurmRuntime,
    SubmissionRuntime,
    register_runtime,
    registered_runtimes,
    spawn_exec_runtime,
    spawn_runtime,
    spawn_streaming_runtime,
)
from .specs import DockerEnvironmentSpec, EnvironmentSpec, LocalEnvironmentSpec, load_config

__all__ = [
    "DockerEnvironmentSpec",
    "DockerRuntime",
    "EnvironmentSpec",
    "ExecRuntime",
    "ExecutionError",
    "FileTooLargeError",
    "LocalEnvironmentSpec",
    "LocalRuntime",
    "RunningCommand",
    "RuntimeEvent",
    "RuntimeResult",
    "RustRuntime",
    "SetupFailure",
    "SlurmRuntime",
    "SolutionRuntimeError",
    "SubmissionRuntime",
    "load_config",
    "register_runtime",
    "registered_runtimes",
    "spawn_exec_runtime",
    "spawn_runtime",
    "spawn_streaming_runtime",
]
