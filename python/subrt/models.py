"""What a command reports: :class:`RuntimeEvent` while it runs and
:class:`RuntimeResult` when it ends.

Output is kept twice: ``stdout`` is text (UTF-8, invalid bytes replaced with
U+FFFD) and ``stdout_bytes`` is exactly what the command wrote.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any, ClassVar, Dict, Literal, Mapping, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

__all__ = ["LaunchSpec", "RuntimeEvent", "RuntimeResult", "SetupFailure"]


def _text(data: bytes) -> Any:
    """A result's text of ``data``, for a ``_Text`` field: decoded when read."""
    return _Undecoded(b"", data, len(data))


class _Text:
    """A text field (``RuntimeEvent.text``, ``RuntimeResult.stdout``...): the
    text it was given, or, for one made from a runtime's bytes, those bytes
    decoded on first read. Most readers of a flood look only at ``data`` or
    ``kind``, and of a streamed result at its exit code; decoding every chunk
    up front was a third of ``stream()``'s cost."""

    def __set_name__(self, owner: Any, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        text = instance.__dict__[self.name]
        if isinstance(text, _Undecoded):
            text = instance.__dict__[self.name] = text.decode()
        return text

    def __set__(self, instance: Any, text: Any) -> None:
        instance.__dict__[self.name] = text


class _Undecoded:
    """The text of one chunk, not decoded yet: the bytes held back from the
    chunk before, then the chunk up to ``end``."""

    __slots__ = ("carry", "data", "end")

    def __init__(self, carry: bytes, data: bytes, end: int) -> None:
        self.carry, self.data, self.end = carry, data, end

    def decode(self) -> str:
        body = self.data if self.end == len(self.data) else memoryview(self.data)[: self.end]
        if self.carry:
            body = self.carry + body
        return str(body, "utf-8", "replace")


class _Model(BaseModel):
    """A model whose ``_Text`` fields are decoded before they are compared,
    hashed or pickled (they may hold bytes not decoded yet)."""

    model_config = ConfigDict(frozen=True)

    #: The names of this model's ``_Text`` fields.
    _text_fields: ClassVar[Tuple[str, ...]] = ()

    def _decode_all(self) -> None:
        for name in self._text_fields:
            getattr(self, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Model):
            self._decode_all()
            other._decode_all()
        return super().__eq__(other)

    def __hash__(self) -> int:
        self._decode_all()
        return hash((type(self), *self.__dict__.values()))

    def __getstate__(self) -> Dict[Any, Any]:
        self._decode_all()
        return super().__getstate__()


def _lazy_text(*names: str) -> Any:
    """A class decorator: makes the fields ``names`` of a model text that is
    decoded when first read (see :class:`_Text`; ``model_dump`` decodes them
    too)."""

    def decorate(model: Any) -> Any:
        for name in names:
            descriptor = _Text()
            descriptor.__set_name__(model, name)
            type.__setattr__(model, name, descriptor)
        type.__setattr__(model, "_text_fields", names)
        return model

    return decorate


def _dump_text(value: Any) -> Any:
    return value.decode() if isinstance(value, _Undecoded) else value


# Set directly, as pydantic's own ``model_construct`` does, for the objects
# made by the thousand (an event per chunk of output): a validated
# ``__init__`` would check what the runtime already guarantees.
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _made(cls: Any, fields: Dict[str, Any]) -> Any:
    """An instance of the pydantic model ``cls`` with ``fields`` as they are."""
    instance = object.__new__(cls)
    instance.__dict__.update(fields)
    _set_fields(instance, set(fields))
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


class SetupFailure(_Model):
    """A setup command that did not succeed; the command did not run."""

    #: The setup command line.
    command: str
    #: Its exit code (128+N when signal N ended it).
    exit_code: int


@_lazy_text("stdout", "stderr", "setup_stdout", "setup_stderr")
class RuntimeResult(_Model):
    """How a command ended and what it printed (a pydantic model, as the
    seed's: ``model_dump``, ``model_validate``, ``model_copy``).

    ``stdout``/``stderr`` are the command's output and ``setup_stdout``/
    ``setup_stderr`` the setup commands'; each is also kept as exact bytes
    (``stdout_bytes``...) up to the capture limit (64 MiB per stream), with
    the count of every byte written in ``stdout_total_bytes``...
    """

    #: Exit code, or 128+N when signal N ended the command.
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    setup_stdout: str = ""
    setup_stderr: str = ""
    #: Wall time of the call in seconds, setup included.
    elapsed: float = 0.0
    #: The timeout ended the command.
    timed_out: bool = False
    #: The signal that ended the command, if one did.
    signal: Optional[int] = None
    #: ``kill()`` (or a kill from another process, such as the dashboard)
    #: ended the command.
    killed: bool = False
    #: The setup command that failed, if one did.
    setup_failure: Optional[SetupFailure] = None
    #: Who or what ended it when it did not end by itself: ``"timeout"``,
    #: ``"kill"``, ``"outside"`` (a kill from outside subrt), or
    #: ``"out_of_memory"``.
    killed_by: Optional[str] = None
    #: The kernel's out-of-memory killer ended a process of it.
    oom_killed: bool = False
    #: Its exit status could not be read, and why (a node failed...).
    status_lost: Optional[str] = None
    #: Most memory its processes held at once, where measured.
    peak_memory_bytes: Optional[int] = None
    #: CPU time its processes spent in user mode and in the kernel.
    cpu_user_seconds: Optional[float] = None
    cpu_system_seconds: Optional[float] = None
    stdout_bytes: bytes = Field(default=b"", repr=False)
    stderr_bytes: bytes = Field(default=b"", repr=False)
    setup_stdout_bytes: bytes = Field(default=b"", repr=False)
    setup_stderr_bytes: bytes = Field(default=b"", repr=False)
    stdout_total_bytes: int = 0
    stderr_total_bytes: int = 0
    setup_stdout_total_bytes: int = 0
    setup_stderr_total_bytes: int = 0

    @field_serializer("stdout", "stderr", "setup_stdout", "setup_stderr")
    def _dump_text(self, value: Any) -> Any:
        return _dump_text(value)

    @property
    def truncated(self) -> bool:
        """Some output was written beyond what the result kept."""
        return any(
            total > len(kept)
            for total, kept in (
                (self.stdout_total_bytes, self.stdout_bytes),
                (self.stderr_total_bytes, self.stderr_bytes),
                (self.setup_stdout_total_bytes, self.setup_stdout_bytes),
                (self.setup_stderr_total_bytes, self.setup_stderr_bytes),
            )
        )

    @property
    def success(self) -> bool:
        """The command ran and its status, read, was 0."""
        return (
            self.exit_code == 0
            and self.signal is None
            and self.setup_failure is None
            and self.status_lost is None
        )

    @classmethod
    def _from_native(cls, d: Dict[str, Any]) -> "RuntimeResult":
        failure = d["setup_failure"]
        return _made(
            cls,
            {
                "exit_code": d["exit_code"],
                "stdout": _text(d["stdout_bytes"]),
                "stderr": _text(d["stderr_bytes"]),
                "setup_stdout": _text(d["setup_stdout_bytes"]),
                "setup_stderr": _text(d["setup_stderr_bytes"]),
                "elapsed": d["elapsed"],
                "timed_out": d["timed_out"],
                "signal": d["signal"],
                "killed": d["killed"],
                "setup_failure": (
                    SetupFailure(command=failure[0], exit_code=failure[1])
                    if failure is not None
                    else None
                ),
                "killed_by": d.get("killed_by"),
                "oom_killed": d.get("oom_killed", False),
                "status_lost": d.get("status_lost"),
                "peak_memory_bytes": d.get("peak_memory_bytes"),
                "cpu_user_seconds": d.get("cpu_user_seconds"),
                "cpu_system_seconds": d.get("cpu_system_seconds"),
                "stdout_bytes": d["stdout_bytes"],
                "stderr_bytes": d["stderr_bytes"],
                "setup_stdout_bytes": d["setup_stdout_bytes"],
                "setup_stderr_bytes": d["setup_stderr_bytes"],
                "stdout_total_bytes": d["stdout_total_bytes"],
                "stderr_total_bytes": d["stderr_total_bytes"],
                "setup_stdout_total_bytes": d["setup_stdout_total_bytes"],
                "setup_stderr_total_bytes": d["setup_stderr_total_bytes"],
            },
        )


@_lazy_text("text")
class RuntimeEvent(_Model):
    """One event of a streamed command (a pydantic model, as the seed's).

    ``kind`` is ``"stdout"`` or ``"stderr"`` for output (``data`` the exact
    bytes, ``text`` their decoding, ``phase`` ``"setup"`` or ``"command"``),
    and ``"finished"`` for the last event, which carries the ``result``.
    A character split across two chunks is in the ``text`` of the second,
    whole; ``text`` is decoded when first read.
    """

    kind: Literal["stdout", "stderr", "finished"]
    text: Optional[str] = None
    data: bytes = Field(default=b"", repr=False)
    phase: Optional[Literal["setup", "command"]] = None
    result: Optional[RuntimeResult] = None

    @field_serializer("text")
    def _dump_text(self, value: Any) -> Any:
        return _dump_text(value)

    @classmethod
    def _output(cls, kind: str, phase: str, data: bytes, text: Any) -> "RuntimeEvent":
        """An output event of the runtime's, made without validation: a
        flood makes tens of thousands a second."""
        return _made(cls, {"kind": kind, "text": text, "data": data, "phase": phase, "result": None})


class LaunchSpec(BaseModel):
    """What a runtime is spawned with (the seed's ``LaunchSpec``): the keyword
    arguments of :func:`~subrt.spawn_runtime`, as one model.
    ``spawn_runtime(**launch.spawn_kwargs())`` spawns it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    working_dir: Path
    environment: Any
    static_assets: Optional[Dict[str, Any]] = None
    is_evaluation: bool = False
    ports: Dict[int, int] = Field(default_factory=dict)
    mounts: Dict[str, Union[Dict[str, str], str]] = Field(default_factory=dict)
    env_vars: Dict[str, str] = Field(default_factory=dict)
    setup_command: Optional[str] = None

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        from .specs import EnvironmentSpec

        if isinstance(value, EnvironmentSpec):
            return value
        if isinstance(value, Mapping):
            return EnvironmentSpec.from_dict(value)
        raise ValueError(f"an EnvironmentSpec or a dict, not {type(value).__name__}")

    def spawn_kwargs(self) -> Dict[str, Any]:
        """The keyword arguments of ``spawn_runtime`` this launch stands for."""
        return {name: getattr(self, name) for name in type(self).model_fields}


# The most bytes at the end of a chunk that can be the start of a character
# still incomplete: three of a four-byte sequence.
_MOST_HELD = 3


def _held_back(data: bytes) -> int:
    """How many bytes at the end of ``data`` begin a character that the next
    chunk may complete: what an incremental UTF-8 decoder would keep."""
    for back in range(1, min(_MOST_HELD, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:
            # A lead byte starts a character whatever came before it.
            _, used = codecs.utf_8_decode(data[-back:], "replace", False)
            return back - used
    return 0


class _Decoders:
    """Decodes each stream of a command chunk by chunk, as an incremental
    decoder would (a character split across two chunks is decoded whole, not
    as two U+FFFD), but only when an event's ``text`` is read."""

    def __init__(self) -> None:
        self._held: Dict[Tuple[str, str], bytes] = {}

    def decode(self, kind: str, phase: str, data: bytes) -> Any:
        """The text of ``data``, the next chunk of ``kind`` in ``phase``, for
        ``RuntimeEvent(text=...)``."""
        key = (kind, phase)
        carry = self._held.get(key, b"")
        if not carry and data and data[-1] < 0x80:
            # Nothing held back, and nothing to hold back: the usual case.
            return _Undecoded(carry, data, len(data))
        if carry and len(data) < _MOST_HELD:
            # The character held back may still be incomplete after this.
            data, carry = carry + data, b""
        held = _held_back(data)
        end = len(data) - held
        self._held[key] = data[end:] if held else b""
        return _Undecoded(carry, data, end)

    def flush(self):
        """The text of bytes left incomplete at the end, per stream."""
        for (kind, phase), rest in self._held.items():
            if rest:
                yield kind, phase, rest.decode("utf-8", errors="replace")
