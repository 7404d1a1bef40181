"""The asyncio glue: futures the Rust half completes from its own thread.

A native ``*_async`` call spawns a task on the package's runtime and
returns at once; when the task ends it calls :func:`_resolve` on the
loop's thread (``call_soon_threadsafe``). No thread is started per call.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable


def _resolve(future: "asyncio.Future[Any]", ok: bool, value: Any) -> None:
    """Completes ``future`` unless it was cancelled meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


async def call(method: Callable[..., None], *args: Any, **kwargs: Any) -> Any:
    """Awaits a native ``*_async`` method: ``method(loop, future, *args)``."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    method(loop, future, *args, **kwargs)
    return await future
