"""Functions run in worker processes (importable by `spawn` children)."""

import os
import tempfile

import subrt


def run_one(n: int) -> tuple:
    with tempfile.TemporaryDirectory() as work:
        with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), work, store=False) as runtime:
            result = runtime.execute(f"echo {n}; echo $$ >&2")
            # The result itself goes back to the parent, its text not yet read.
            return os.getpid(), result
