"""subrt as an inspect_ai sandbox provider: ``sandbox="subrt"``.

Installed with ``pip install './python[inspect]'``; inspect finds it through
its ``inspect_ai`` entry point, so a task selects it by name::

    Task(..., sandbox="subrt")                          # the built-in local environment
    Task(..., sandbox=("subrt", "config.toml"))         # the config's default_environment
    Task(..., sandbox=("subrt", "config.toml#sandbox")) # the environment named `sandbox`

Each sample gets a session of its own: a fresh working dir (a temporary
folder; for Docker, the container's ``workdir``), recorded in the store of
the config (or ``SUBRT_STORE``) with the labels ``inspect.task``,
``inspect.sample`` and ``inspect.epoch``: ``subrt ls --label
inspect.task=NAME`` lists an evaluation's sandboxes, and the dashboard
open on the store shows their commands live, where ``k`` kills a hung one
(the sample sees the command fail with exit 137).

What inspect's calls mean here:

- ``exec`` runs the argv without a shell (``cwd``, ``env``, ``user`` per
  command; commands of a sample run side by side). A timeout raises
  ``TimeoutError`` and kills that command's processes; it is not retried
  (``timeout_retry`` is accepted and ignored: a command that timed out once
  is not run again behind the caller's back). Output past inspect's
  ``MAX_EXEC_OUTPUT_SIZE`` raises ``OutputLimitExceededError`` with the
  beginning kept. A program that cannot be run as not executable raises
  ``PermissionError``; a ``user`` that does not exist gives a failed result
  whose stderr says so (as ``docker exec`` does).
- ``read_file``/``write_file`` go through the runtime's own file access
  (the filesystem for local sessions, through a sandbox's root as its user;
  Docker's archive API), never through ``cat``.
- ``exec_remote`` streams through the same command machinery: no helper is
  injected into the sandbox, and ``kill()`` ends the command.
- ``sample_cleanup`` ends the session and removes its working dir;
  ``task_cleanup`` ends any session of the task still open; ``inspect
  sandbox cleanup subrt`` removes containers whose subrt process is gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, List, Literal, Optional, Union, overload

import anyio
from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentLimits,
    sandboxenv,
)
from inspect_ai.util._sandbox.exec_remote import (
    ExecCompleted,
    ExecRemoteAwaitableOptions,
    ExecRemoteStreamingOptions,
    ExecStderr,
    ExecStdout,
)
from pydantic import BaseModel

from ._native import FileTooLargeError, SolutionRuntimeError
from .runtime import RunningCommand, RustRuntime, registered_runtimes, spawn_runtime
from .specs import EnvironmentSpec, LocalEnvironmentSpec, load_config

__all__ = ["SubrtSandboxConfig", "SubrtSandboxEnvironment"]


class SubrtSandboxConfig(BaseModel, frozen=True):
    """``sandbox=("subrt", SubrtSandboxConfig(...))``: which config file and
    which of its environments (``None``: its ``default_environment``)."""

    config: Optional[str] = None
    environment: Optional[str] = None


def _config(config: SandboxEnvironmentConfigType | None) -> SubrtSandboxConfig:
    if config is None:
        return SubrtSandboxConfig()
    if isinstance(config, SubrtSandboxConfig):
        return config
    if isinstance(config, str):
        path, _, name = config.partition("#")
        return SubrtSandboxConfig(config=path, environment=name or None)
    if isinstance(config, BaseModel):
        return SubrtSandboxConfig(**config.model_dump())
    raise ValueError(f"sandbox subrt: a config is a path (`config.toml#env`), not {config!r}")


def _spec(config: SandboxEnvironmentConfigType | None) -> EnvironmentSpec:
    """The environment the config names, checked."""
    chosen = _config(config)
    if chosen.config is None:
        return LocalEnvironmentSpec(name="inspect")
    from . import _native

    environments = load_config(chosen.config)
    name = chosen.environment or _native.load_config(chosen.config)[0]
    if name not in environments:
        known = ", ".join(environments) or "none"
        raise ValueError(
            f"sandbox subrt: {chosen.config} has no environment `{name}` (it has: {known})"
        )
    return environments[name]


def _sample_labels(task_name: str) -> Dict[str, str]:
    labels = {"inspect.task": task_name}
    try:
        from inspect_ai.log._samples import sample_active

        active = sample_active()
    except ImportError:  # an inspect without it: the task is still named
        active = None
    if active is not None:
        labels["inspect.sample"] = str(active.sample.id)
        labels["inspect.epoch"] = str(active.epoch)
        # What `subrt ls` and the dashboard name the run by.
        epoch = f"#{active.epoch}" if active.epoch > 1 else ""
        labels["name"] = f"{task_name}/{active.sample.id}{epoch}"
    return labels


@sandboxenv(name="subrt")
class SubrtSandboxEnvironment(SandboxEnvironment):
    """A sample's session on a subrt runtime (see the module's doc)."""

    #: Sessions not yet cleaned up, by task: what ``task_cleanup`` ends.
    _open: Dict[str, List["SubrtSandboxEnvironment"]] = {}

    def __init__(self, runtime: RustRuntime, working_dir: str, task_name: str) -> None:
        super().__init__()
        self.runtime = runtime
        self._working_dir = working_dir
        self._task_name = task_name

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def config_deserialize(cls, config: Dict[str, Any]) -> BaseModel:
        return SubrtSandboxConfig(**config)

    @classmethod
    async def task_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None) -> None:
        # A config that does not load is said before any sample starts.
        _spec(config)

    @classmethod
    async def sample_init(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        metadata: Dict[str, str],
    ) -> Dict[str, SandboxEnvironment]:
        spec = _spec(config)
        working_dir = tempfile.mkdtemp(prefix="subrt-inspect-")
        if spec.type == "docker":
            # Mounted as the container's workdir: its user (often not root)
            # writes there.
            os.chmod(working_dir, 0o777)
        labels = _sample_labels(task_name)
        try:
            # Spawning waits for the runtime (a container to start): the
            # built-in runtimes start on the package's own runtime, without
            # a thread; a Python-registered one on a worker thread. Other
            # samples go on meanwhile.
            cls_of_type = registered_runtimes().get(spec.type)
            if cls_of_type is not None and issubclass(cls_of_type, RustRuntime):
                runtime = await cls_of_type.aspawn(spec, working_dir, labels=labels)
            else:
                runtime = await anyio.to_thread.run_sync(
                    lambda: spawn_runtime(spec, working_dir, labels=labels)
                )
        except BaseException:
            shutil.rmtree(working_dir, ignore_errors=True)
            raise
        environment = cls(runtime, working_dir, task_name)
        cls._open.setdefault(task_name, []).append(environment)
        return {"default": environment}

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: Dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for environment in environments.values():
            await environment.as_type(SubrtSandboxEnvironment)._close()

    @classmethod
    async def task_cleanup(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, cleanup: bool
    ) -> None:
        for environment in list(cls._open.get(task_name, [])):
            await environment._close()
        cls._open.pop(task_name, None)

    @classmethod
    async def cli_cleanup(cls, id: Optional[str]) -> None:
        # Local sessions die with their process (their namespace, sandbox or
        # group); what can outlive it is a container.
        from . import _native

        for line in await anyio.to_thread.run_sync(_native.remove_leftovers):
            print(f"removed {line}")

    async def _close(self) -> None:
        try:
            if isinstance(self.runtime, RustRuntime):
                await self.runtime.acleanup()
            else:
                await anyio.to_thread.run_sync(self.runtime.cleanup)
        finally:
            shutil.rmtree(self._working_dir, ignore_errors=True)
            opened = type(self)._open.get(self._task_name, [])
            if self in opened:
                opened.remove(self)

    # -- commands ----------------------------------------------------------

    async def exec(
        self,
        cmd: List[str],
        input: Union[str, bytes, None] = None,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        user: Optional[str] = None,
        timeout: Optional[int] = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        limit = SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE
        try:
            result = await self.runtime.aexecute(
                list(cmd),
                env=env,
                stdin=input,
                timeout=timeout,
                cwd=cwd,
                user=user,
                capture_limit=limit,
            )
        except SolutionRuntimeError as e:
            if str(e).startswith("user `"):
                return ExecResult(success=False, returncode=126, stdout="", stderr=str(e))
            raise
        if result.timed_out:
            raise TimeoutError(f"command timed out after {timeout} seconds: {cmd!r}")
        stdout, stderr = result.stdout, result.stderr
        if result.exit_code == 126 and "permission denied" in stderr.lower():
            raise PermissionError(f"{cmd[0] if cmd else ''}: {stderr.strip()}")
        for total in (result.stdout_total_bytes, result.stderr_total_bytes):
            if total > limit:
                raise OutputLimitExceededError(
                    limit_str=SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE_STR,
                    truncated_output=stdout,
                )
        return ExecResult(
            success=result.exit_code == 0,
            returncode=result.exit_code,
            stdout=stdout,
            stderr=stderr,
        )

    async def exec_remote(  # type: ignore[override]
        self,
        cmd: List[str],
        options: Union[ExecRemoteStreamingOptions, ExecRemoteAwaitableOptions, None] = None,
        *,
        stream: bool = True,
    ) -> Any:
        if not stream:
            opts = options or ExecRemoteAwaitableOptions()
            return await self.exec(
                cmd,
                input=opts.input,
                cwd=opts.cwd,
                env=opts.env,
                user=opts.user,
                timeout=getattr(opts, "timeout", None),
            )
        opts = options or ExecRemoteStreamingOptions()
        if getattr(opts, "stdin_open", False):
            raise NotImplementedError("sandbox subrt: stdin_open is not supported yet")
        # Returns once the command runs, as inspect asks.
        running = await self.runtime.astart(
            list(cmd), env=opts.env, stdin=opts.input, cwd=opts.cwd, user=opts.user, capture_limit=0
        )
        return _RemoteProcess(running)

    # -- files -------------------------------------------------------------

    async def write_file(self, file: str, contents: Union[str, bytes]) -> None:
        await self.runtime.awrite_file(file, contents)

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> Union[str, bytes]:
        try:
            data = await self.runtime.aread_file(
                file, limit=SandboxEnvironmentLimits.MAX_READ_FILE_SIZE
            )
        except FileTooLargeError:
            raise OutputLimitExceededError(
                limit_str=SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR,
                truncated_output=None,
            ) from None
        # newline="" semantics: bytes decoded as they are, \r\n kept.
        return data.decode("utf-8") if text else data

    def default_polling_interval(self) -> float:
        return 0.05


class _RemoteProcess:
    """What ``exec_remote(stream=True)`` returns: an async iterator of
    ``ExecStdout``/``ExecStderr``/``ExecCompleted``, and ``kill()``."""

    def __init__(self, running: RunningCommand) -> None:
        self._running = running
        self._events = running.__aiter__()

    @property
    def pid(self) -> int:
        return 0

    def __aiter__(self) -> "_RemoteProcess":
        return self

    async def __anext__(self) -> Any:
        async for event in self._events:
            if event.kind == "stdout":
                return ExecStdout(data=event.text)
            if event.kind == "stderr":
                return ExecStderr(data=event.text)
            if event.kind == "finished" and event.result is not None:
                return ExecCompleted(exit_code=event.result.exit_code)
        raise StopAsyncIteration

    async def kill(self) -> None:
        """Ends the command: its processes are killed, its end recorded."""
        self._running.kill()
