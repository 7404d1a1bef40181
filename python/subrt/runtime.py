"""The runtime protocol, its registry, and the runtimes of the Rust library.

:func:`spawn_runtime` looks up the spec's ``type`` in the registry and starts
a runtime. ``local`` and ``docker`` (and every other type the Rust library
has) run on subrt's core: timeouts that kill the whole tree, exact bytes,
nothing left behind, every session recorded in the store where ``subrt ls``
and the dashboard see it. A Python class registered with
:func:`register_runtime` serves a type of its own.
"""

from __future__ import annotations

import abc
import atexit
import logging
import os
import warnings
import weakref
from pathlib import Path
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _aio, _native
from ._native import FileTooLargeError, SolutionRuntimeError
from .models import RuntimeEvent, RuntimeResult, _Decoders
from .specs import EnvironmentSpec

__all__ = [
    "EXEC_RUNTIME_REGISTRY",
    "RUNTIME_REGISTRY",
    "STREAMING_RUNTIME_REGISTRY",
    "BoundExecRuntime",
    "Container",
    "DockerExecRuntime",
    "DockerRuntime",
    "DockerStreamingRuntime",
    "ExecRuntime",
    "LocalExecRuntime",
    "LocalRuntime",
    "LocalStreamingRuntime",
    "RunningCommand",
    "SlurmRuntime",
    "StreamingRuntime",
    "SubmissionRuntime",
    "register_exec_runtime",
    "register_runtime",
    "register_streaming_runtime",
    "registered_runtimes",
    "spawn_exec_runtime",
    "spawn_runtime",
    "spawn_streaming_runtime",
]

_log = logging.getLogger("subrt")

#: What ``stdin`` accepts: text (sent as UTF-8), bytes, or lines (each sent
#: with a trailing newline).
Stdin = Union[str, bytes, bytearray, memoryview, Iterable[str], None]
#: A command: a shell line, or a program and its arguments (no shell parsing).
Command = Union[str, Sequence[str]]
#: Bytes :meth:`RustRuntime.read_file` returns at most unless told.
DEFAULT_READ_LIMIT = 100 * 1024 * 1024

#: Where ``store`` records: a folder, ``None`` for the default store
#: (``SUBRT_STORE``, else the user's), or ``False`` for no record.
Store = Union[str, "os.PathLike[str]", None, bool]


class _Lifecycle(abc.ABC):
    """What every runtime offers once spawned, streaming or exec: ``poll``,
    ``kill``, ``cleanup``, and a context manager that cleans up."""

    @abc.abstractmethod
    def poll(self) -> Optional[int]:
        """The exit code of the last command, or ``None`` while one runs."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kills the running command and everything it started."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Kills what runs and releases the runtime; idempotent."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()


class SubmissionRuntime(_Lifecycle):
    """Runs a submission's commands, one at a time, in one environment.

    Subclasses implement :meth:`stream`, :meth:`poll`, :meth:`kill`,
    :meth:`cleanup` and the :meth:`spawn` classmethod; :meth:`execute` has
    a default over :meth:`stream`. A runtime is a context manager that
    cleans up on exit.
    """

    @classmethod
    @abc.abstractmethod
    def spawn(
        cls,
        environment: EnvironmentSpec,
        working_dir: "os.PathLike[str] | str",
        static_assets: Optional[Mapping[str, Any]] = None,
        ports: Optional[Mapping[int, int]] = None,
        mounts: Optional[Any] = None,
        env_vars: Optional[Mapping[str, str]] = None,
        *,
        setup_command: Optional[str] = None,
        is_evaluation: bool = False,
        disable_setup: bool = False,
        **kwargs: Any,
    ) -> "SubmissionRuntime":
        """Starts a runtime for ``environment`` in ``working_dir``."""

    @abc.abstractmethod
    def stream(
        self,
        command: str,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
    ) -> Iterator[RuntimeEvent]:
        """Runs ``command`` and yields its output as it is written, then one
        ``finished`` event with the result."""

    def execute(
        self,
        command: str,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
    ) -> RuntimeResult:
        """Runs ``command`` and returns its result."""
        for event in self.stream(command, env=env, stdin=stdin, timeout=timeout):
            if event.kind == "finished" and event.result is not None:
                return event.result
        raise SolutionRuntimeError(f"the stream of {command!r} ended without a result")


#: The seed's newer name for the protocol: a runtime that streams commands.
StreamingRuntime = SubmissionRuntime

_R = TypeVar("_R", bound=Type[SubmissionRuntime])
#: Runtime type to the class that serves it (the seed's ``RUNTIME_REGISTRY``;
#: ``STREAMING_RUNTIME_REGISTRY`` is the same dict).
RUNTIME_REGISTRY: Dict[str, Type[SubmissionRuntime]] = {}
STREAMING_RUNTIME_REGISTRY = RUNTIME_REGISTRY
_REGISTRY = RUNTIME_REGISTRY


def register_runtime(name: str) -> Callable[[_R], _R]:
    """A class decorator that makes ``cls`` the runtime of specs whose
    ``type`` is ``name`` (a later registration of the same name wins)."""

    def register(cls: _R) -> _R:
        if not (isinstance(cls, type) and issubclass(cls, SubmissionRuntime)):
            raise TypeError(f"register_runtime({name!r}): {cls!r} is not a SubmissionRuntime subclass")
        RUNTIME_REGISTRY[name] = cls
        return cls

    return register


#: The seed's name for :func:`register_runtime`.
register_streaming_runtime = register_runtime


def registered_runtimes() -> Dict[str, Type[SubmissionRuntime]]:
    """The registry: runtime type to class."""
    return dict(RUNTIME_REGISTRY)


def _command(command: Command) -> Union[str, List[str]]:
    """A shell line as it is, an argv as a list of ``str``."""
    if isinstance(command, str):
        return command
    if isinstance(command, (bytes, bytearray)):
        raise TypeError("command: give a str (a shell line) or a list of str (an argv)")
    argv = list(command)
    for word in argv:
        if not isinstance(word, str):
            raise TypeError(f"command: argv items must be str, not {type(word).__name__}")
    return argv


def _data(data: Union[str, bytes, bytearray, memoryview]) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


def _stdin_and_timeout(stdin: Any, timeout: Optional[float]) -> Tuple[Any, Optional[float]]:
    """The seed's newer ``stream(command, env, timeout)`` has no ``stdin``:
    a number in third place is its timeout."""
    if timeout is None and isinstance(stdin, (int, float)) and not isinstance(stdin, bool):
        return None, stdin
    return stdin, timeout


def _stdin_bytes(stdin: Stdin) -> Optional[bytes]:
    if stdin is None:
        return None
    if isinstance(stdin, str):
        return stdin.encode("utf-8")
    if isinstance(stdin, (bytes, bytearray, memoryview)):
        return bytes(stdin)
    lines: List[str] = []
    for line in stdin:
        if not isinstance(line, str):
            raise TypeError(f"stdin: a list of lines holds str, not {type(line).__name__}")
        lines.append(line if line.endswith("\n") else line + "\n")
    return "".join(lines).encode("utf-8")


def _env(name: str, env: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    if env is None:
        return {}
    out: Dict[str, str] = {}
    for key, value in env.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"{name}: {key!r}={value!r} is not a str=str variable")
        out[key] = value
    return out


def _assets(static_assets: Optional[Mapping[str, Any]]) -> List[Dict[str, str]]:
    """Accepts name -> path, name -> {"path" | "absolute_path", "save_path"},
    or name -> an object with ``absolute_path`` and ``save_path`` (the seed's
    resolved assets)."""
    out = []
    for name, asset in (static_assets or {}).items():
        if isinstance(asset, (str, os.PathLike)):
            path, save_path = asset, name
        elif isinstance(asset, Mapping):
            path = asset.get("absolute_path", asset.get("path"))
            save_path = asset.get("save_path", name)
        else:
            path = getattr(asset, "absolute_path", None)
            save_path = getattr(asset, "save_path", name)
        if path is None:
            raise ValueError(f"static_assets[{name!r}]: no path (give a path, or absolute_path and save_path)")
        out.append({"name": name, "path": os.fspath(path), "save_path": os.fspath(save_path)})
    return out


def _mounts(mounts: Any) -> List[Dict[str, Any]]:
    """Accepts {source: target} (read-only), {source: {"bind" | "target":
    ..., "mode": "ro" | "rw"}} (the Docker SDK's shape, which the seed
    passes on: read-write unless ``mode`` says), or a list of {"source",
    "target", "mode"} (read-only unless ``mode`` is ``"rw"``)."""
    if not mounts:
        return []
    if isinstance(mounts, Mapping):
        items = []
        for source, spec in mounts.items():
            if isinstance(spec, (str, os.PathLike)):
                items.append({"source": source, "target": spec})
            elif isinstance(spec, Mapping):
                items.append({"source": source, "mode": "rw", **spec})
            else:
                raise ValueError(f"mounts[{source!r}]: a target path or a dict, not {spec!r}")
    else:
        items = list(mounts)
    out = []
    for item in items:
        target = item.get("target", item.get("bind"))
        mode = item.get("mode", "ro")
        if target is None or "source" not in item:
            raise ValueError(f"mounts: {item!r} needs a source and a target")
        if mode not in ("ro", "rw"):
            raise ValueError(f"mounts: mode of {item['source']!r} is {mode!r}, not \"ro\" or \"rw\"")
        out.append(
            {"source": os.fspath(item["source"]), "target": os.fspath(target), "read_only": mode == "ro"}
        )
    return out


def _ports(ports: Optional[Mapping[Any, Any]]) -> Dict[int, int]:
    """Container port to host port; ``"8080/tcp"`` keys are accepted."""
    out = {}
    for container, host in (ports or {}).items():
        try:
            out[int(str(container).split("/")[0])] = int(host)
        except (TypeError, ValueError):
            raise ValueError(f"ports: {container!r}: {host!r} is not container port: host port") from None
    return out


def _store(store: Store) -> Optional[str]:
    if store is False:
        return None
    if store is None or store is True:
        return os.fspath(_native.default_store())
    return os.fspath(store)


#: Runtimes of the Rust library not yet cleaned up, for the exit hook.
_LIVE: "weakref.WeakSet[RustRuntime]" = weakref.WeakSet()


@atexit.register
def _cleanup_at_exit() -> None:
    for runtime in list(_LIVE):
        try:
            runtime.cleanup()
        except Exception as e:  # exit goes on; the error is worth a line
            _log.warning("subrt: cleanup of run %s at exit: %s", runtime.run_id, e)


class RustRuntime(SubmissionRuntime):
    """A runtime of subrt's Rust library (``local``, ``docker``, ...).

    Every session is recorded in the store (see ``store`` of
    :func:`spawn_runtime`). Waiting releases the GIL; :meth:`kill` may be
    called from any thread while :meth:`execute` or :meth:`stream` runs;
    Ctrl-C while they wait kills the command and raises
    ``KeyboardInterrupt``. A runtime dropped, or alive at interpreter exit,
    is cleaned up; if the process dies first, the kernel (local) or the
    Docker daemon (docker) still ends every process of the session.
    """

    #: The spec type this class serves (``None``: any the Rust library has).
    runtime_type: Optional[str] = None

    def __init__(self, *args: Any, spec: Optional[EnvironmentSpec] = None, **kwargs: Any) -> None:
        """Starts a session; the arguments are :func:`spawn_runtime`'s
        (see :meth:`_spawning`). A runtime is made by :meth:`spawn`, or
        directly, as the seed's tests make theirs
        (``LocalStreamingRuntime(environment=spec, working_dir=path)``;
        ``spec=`` is taken for ``environment=``, as the seed's Docker runtime
        names it).

        :raises ValueError: ``environment`` is a spec of another runtime
            type (the seed's ``Invalid environment spec for local runtime``).
        """
        if spec is not None and not args:
            kwargs.setdefault("environment", spec)
        spec, spawning, working_dir = type(self)._spawning(*args, **kwargs)
        self._adopt(_native.Session.spawn(spawning), spec, working_dir)

    @classmethod
    def _spawning(
        cls,
        environment: Optional[EnvironmentSpec] = None,
        working_dir: "os.PathLike[str] | str | None" = None,
        static_assets: Optional[Mapping[str, Any]] = None,
        ports: Optional[Mapping[int, int]] = None,
        mounts: Optional[Any] = None,
        env_vars: Optional[Mapping[str, str]] = None,
        setup_command: Optional[str] = None,
        image: Optional[str] = None,
        user: Optional[str] = None,
        *,
        is_evaluation: bool = False,
        disable_setup: bool = False,
        resume: bool = False,
        store: Store = None,
        labels: Optional[Mapping[str, str]] = None,
        max_run_bytes: Optional[int] = None,
        max_store_bytes: Optional[int] = None,
        **kwargs: Any,
    ) -> Tuple[EnvironmentSpec, "_native.Spawning", "os.PathLike[str] | str"]:
        """The spec a session of ``cls`` runs, the launch the native
        ``Session.spawn`` (or ``spawn_async``) starts, and the working dir."""
        if environment is None or working_dir is None:
            raise TypeError(f"{cls.__name__}: `environment` and `working_dir` are required")
        spec = _spec(environment)
        if cls.runtime_type is not None and spec.type != cls.runtime_type:
            raise ValueError(
                f"Invalid environment spec for {cls.runtime_type} runtime "
                f"(environment {spec.name!r} is of type {spec.type!r})"
            )
        spec = _overridden(cls, spec, image=image, user=user)
        for name in sorted(kwargs):
            _ignored(cls, name)
        # A spec loaded from a config brings its `[store]`: where runs go
        # and how much they keep, as the CLI on the same config does.
        settings = spec._store_settings
        if settings is not None:
            if store is None and not os.environ.get("SUBRT_STORE"):
                store = settings.dir
            if max_run_bytes is None:
                max_run_bytes = settings.max_run_bytes
            if max_store_bytes is None:
                max_store_bytes = settings.max_bytes
        spawning = _native.Spawning(
            spec._core_json(),
            os.fspath(working_dir),
            _assets(static_assets),
            _ports(ports),
            _mounts(mounts),
            _env("env_vars", env_vars),
            setup_command,
            bool(is_evaluation),
            bool(disable_setup),
            _store(store),
            _env("labels", labels),
            max_run_bytes,
            max_store_bytes,
            bool(resume),
        )
        return spec, spawning, working_dir

    def _adopt(
        self, session: "_native.Session", spec: EnvironmentSpec, working_dir: "os.PathLike[str] | str"
    ) -> None:
        self._session = session
        #: The spec the runtime runs, with ``image=``/``user=`` applied.
        self.spec = spec
        #: The submission's working dir on this host.
        self.cwd = Path(working_dir)
        _LIVE.add(self)

    @classmethod
    async def aspawn(
        cls,
        environment: Optional[EnvironmentSpec] = None,
        working_dir: "os.PathLike[str] | str | None" = None,
        *args: Any,
        **kwargs: Any,
    ) -> "RustRuntime":
        """:meth:`spawn` without blocking the event loop, and no thread for
        it: the session starts on the package's runtime (a container too)
        while other tasks go on. Cancelling the awaiting task cleans up a
        session that was still on its way."""
        spec, spawning, working_dir = cls._spawning(environment, working_dir, *args, **kwargs)
        session = await _aio.call(_native.Session.spawn_async, spawning)
        runtime = cls.__new__(cls)
        runtime._adopt(session, spec, working_dir)
        return runtime

    @property
    def environment(self) -> EnvironmentSpec:
        """The spec (``spec``, by its earlier name)."""
        return self.spec

    @classmethod
    def spawn(
        cls,
        environment: Optional[EnvironmentSpec] = None,
        working_dir: "os.PathLike[str] | str | None" = None,
        *args: Any,
        **kwargs: Any,
    ) -> "RustRuntime":
        """Starts a session: ``cls(environment, working_dir, ...)``, whose
        arguments are :func:`spawn_runtime`'s."""
        return cls(environment, working_dir, *args, **kwargs)

    @property
    def run_id(self) -> str:
        """The run's id in the store (``subrt ls``, ``subrt export RUN``)."""
        return self._session.run_id

    @property
    def log_dir(self) -> Optional[Path]:
        """The run's folder in the store; ``None`` with ``store=False``."""
        return self._session.log_dir

    def info(self) -> Dict[str, Any]:
        """Type, state, containment, and pid or container of the runtime."""
        return self._session.info()

    def execute(
        self,
        command: Command,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
    ) -> RuntimeResult:
        stdin, timeout = _stdin_and_timeout(stdin, timeout)
        result = self._session.execute(
            _command(command), _env("env", env), _stdin_bytes(stdin), timeout
        )
        return RuntimeResult._from_native(result)

    def stream(
        self,
        command: Command,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
    ) -> Iterator[RuntimeEvent]:
        # Started now, not at the first next(): the command runs (and the
        # runtime is busy) from this call on, as in the seed.
        stdin, timeout = _stdin_and_timeout(stdin, timeout)
        events = self._session.stream(
            _command(command), _env("env", env), _stdin_bytes(stdin), timeout
        )
        return self._events(events)

    # -- asyncio: commands side by side, files ------------------------------

    async def astart(
        self,
        command: Command,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
        *,
        cwd: Optional[str] = None,
        user: Optional[str] = None,
        capture_limit: Optional[int] = None,
    ) -> "RunningCommand":
        """Starts ``command`` beside the session's other commands and
        returns once it runs (see :class:`RunningCommand`).

        ``command`` is a shell line or an argv list; ``cwd`` is relative to
        the session's working dir or absolute; ``user`` is a name or uid of
        the session's system (:class:`SolutionRuntimeError` if it does not
        exist or cannot be switched to). A timeout kills this command's
        processes only; ``capture_limit`` bounds the bytes the result keeps
        per stream (the rest is counted).
        """
        kwargs: Dict[str, Any] = {"cwd": cwd, "user": user}
        if capture_limit is not None:
            kwargs["capture_limit"] = capture_limit
        handle = await _aio.call(
            self._session.start_async,
            _command(command),
            _env("env", env),
            _stdin_bytes(stdin),
            timeout,
            **kwargs,
        )
        return RunningCommand(handle, self.run_id)

    async def aexecute(
        self,
        command: Command,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
        *,
        cwd: Optional[str] = None,
        user: Optional[str] = None,
        capture_limit: Optional[int] = None,
    ) -> RuntimeResult:
        """Runs ``command`` (see :meth:`astart`) and returns its result,
        without blocking the event loop. Cancelling the awaiting task kills
        the command."""
        running = await self.astart(
            command, env, stdin, timeout, cwd=cwd, user=user, capture_limit=capture_limit
        )
        return await running.wait()

    async def astream(
        self,
        command: Command,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
        *,
        cwd: Optional[str] = None,
        user: Optional[str] = None,
    ) -> AsyncIterator[RuntimeEvent]:
        """Runs ``command`` (see :meth:`astart`), yielding its output as it
        is written, then one ``finished`` event. Leaving the loop early
        (``break``, an exception, ``aclose()``) kills the command."""
        running = await self.astart(command, env, stdin, timeout, cwd=cwd, user=user, capture_limit=0)
        async for event in running:
            yield event

    def read_file(self, path: str, *, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        """The bytes of the file at ``path`` in the session's view (relative
        to its working dir, or absolute), read as the session's user.

        Raises ``FileNotFoundError``, ``IsADirectoryError``,
        ``PermissionError`` (each naming the path) or
        :class:`FileTooLargeError` (``size``, ``limit`` in its args).
        """
        return self._session.read_file(os.fspath(path), limit)

    def write_file(self, path: str, data: Union[str, bytes]) -> None:
        """Replaces the contents of the file at ``path`` (text as UTF-8),
        making missing folders, as the session's user."""
        self._session.write_file(os.fspath(path), _data(data))

    async def aread_file(self, path: str, *, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        """:meth:`read_file` without blocking the event loop."""
        return await _aio.call(self._session.read_file_async, os.fspath(path), limit)

    async def awrite_file(self, path: str, data: Union[str, bytes]) -> None:
        """:meth:`write_file` without blocking the event loop."""
        await _aio.call(self._session.write_file_async, os.fspath(path), _data(data))

    def _events(self, events: "_native.Events") -> Iterator[RuntimeEvent]:
        decoders = _Decoders()
        try:
            for kind, phase, payload in events:
                if kind == "finished":
                    for k, p, rest in decoders.flush():
                        yield RuntimeEvent(kind=k, text=rest, data=b"", phase=p)
                    yield RuntimeEvent(kind="finished", result=RuntimeResult._from_native(payload))
                elif kind == "note":
                    _log.warning("subrt: run %s: %s", self.run_id, payload)
                else:
                    text = decoders.decode(kind, phase, payload)
                    yield RuntimeEvent._output(kind, phase, payload, text)
        finally:
            # A stream left before `finished` (break, an exception, garbage
            # collection) kills its command.
            events.close()

    def poll(self) -> Optional[int]:
        return self._session.poll()

    def kill(self) -> None:
        self._session.kill()

    def cleanup(self) -> None:
        self._session.cleanup()
        _LIVE.discard(self)

    async def acleanup(self) -> None:
        """:meth:`cleanup` without blocking the event loop, and no thread
        for it."""
        await _aio.call(self._session.cleanup_async)
        _LIVE.discard(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} run {self.run_id} of {self.spec!r}>"


class RunningCommand:
    """A command started by :meth:`RustRuntime.astart`, running beside the
    session's others.

    Iterate it (``async for event in command``) for its output as it is
    written and one ``finished`` event, or ``await command.wait()`` for its
    result; :meth:`kill` ends it. A command whose iteration is left early,
    whose ``wait`` is cancelled, or that no one holds any more is killed.
    """

    def __init__(self, handle: "_native.Command", run_id: str) -> None:
        self._handle = handle
        self._run_id = run_id
        self._finished = False

    @property
    def number(self) -> int:
        """The command's number in the session's run log."""
        return self._handle.number

    def kill(self) -> None:
        """Kills the command's processes; its ``finished`` event (or
        result) still comes, saying ``killed``."""
        self._handle.kill()

    async def wait(self) -> RuntimeResult:
        """The command's result, once it has ended."""
        try:
            result = await _aio.call(self._handle.wait_async)
        except BaseException:
            self.kill()
            raise
        self._finished = True
        return RuntimeResult._from_native(result)

    async def __aiter__(self) -> AsyncIterator[RuntimeEvent]:
        decoders = _Decoders()
        try:
            while True:
                item = await _aio.call(self._handle.next_async)
                if item is None:
                    return
                kind, phase, payload = item
                if kind == "finished":
                    self._finished = True
                    for k, p, rest in decoders.flush():
                        yield RuntimeEvent(kind=k, text=rest, data=b"", phase=p)
                    yield RuntimeEvent(kind="finished", result=RuntimeResult._from_native(payload))
                    return
                if kind == "note":
                    _log.warning("subrt: run %s: %s", self._run_id, payload)
                    continue
                text = decoders.decode(kind, phase, payload)
                yield RuntimeEvent._output(kind, phase, payload, text)
        finally:
            if not self._finished:
                self.kill()


class LocalRuntime(RustRuntime):
    """The ``local`` runtime: commands on this machine, each session in its
    own PID namespace (process groups where namespaces are refused)."""

    runtime_type = "local"


class DockerRuntime(RustRuntime):
    """The ``docker`` runtime: one container per session, removed at
    cleanup, and by the daemon if this process dies."""

    runtime_type = "docker"

    @property
    def container(self) -> "Container":
        """The session's running container (a new one after a kill)."""
        container_id = self.info().get("container_id")
        if not container_id:
            raise SolutionRuntimeError("Container not created")
        return Container(container_id)


class SlurmRuntime(RustRuntime):
    """The ``slurm`` runtime: one allocation per session on a Slurm cluster,
    each command a step in it."""

    runtime_type = "slurm"


class Container:
    """A Docker session's container, as far as the seed's callers read it:
    ``id`` and ``short_id``."""

    def __init__(self, container_id: str) -> None:
        self.id = container_id

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def __repr__(self) -> str:
        return f"<Container: {self.short_id}>"


#: The seed's names of the streaming runtimes.
LocalStreamingRuntime = LocalRuntime
DockerStreamingRuntime = DockerRuntime

#: Spawn arguments each built-in runtime was told of already.
_WARNED: set = set()


def _ignored(cls: type, name: str) -> None:
    """Says once per runtime class and argument that ``name=`` means nothing
    to it (the seed's runtimes swallow what they do not know)."""
    if (cls, name) in _WARNED:
        return
    _WARNED.add((cls, name))
    warnings.warn(
        f"{cls.__name__}.spawn: `{name}=` is not an argument of subrt's "
        f"{cls.runtime_type or 'built-in'} runtime; ignored",
        RuntimeWarning,
        stacklevel=4,
    )


def _overridden(
    cls: type, spec: EnvironmentSpec, *, image: Optional[str], user: Optional[str]
) -> EnvironmentSpec:
    """``spec`` with the seed's ``image=`` and ``user=`` spawn arguments
    applied: the Docker image and user, or a sandboxed local session's."""
    if image is None and user is None:
        return spec
    if spec.docker is not None and spec.type == "docker":
        changes = {k: v for k, v in (("image", image), ("user", user)) if v is not None}
        return spec.model_copy(update={"docker": spec.docker.model_copy(update=changes)})
    if spec.type == "local" and spec.local.isolation == "sandbox":
        changes = {k: v for k, v in (("image", image), ("user", user)) if v is not None}
        sandbox = spec.local.sandbox.model_copy(update=changes)
        return spec.model_copy(update={"local": spec.local.model_copy(update={"sandbox": sandbox})})
    for name, value in (("image", image), ("user", user)):
        if value is not None:
            _ignored(cls, name)
    return spec


for _kind in _native.runtime_types():
    _builtin = {"local": LocalRuntime, "docker": DockerRuntime, "slurm": SlurmRuntime}.get(_kind)
    if _builtin is None:  # a type the Rust library has and Python no class for
        _builtin = type(f"{_kind.capitalize()}Runtime", (RustRuntime,), {"runtime_type": _kind})
    register_runtime(_kind)(_builtin)


def _spec(environment: Union[EnvironmentSpec, Mapping[str, Any]]) -> EnvironmentSpec:
    if isinstance(environment, EnvironmentSpec):
        return environment
    if isinstance(environment, Mapping):
        return EnvironmentSpec.from_dict(environment)
    raise TypeError(f"environment: an EnvironmentSpec or a dict, not {type(environment).__name__}")


def spawn_runtime(
    environment: Union[EnvironmentSpec, Mapping[str, Any]], *args: Any, **kwargs: Any
) -> SubmissionRuntime:
    """Starts the runtime registered for ``environment.type`` with
    ``cls.spawn(environment, *args, **kwargs)``: arguments go to it
    untouched, as in the seed. Those of the built-in runtimes
    (:meth:`RustRuntime.spawn`):

    :param working_dir: the submission's folder.
    :param static_assets: files the submission may read, by name
        (``{{static:NAME}}`` in commands): name -> path, or the seed's
        resolved assets (``absolute_path``, ``save_path``).
    :param ports: container port -> host port (Docker).
    :param mounts: extra bind mounts (Docker): ``{source: target}``
        (read-only) or ``{source: {"bind": target, "mode": "ro"}}`` (the
        Docker SDK's shape: read-write unless ``mode`` says).
    :param env_vars: variables of every command, over the spec's.
    :param setup_command: one more setup command, after the spec's.
    :param image: the image to run instead of ``docker.image`` (Docker; a
        sandboxed local session's ``local.sandbox.image``).
    :param user: who commands run as (Docker: instead of the seed's rules,
        which are ``docker.user``, else ``1000:1000`` for an evaluation,
        else ``$HUID:$HGID``, else the image's user; a sandboxed local
        session's ``local.sandbox.user``).
    :param is_evaluation: run the spec's ``eval_commands`` in setup too.
    :param disable_setup: run no setup command.
    :param resume: the session resumes from a snapshot of its workspace:
        ``setup.resume_commands`` run after the other setup commands.
    :param store: where the session is recorded: a folder, ``None`` for
        ``SUBRT_STORE`` (else the user's store), ``False`` for no record.
    :param labels: labels of the run, shown by ``subrt ls --label`` and the
        dashboard.
    :param max_run_bytes: bytes the log keeps per stream (its head and its
        tail beyond); a spec from :func:`load_config` brings its config's
        ``[store] max_run_bytes``, else 1 GiB.
    :param max_store_bytes: when the store grows past this, its oldest
        finished runs go (the config's ``[store] max_bytes``).

    Other keywords are the runtime's; the built-in ones warn once about
    those they do not know and go on.

    :raises SolutionRuntimeError: the type is not registered (the message
        lists the registered ones), or the runtime cannot start.
    """
    spec = _spec(environment)
    cls = RUNTIME_REGISTRY.get(spec.type)
    if cls is None:
        raise SolutionRuntimeError(
            f"unknown runtime type `{spec.type}` (registered types: {', '.join(sorted(RUNTIME_REGISTRY))})"
        )
    if args:
        return cls.spawn(spec, *args, **kwargs)
    return cls.spawn(environment=spec, **kwargs)


def spawn_streaming_runtime(
    environment: Union[EnvironmentSpec, Mapping[str, Any]], **kwargs: Any
) -> SubmissionRuntime:
    """The seed's newer name for :func:`spawn_runtime`: a runtime to
    :meth:`~SubmissionRuntime.stream` commands on."""
    return spawn_runtime(environment, **kwargs)


class ExecRuntime(_Lifecycle):
    """The seed's protocol of a runtime bound to one command at spawn:
    ``execute(env, stdin, timeout)`` runs it."""

    @abc.abstractmethod
    def execute(
        self,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
    ) -> RuntimeResult:
        """Runs the command and returns its result."""

    @classmethod
    @abc.abstractmethod
    def spawn(
        cls, environment: EnvironmentSpec, working_dir: Any, command: str, **kwargs: Any
    ) -> "ExecRuntime":
        """Starts a runtime for ``environment`` bound to ``command``."""


class BoundExecRuntime(ExecRuntime):
    """An :class:`ExecRuntime` over a streaming runtime: each ``execute``
    runs the command bound at spawn in that runtime's session."""

    #: The streaming runtime class :meth:`spawn` starts (``None``: the one
    #: registered for the spec's type).
    streaming: Optional[Type[SubmissionRuntime]] = None

    def __init__(
        self, runtime: Optional[SubmissionRuntime] = None, command: Command = "", **spawn_kwargs: Any
    ) -> None:
        """Binds ``command`` to ``runtime``; without one, starts it from
        ``spawn_kwargs`` (:func:`spawn_runtime`'s arguments), as the seed's
        tests make theirs: ``LocalExecRuntime(environment=spec,
        working_dir=path, command="cat")``."""
        if runtime is None:
            environment = spawn_kwargs.pop("environment", None) or spawn_kwargs.pop("spec", None)
            if environment is None:
                raise TypeError(f"{type(self).__name__}: `environment` is required")
            if type(self).streaming is not None:
                runtime = type(self).streaming(_spec(environment), **spawn_kwargs)
            else:
                runtime = spawn_runtime(environment, **spawn_kwargs)
        self.runtime = runtime
        self.command = command

    @classmethod
    def spawn(  # type: ignore[override]
        cls, environment: Any, working_dir: Any = None, command: Command = "", **kwargs: Any
    ) -> "BoundExecRuntime":
        """Starts the streaming runtime (:func:`spawn_runtime`'s arguments)
        and binds ``command`` to it."""
        return cls(None, command, environment=environment, working_dir=working_dir, **kwargs)

    def execute(
        self,
        env: Optional[Mapping[str, str]] = None,
        stdin: Stdin = None,
        timeout: Optional[float] = None,
    ) -> RuntimeResult:
        return self.runtime.execute(self.command, env=env, stdin=stdin, timeout=timeout)

    def poll(self) -> Optional[int]:
        return self.runtime.poll()

    def kill(self) -> None:
        self.runtime.kill()

    def cleanup(self) -> None:
        self.runtime.cleanup()

    @property
    def spec(self) -> Any:
        """The spec of the runtime underneath."""
        return getattr(self.runtime, "spec", None)

    @property
    def cwd(self) -> Any:
        """The working dir of the runtime underneath."""
        return getattr(self.runtime, "cwd", None)


class LocalExecRuntime(BoundExecRuntime):
    """The seed's exec runtime of the ``local`` type."""

    streaming = LocalRuntime


class DockerExecRuntime(BoundExecRuntime):
    """The seed's exec runtime of the ``docker`` type."""

    streaming = DockerRuntime

    @property
    def container(self) -> Container:
        """The session's running container."""
        return self.runtime.container  # type: ignore[attr-defined]


#: Runtime type to its exec runtime class (the seed's registry).
EXEC_RUNTIME_REGISTRY: Dict[str, Type[ExecRuntime]] = {
    "local": LocalExecRuntime,
    "docker": DockerExecRuntime,
}


def register_exec_runtime(name: str) -> Callable[[Any], Any]:
    """A class decorator that makes ``cls`` the exec runtime of specs whose
    ``type`` is ``name``."""

    def register(cls: Any) -> Any:
        EXEC_RUNTIME_REGISTRY[name] = cls
        return cls

    return register


def spawn_exec_runtime(
    environment: Union[EnvironmentSpec, Mapping[str, Any]], command: Command, **kwargs: Any
) -> ExecRuntime:
    """A runtime that runs ``command`` at each ``execute(env, stdin,
    timeout)``: the exec runtime registered for the spec's type, else the
    streaming one with the command bound to it; ``kwargs`` go to its spawn
    untouched (those of :func:`spawn_runtime`)."""
    spec = _spec(environment)
    cls = EXEC_RUNTIME_REGISTRY.get(spec.type, BoundExecRuntime)
    return cls.spawn(environment=spec, command=command, **kwargs)
