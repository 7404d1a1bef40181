"""Speed of the Python package against baselines measured in the same run.

    python python/benches/bench.py [--quick]

- `execute("true")` on a running local runtime (recorded, as by default),
  against the same call made from Rust on the same session (no Python in
  between) and against `subprocess.run(["sh", "-c", "true"])`; also the
  floor of any runtime that starts `sh -c` for each call: `os.posix_spawn`
  of it and `os.waitpid`, with no pipes, no recording and no namespace;
- 1 GiB through `stream()`, against the raw pipe of the same bytes read by
  Python (`head -c 1G /dev/zero` through `subprocess.Popen`, 64 KiB reads).

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


def bench_stream(runtime, label: str) -> None:
    command = f"head -c {GIB} /dev/zero"
    raw, streamed = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        with subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE) as child:
            total = 0
            while True:
                chunk = child.stdout.read1(1 << 16)
                if not chunk:
                    break
                total += len(chunk)
        raw.append(total / (time.perf_counter() - started))
        assert total == GIB
        started = time.perf_counter()
        total = 0
        for event in runtime.stream(command):
            if event.kind == "stdout":
                total += len(event.data)
        streamed.append(total / (time.perf_counter() - started))
        assert total == GIB, total
    raw_rate, stream_rate = statistics.median(raw), statistics.median(streamed)
    print(f"stream {GIB >> 20} MiB ({label}): raw pipe {raw_rate / 1e9:.2f} GB/s, "
          f"stream() {stream_rate / 1e9:.2f} GB/s, ratio {stream_rate / raw_rate:.2f} (target >= 0.5)")


def main() -> None:
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as store:
        with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), work, store=store) as runtime:
            runtime.execute("true")  # warm
            print(f"containment: {runtime.info()['containment']}; recorded in a fresh store")
            bench_execute(runtime)
            bench_stream(runtime, "recorded")
        with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), work, store=False) as runtime:
            bench_stream(runtime, "store=False")


if __name__ == "__main__":
    main()
