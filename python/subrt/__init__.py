"""subrt: run untrusted submissions on pluggable runtimes, with the seed's API.

>>> from subrt import spawn_runtime, LocalEnvironmentSpec
>>> with spawn_runtime(LocalEnvironmentSpec(), ".") as runtime:
...     runtime.execute("echo hi").stdout
'hi\\n'

Every session is recorded in subrt's store (``SUBRT_STORE``, else the user's)
where ``subrt ls`` and the dashboard see it live; ``store=False`` records
nothing. The names the seed's execution layer exports are here too, with
its meaning (the README's compatibility table lists what differs).
"""

from typing import Union

from pydantic import Field
from typing_extensions import Annotated

from ._native import ExecutionError, FileTooLargeError, SolutionRuntimeError
from .models import LaunchSpec, RuntimeEvent, RuntimeResult, SetupFailure
from .runtime import (
    EXEC_RUNTIME_REGISTRY,
    RUNTIME_REGISTRY,
    STREAMING_RUNTIME_REGISTRY,
    BoundExecRuntime,
    Container,
    DockerExecRuntime,
    DockerRuntime,
    DockerStreamingRuntime,
    ExecRuntime,
    LocalExecRuntime,
    LocalRuntime,
    LocalStreamingRuntime,
    RunningCommand,
    RustRuntime,
    SlurmRuntime,
    StreamingRuntime,
    SubmissionRuntime,
    register_exec_runtime,
    register_runtime,
    register_streaming_runtime,
    registered_runtimes,
    spawn_exec_runtime,
    spawn_runtime,
    spawn_streaming_runtime,
)
from .specs import (
    CommandConfig,
    DockerConfig,
    DockerEnvironmentSpec,
    EnvironmentConfig,
    EnvironmentSpec,
    Limits,
    LocalConfig,
    LocalEnvironmentSpec,
    Mount,
    SandboxConfig,
    SeedDifferenceWarning,
    SetupConfig,
    SlurmConfig,
    SlurmContainer,
    SlurmEnvironmentSpec,
    SnapshotConfig,
    load_config,
    network_mode_for_address,
)


class InputFileReadError(ExecutionError):
    """An input file cannot be read (the seed's name)."""


class InputFileWriteError(ExecutionError):
    """An input file cannot be written (the seed's name)."""


#: A spec of a built-in type, told apart by ``type`` (the seed's union).
EnvironmentSpecType = Annotated[
    Union[LocalEnvironmentSpec, DockerEnvironmentSpec, SlurmEnvironmentSpec],
    Field(discriminator="type"),
]

__all__ = [
    "EXEC_RUNTIME_REGISTRY",
    "RUNTIME_REGISTRY",
    "STREAMING_RUNTIME_REGISTRY",
    "BoundExecRuntime",
    "CommandConfig",
    "Container",
    "DockerConfig",
    "DockerEnvironmentSpec",
    "DockerExecRuntime",
    "DockerRuntime",
    "DockerStreamingRuntime",
    "EnvironmentConfig",
    "EnvironmentSpec",
    "EnvironmentSpecType",
    "ExecRuntime",
    "ExecutionError",
    "FileTooLargeError",
    "InputFileReadError",
    "InputFileWriteError",
    "LaunchSpec",
    "Limits",
    "LocalConfig",
    "LocalEnvironmentSpec",
    "LocalExecRuntime",
    "LocalRuntime",
    "LocalStreamingRuntime",
    "Mount",
    "RunningCommand",
    "RuntimeEvent",
    "RuntimeResult",
    "RustRuntime",
    "SandboxConfig",
    "SeedDifferenceWarning",
    "SetupConfig",
    "SetupFailure",
    "SlurmConfig",
    "SlurmContainer",
    "SlurmEnvironmentSpec",
    "SlurmRuntime",
    "SnapshotConfig",
    "SolutionRuntimeError",
    "StreamingRuntime",
    "SubmissionRuntime",
    "load_config",
    "network_mode_for_address",
    "register_exec_runtime",
    "register_runtime",
    "register_streaming_runtime",
    "registered_runtimes",
    "spawn_exec_runtime",
    "spawn_runtime",
    "spawn_streaming_runtime",
]
