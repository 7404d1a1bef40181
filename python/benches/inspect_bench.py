"""The subrt inspect provider against baselines measured in the same run.

    python python/benches/inspect_bench.py [--quick]

- a sample's sandbox as inspect drives it: ``sample_init``, one
  ``exec(["true"])``, ``sample_cleanup``, on subrt's local runtime (PID
  namespace containment, recorded in a store, as by default) against
  inspect's own ``local`` provider (a temporary folder and an asyncio
  subprocess: no containment, no record);
- the same with the environment named ``sandbox`` (subrt's sandbox:
  namespaces, an unprivileged user; root only);
- ``write_file`` and ``read_file`` of 10 MB through the provider on the
  local runtime, against a plain copy of a 10 MB file (``shutil.copyfile``)
  in the same folder.

Medians of 5 rounds (3 with --quick). Results go into BENCHMARKS.md by hand.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

from inspect_ai.util._sandbox.local import LocalSandboxEnvironment

from subrt.inspect import SubrtSandboxEnvironment

QUICK = "--quick" in sys.argv
SAMPLES = 20 if QUICK else 100
ROUNDS = 3 if QUICK else 5
SIZE = 10 * 1000 * 1000


async def per_sample(provider, config) -> float:
    """Seconds for SAMPLES samples of init, exec(["true"]), cleanup."""
    started = time.perf_counter()
    for _ in range(SAMPLES):
        environments = await provider.sample_init("bench", config, {})
        result = await environments["default"].exec(["true"])
        assert result.success, result
        await provider.sample_cleanup("bench", config, environments, False)
    return (time.perf_counter() - started) / SAMPLES


async def files(config) -> tuple:
    environments = await SubrtSandboxEnvironment.sample_init("bench", config, {})
    sandbox = environments["default"]
    data = os.urandom(SIZE)
    folder = tempfile.mkdtemp()
    source = os.path.join(folder, "source")
    with open(source, "wb") as f:
        f.write(data)
    writes, reads, copies = [], [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await sandbox.write_file("ten.bin", data)
        writes.append(time.perf_counter() - started)
        started = time.perf_counter()
        back = await sandbox.read_file("ten.bin", text=False)
        reads.append(time.perf_counter() - started)
        assert back == data
        started = time.perf_counter()
        shutil.copyfile(source, os.path.join(folder, "copy"))
        copies.append(time.perf_counter() - started)
    await SubrtSandboxEnvironment.sample_cleanup("bench", config, environments, False)
    shutil.rmtree(folder)
    return tuple(statistics.median(x) for x in (writes, reads, copies))


async def main() -> None:
    folder = tempfile.mkdtemp()
    config = os.path.join(folder, "config.toml")
    with open(config, "w") as f:
        f.write(
            f'[store]\ndir = "{folder}/store"\n'
            '[[environments]]\nname = "local"\ntype = "local"\n'
            '[[environments]]\nname = "sandbox"\ntype = "local"\n'
            'local = { isolation = "sandbox" }\n'
        )
    local, subrt_local, subrt_sandbox = [], [], []
    for _ in range(ROUNDS):
        local.append(await per_sample(LocalSandboxEnvironment, None))
        subrt_local.append(await per_sample(SubrtSandboxEnvironment, f"{config}#local"))
        if os.geteuid() == 0:
            subrt_sandbox.append(await per_sample(SubrtSandboxEnvironment, f"{config}#sandbox"))
    base = statistics.median(local)
    print(f"sample (init + exec true + cleanup), {SAMPLES} samples a round, medians of {ROUNDS}:")
    print(f"  inspect local provider          {base * 1e3:7.2f} ms")
    ours = statistics.median(subrt_local)
    print(f"  subrt, local (recorded)         {ours * 1e3:7.2f} ms   {ours / base:.2f}x")
    if subrt_sandbox:
        boxed = statistics.median(subrt_sandbox)
        print(f"  subrt, sandbox (recorded)       {boxed * 1e3:7.2f} ms   {boxed / base:.2f}x")
    write, read, copy = await files(f"{config}#local")
    mb = SIZE / 1e6
    print(f"10 MB files, medians of {ROUNDS}:")
    print(f"  plain copy (shutil.copyfile)    {copy * 1e3:7.2f} ms   {mb / copy:8.0f} MB/s")
    print(f"  write_file                      {write * 1e3:7.2f} ms   {mb / write:8.0f} MB/s   {copy / write:.2f} of the copy")
    print(f"  read_file                       {read * 1e3:7.2f} ms   {mb / read:8.0f} MB/s   {copy / read:.2f} of the copy")
    shutil.rmtree(folder)


if __name__ == "__main__":
    asyncio.run(main())
