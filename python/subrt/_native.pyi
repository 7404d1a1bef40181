"""Type hints of the Rust half of the package (`python/src/`)."""

from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

class ExecutionError(Exception):
    """Running a submission failed for a reason other than its own exit."""

class SolutionRuntimeError(ExecutionError):
    """A runtime could not start, run a command or clean up."""

def check_spec(json: str) -> str:
    """Checks a spec (JSON) and returns it with every default, as JSON.

    :raises ValueError: naming the field that is wrong.
    """

def load_config(path: str) -> Tuple[str, Path, int, Optional[int], List[str]]:
    """A config file's default environment, store, the store's
    `max_run_bytes` and `max_bytes`, and environments (JSON)."""

def runtime_types() -> List[str]:
    """The runtime types the Rust library provides."""

def default_store() -> Path:
    """`SUBRT_STORE`, else the user's store."""

Event = Tuple[str, Optional[str], Union[bytes, str, Dict[str, Any]]]

class Events(Iterator[Event]):
    """The events of one streamed command: `(kind, phase, payload)`."""

    def __iter__(self) -> "Events": ...
    def __next__(self) -> Event: ...
    def close(self) -> None:
        """Kills the command if it still runs and waits for its end."""

class Spawning:
    """A launch, checked: the spec (JSON) and the arguments of a spawn."""

    def __init__(
        self,
        spec: str,
        working_dir: str,
        static_assets: List[Dict[str, str]],
        ports: Mapping[int, int],
        mounts: List[Dict[str, Any]],
        env_vars: Mapping[str, str],
        setup_command: Optional[str],
        is_evaluation: bool,
        disable_setup: bool,
        store: Optional[str],
        labels: Mapping[str, str],
        max_run_bytes: Optional[int] = None,
        max_store_bytes: Optional[int] = None,
        resume: bool = False,
    ) -> None: ...
    @property
    def run_id(self) -> str: ...

class Session:
    """A runtime under subrt's supervisor, recorded in the store."""

    @staticmethod
    def spawn(spawning: Spawning) -> "Session": ...
    @staticmethod
    def spawn_async(loop: Any, future: Any, spawning: Spawning) -> None: ...
    def cleanup_async(self, loop: Any, future: Any) -> None: ...
    @property
    def run_id(self) -> str: ...
    @property
    def log_dir(self) -> Optional[Path]: ...
    @property
    def cleaned(self) -> bool: ...
    def execute(
        self,
        command: str,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[bytes] = None,
        timeout: Optional[float] = None,
        capture_limit: int = ...,
    ) -> Dict[str, Any]: ...
    def stream(
        self,
        command: str,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[bytes] = None,
        timeout: Optional[float] = None,
        capture_limit: int = ...,
    ) -> Events: ...
    def poll(self) -> Optional[int]: ...
    def kill(self) -> None: ...
    def cleanup(self) -> None: ...
    def info(self) -> Dict[str, Any]: ...
