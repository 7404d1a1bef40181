"""What a command reports: :class:`RuntimeEvent` while it runs and
:class:`RuntimeResult` when it ends.

Output is kept twice: ``stdout`` is text (UTF-8, invalid bytes replaced with
U+FFFD) and ``stdout_bytes`` is exactly what the command wrote.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

__all__ = ["RuntimeEvent", "RuntimeResult", "SetupFailure"]


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class SetupFailure:
    """A setup command that did not succeed; the command did not run."""

    #: The setup command line.
    command: str
    #: Its exit code (128+N when signal N ended it).
    exit_code: int


@dataclass(frozen=True)
class RuntimeResult:
    """How a command ended and what it printed.

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
    stdout_bytes: bytes = field(default=b"", repr=False)
    stderr_bytes: bytes = field(default=b"", repr=False)
    setup_stdout_bytes: bytes = field(default=b"", repr=False)
    setup_stderr_bytes: bytes = field(default=b"", repr=False)
    stdout_total_bytes: int = 0
    stderr_total_bytes: int = 0
    setup_stdout_total_bytes: int = 0
    setup_stderr_total_bytes: int = 0

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
        """The command ran and exited with 0."""
        return self.exit_code == 0 and self.signal is None and self.setup_failure is None

    @classmethod
    def _from_native(cls, d: Dict[str, Any]) -> "RuntimeResult":
        failure = d["setup_failure"]
        return cls(
            exit_code=d["exit_code"],
            stdout=_text(d["stdout_bytes"]),
            stderr=_text(d["stderr_bytes"]),
            setup_stdout=_text(d["setup_stdout_bytes"]),
            setup_stderr=_text(d["setup_stderr_bytes"]),
            elapsed=d["elapsed"],
            timed_out=d["timed_out"],
            signal=d["signal"],
            killed=d["killed"],
            setup_failure=SetupFailure(*failure) if failure is not None else None,
            stdout_bytes=d["stdout_bytes"],
            stderr_bytes=d["stderr_bytes"],
            setup_stdout_bytes=d["setup_stdout_bytes"],
            setup_stderr_bytes=d["setup_stderr_bytes"],
            stdout_total_bytes=d["stdout_total_bytes"],
            stderr_total_bytes=d["stderr_total_bytes"],
            setup_stdout_total_bytes=d["setup_stdout_total_bytes"],
            setup_stderr_total_bytes=d["setup_stderr_total_bytes"],
        )


@dataclass(frozen=True)
class RuntimeEvent:
    """One event of a streamed command.

    ``kind`` is ``"stdout"`` or ``"stderr"`` for output (``data`` the exact
    bytes, ``text`` their decoding, ``phase`` ``"setup"`` or ``"command"``),
    and ``"finished"`` for the last event, which carries the ``result``.
    """

    kind: str
    text: str = ""
    data: bytes = field(default=b"", repr=False)
    phase: Optional[str] = None
    result: Optional[RuntimeResult] = None


class _Decoders:
    """Decodes each stream of a command incrementally, so that a character
    split across two chunks is decoded whole, not as two U+FFFD."""

    def __init__(self) -> None:
        self._decoders: Dict[Tuple[str, str], Any] = {}

    def decode(self, kind: str, phase: str, data: bytes) -> str:
        decoder = self._decoders.get((kind, phase))
        if decoder is None:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            self._decoders[(kind, phase)] = decoder
        return decoder.decode(data)

    def flush(self):
        """The text of bytes left incomplete at the end, per stream."""
        for (kind, phase), decoder in self._decoders.items():
            rest = decoder.decode(b"", final=True)
            if rest:
                yield kind, phase, rest
