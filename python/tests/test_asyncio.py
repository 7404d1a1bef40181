"""The asyncio API: commands side by side on one event loop, cancellation,
per-command cwd and user, files; on each built-in runtime."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

import subrt
from conftest import containers_of, live_processes, unique_sleep

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def runtime(make_spec, workdir: Path, store: Path):
    rt = subrt.spawn_runtime(make_spec(), workdir)
    yield rt
    rt.cleanup()


async def test_commands_run_side_by_side_without_a_thread_per_call(runtime) -> None:
    threads = threading.active_count()
    started = time.monotonic()
    results = await asyncio.gather(
        *(runtime.aexecute(["sh", "-c", f"sleep 1; echo {i}"]) for i in range(8))
    )
    elapsed = time.monotonic() - started
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)]
    assert elapsed < 5, f"8 one-second commands took {elapsed:.1f}s: they did not run side by side"
    assert threading.active_count() <= threads + 1, "a thread per call"
    # The seed's one-at-a-time call still works between them.
    assert runtime.execute("echo seed").stdout == "seed\n"


async def test_cancelling_the_await_kills_the_command(runtime) -> None:
    n = unique_sleep()
    task = asyncio.ensure_future(runtime.aexecute(f"sleep {n}; true"))
    deadline = time.monotonic() + 10
    while not live_processes(f"sleep {n}") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert live_processes(f"sleep {n}"), "the command started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 10
    while live_processes(f"sleep {n}") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not live_processes(f"sleep {n}"), "the cancelled command's process survived"
    # The session goes on.
    assert (await runtime.aexecute("echo after")).stdout == "after\n"


async def test_a_timeout_ends_its_command_and_not_the_server_beside_it(runtime) -> None:
    server = await runtime.astart("echo up; sleep 60")
    late = await runtime.aexecute("sleep 60", timeout=1)
    assert late.timed_out and late.killed_by == "timeout"
    beside = await runtime.aexecute(["sh", "-c", "echo beside"])
    assert beside.stdout == "beside\n"
    server.kill()
    result = await server.wait()
    assert result.killed_by == "kill" and result.stdout == "up\n"


async def test_astream_yields_output_as_it_is_written_and_aclose_kills(runtime) -> None:
    events = runtime.astream("echo one; sleep 0.3; echo two >&2; exit 3")
    seen = [(e.kind, e.text) async for e in events]
    assert seen[:2] == [("stdout", "one\n"), ("stderr", "two\n")]
    assert seen[-1][0] == "finished"
    n = unique_sleep()
    events = runtime.astream(f"echo go; sleep {n}; true")
    first = await events.__anext__()
    assert first.text == "go\n"
    await events.aclose()
    deadline = time.monotonic() + 10
    while live_processes(f"sleep {n}") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not live_processes(f"sleep {n}"), "leaving the stream did not kill its command"


async def test_cwd_user_and_argv(runtime) -> None:
    await runtime.aexecute("mkdir -p sub/dir")
    here = (await runtime.aexecute("pwd")).stdout.strip()
    assert (await runtime.aexecute("pwd", cwd="sub/dir")).stdout.strip() == f"{here}/sub/dir"
    argv = ["sh", "-c", 'printf "%s|" "$@"', "sh", "a b", "$HOME", "'q'"]
    assert (await runtime.aexecute(argv)).stdout == "a b|$HOME|'q'|"
    with pytest.raises(subrt.SolutionRuntimeError, match="nonexistent"):
        await runtime.aexecute("id", user="nonexistent")


async def test_files_round_trip_and_say_what_went_wrong(runtime) -> None:
    data = bytes(range(256)) * 1000
    await runtime.awrite_file("made/here/data.bin", data)
    assert await runtime.aread_file("made/here/data.bin") == data
    assert runtime.read_file("made/here/data.bin") == data
    runtime.write_file("text.txt", "héllo\r\n")
    assert (await runtime.aread_file("text.txt")).decode() == "héllo\r\n"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        await runtime.aread_file("nowhere")
    with pytest.raises(IsADirectoryError, match="directory"):
        await runtime.aread_file("made")
    with pytest.raises(IsADirectoryError):
        await runtime.awrite_file("made", b"x")
    with pytest.raises(subrt.FileTooLargeError) as too_large:
        await runtime.aread_file("made/here/data.bin", limit=100)
    assert too_large.value.args[1:] == (256_000, 100)


async def test_sessions_start_and_end_on_the_loop_without_a_thread(kind, make_spec, workdir, store) -> None:
    spec = make_spec()
    cls = subrt.registered_runtimes()[kind]
    threads = threading.active_count()
    # Four at once, on the package's runtime (a container each).
    runtimes = await asyncio.gather(*(cls.aspawn(spec, workdir) for _ in range(4)))
    assert threading.active_count() <= threads + 1, "a thread per spawn"
    results = [await runtime.aexecute("echo up") for runtime in runtimes]
    assert [r.stdout for r in results] == ["up\n"] * 4
    await asyncio.gather(*(runtime.acleanup() for runtime in runtimes))
    for runtime in runtimes:
        assert containers_of(runtime.run_id) == [], "a container left after acleanup"
        with pytest.raises(subrt.SolutionRuntimeError):
            runtime.execute("true")


async def test_a_spawn_cancelled_on_its_way_is_cleaned_up(make_spec, workdir, store, subrt_bin) -> None:
    spec = make_spec()
    cls = subrt.registered_runtimes()[spec.type]
    task = asyncio.ensure_future(cls.aspawn(spec, workdir, labels={"cancelled": "yes"}))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    def runs() -> list:
        out = subprocess.run(
            [str(subrt_bin), "ls", "--json", "--label", "cancelled=yes"],
            capture_output=True, text=True, check=True,
        ).stdout
        return [json.loads(line) for line in out.splitlines()]

    # The session made after the cancel is handed to the loop, which drops
    # it: that ends it.
    deadline = time.monotonic() + 20
    while [r["state"] for r in runs()] != ["finished"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert [r["state"] for r in runs()] == ["finished"], runs()
    assert containers_of(runs()[0]["run_id"]) == []
