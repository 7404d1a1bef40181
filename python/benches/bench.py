"""Speed of the Python package against baselines measured in the same run.

    python python/benches/bench.py [--quick]

- `execute("true")` on a running local runtime (recorded, as by default),
  against the same call made from Rust on the same session (no Python in
  between) and against `subprocess.run(["sh", "-c", "true"])`; also the
  floor of any runtime that starts `sh -c` for each call: `os.posix_spawn`
  of it and `os.waitpid`, with no pipes, no recording and no namespace;
- 1 GiB through `stream()` (each round a session of its own), against the
  raw pipe of the same bytes read by Python (`head -c 1G /dev/zero` through
  `subprocess.Popen`, 64 KiB reads);
  also the ceiling of a runtime that gives Python a copy of what it reads,
  with no other thread: Python reading the pipe itself into one reused
  64 KiB buffer and copying each read into the `bytes` of a `RuntimeEvent`;
  recorded, the ceiling also writes each read to a fresh file in the store's
  folder, as any recording must (the page cache's copy and the file
  system's work).

Medians of 5 rounds. Results go into BENCHMARKS.md by hand.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

import subrt

QUICK = "--quick" in sys.argv
CALLS = 200 if QUICK else 1000
GIB = (64 << 20) if QUICK else (1 << 30)
ROUNDS = 3 if QUICK else 5


def per_call(seconds: float) -> float:
    return seconds / CALLS * 1e6


def bench_execute(runtime) -> None:
    py, rust, sub, floor = [], [], [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            runtime.execute("true")
        py.append(time.perf_counter() - started)
        rust.append(runtime._session._time_execute("true", CALLS))
        started = time.perf_counter()
        for _ in range(CALLS):
            subprocess.run(["sh", "-c", "true"])
        sub.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(CALLS):
            os.waitpid(os.posix_spawn("/bin/sh", ["sh", "-c", "true"], os.environ), 0)
        floor.append(time.perf_counter() - started)
    py_us, rust_us, sub_us, floor_us = (
        per_call(statistics.median(x)) for x in (py, rust, sub, floor)
    )
    print(f"execute('true'): Python {py_us:.0f} us, Rust {rust_us:.0f} us, "
          f"subprocess.run {sub_us:.0f} us, bare posix_spawn {floor_us:.0f} us per call")
    print(f"  Python / Rust = {py_us / rust_us:.2f} (target <= 1.3); "
          f"subprocess / Python = {sub_us / py_us:.2f} (target >= 1.2); "
          f"subprocess / bare posix_spawn = {sub_us / floor_us:.2f} (the most a "
          f"runtime that starts `sh -c` per call can reach)")


def read_raw(command: str) -> int:
    """The raw pipe: Python reads `command`'s stdout 64 KiB at a time."""
    total = 0
    with subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE) as child:
        while True:
            chunk = child.stdout.read1(1 << 16)
            if not chunk:
                break
            total += len(chunk)
    return total


def read_copied(command: str, record_in: "str | None" = None) -> int:
    """The raw pipe as a runtime on the reading thread would hand it on:
    each read into one reused buffer, copied into an event's `bytes`, and
    with `record_in`, written to a fresh file in that folder first."""
    total = 0
    buffer = bytearray(1 << 16)
    view = memoryview(buffer)
    log = tempfile.NamedTemporaryFile(dir=record_in) if record_in else None
    with subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE) as child:
        fd = child.stdout.fileno()
        while True:
            read = os.readv(fd, [buffer])
            if not read:
                break
            if log:
                os.write(log.fileno(), view[:read])
            event = subrt.RuntimeEvent(kind="stdout", data=bytes(view[:read]), phase="command")
            total += len(event.data)
    if log:
        log.close()
    return total


def read_streamed(runtime, command: str) -> int:
    """`command` through `runtime.stream`, as a harness reads it."""
    return sum(len(e.data) for e in runtime.stream(command) if e.kind == "stdout")


def rate(read, command: str) -> float:
    """Bytes per second of `read(command)`, which returns how many it read."""
    started = time.perf_counter()
    total = read(command)
    assert total == GIB, total
    return total / (time.perf_counter() - started)


def bench_stream(work: str, store: "str | None") -> None:
    """Each round's `stream()` in a session of its own, as one submission
    would have it: recorded, a fresh log (never the ring of a log already
    past `max_run_bytes`)."""
    command = f"head -c {GIB} /dev/zero"
    raw, copied, streamed = [], [], []
    for _ in range(ROUNDS):
        raw.append(rate(read_raw, command))
        copied.append(rate(lambda c: read_copied(c, store), command))
        spec = subrt.LocalEnvironmentSpec()
        with subrt.spawn_runtime(spec, work, store=store or False) as runtime:
            runtime.execute("true")  # started, outside the time
            streamed.append(rate(lambda c: read_streamed(runtime, c), command))
    raw_rate, copied_rate, stream_rate = (statistics.median(x) for x in (raw, copied, streamed))
    label = "recorded" if store else "store=False"
    print(f"stream {GIB >> 20} MiB ({label}): raw pipe {raw_rate / 1e9:.2f} GB/s, "
          f"stream() {stream_rate / 1e9:.2f} GB/s, ratio {stream_rate / raw_rate:.2f} (target >= 0.5)")
    what = "read, written to a fresh file and copied" if store else "read and copied"
    print(f"  {what} on Python's thread: {copied_rate / 1e9:.2f} GB/s, ratio "
          f"{copied_rate / raw_rate:.2f} (the most a runtime that copies each read can reach)")


def main() -> None:
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as store:
        with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), work, store=store) as runtime:
            runtime.execute("true")  # warm
            print(f"containment: {runtime.info()['containment']}; recorded in a fresh store")
            bench_execute(runtime)
        bench_stream(work, store)
        bench_stream(work, None)


if __name__ == "__main__":
    main()
