"""Recorded and visible: sessions from Python go to the store, where `subrt
ls` and the dashboard see them live."""

import json
import os
import signal
import subprocess
import time

import subrt
from conftest import eventually, unique_sleep


def ls(subrt_bin, store, *args):
    out = subprocess.run(
        [str(subrt_bin), "ls", "--json", *args],
        env={**os.environ, "SUBRT_STORE": str(store)}, capture_output=True, text=True, check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_a_running_session_is_listed_with_its_labels(subrt_bin, workdir, store):
    n = unique_sleep()
    labels = {"benchmark": "py", "submission": "alice"}
    with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir, labels=labels) as runtime:
        events = runtime.stream(f"echo started; sleep {n}")
        assert next(events).text == "started\n"
        [run] = ls(subrt_bin, store)
        assert run["run_id"] == runtime.run_id
        assert run["state"] == "running"
        assert run["labels"] == labels
        assert run["command"] == f"echo started; sleep {n}"
        assert ls(subrt_bin, store, "--label", "submission=alice")
        assert not ls(subrt_bin, store, "--label", "submission=bob")
        events.close()
    [run] = ls(subrt_bin, store)
    assert run["state"] == "finished" and run["killed"]


def test_the_default_store_is_subrt_store(workdir, store):
    with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir) as runtime:
        runtime.execute("echo hi")
    assert runtime.log_dir == store / runtime.run_id
    assert (store / runtime.run_id / "stdout").read_bytes() == b"hi\n"


def test_an_explicit_store_and_store_false(workdir, store, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir, store=elsewhere) as runtime:
        runtime.execute("true")
    assert (elsewhere / runtime.run_id / "events.jsonl").is_file()
    with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir, store=False) as runtime:
        runtime.execute("echo unrecorded")
        assert runtime.log_dir is None
    assert not store.exists() or not any(store.iterdir()), "store=False wrote nothing"


def test_a_kill_from_another_process_ends_the_command(workdir, store):
    # What the dashboard does to a run of another process: SIGKILL to the
    # init of its PID namespace, found in the run log.
    n = unique_sleep()
    with subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), workdir) as runtime:
        if runtime.info()["containment"] != "pid-namespace":
            return  # process groups: the dashboard kills the group instead
        events = runtime.stream(f"echo started; sleep {n}")
        assert next(events).text == "started\n"
        # The log's writer runs on a thread of its own: the record may
        # follow the output by a moment.
        def inits():
            log = (store / runtime.run_id / "events.jsonl").read_text().splitlines()
            return {json.loads(line)["init"] for line in log if '"e":"proc"' in line}

        assert eventually(lambda: inits())
        [init] = inits()
        os.kill(init, signal.SIGKILL)
        started = time.monotonic()
        finished = [e for e in events if e.kind == "finished"][0]
        assert finished.result.killed
        assert time.monotonic() - started < 2


def test_the_configs_store_bounds_are_honoured(workdir, tmp_path, monkeypatch, subrt_bin):
    # A spec loaded from a config records where the config says, keeping
    # what `[store] max_run_bytes` says (the CLI on that config does too).
    monkeypatch.delenv("SUBRT_STORE", raising=False)
    config = tmp_path / "config.toml"
    config.write_text(
        '[store]\ndir = "runs"\nmax_run_bytes = "1m"\n'
        '[[environments]]\nname = "local"\ntype = "local"\n'
    )
    spec = subrt.load_config(config)["local"]
    with subrt.spawn_runtime(spec, workdir) as runtime:
        result = runtime.execute("head -c 3M /dev/zero")
    assert runtime.log_dir == tmp_path / "runs" / runtime.run_id
    assert (runtime.log_dir / "stdout").stat().st_size == 1 << 20
    [run] = ls(subrt_bin, tmp_path / "runs")
    assert run["truncated"] and run["bytes_out"] == 3 << 20
    # And as an argument, over the config's.
    with subrt.spawn_runtime(spec, workdir, max_run_bytes=1 << 16) as runtime:
        runtime.execute("head -c 1M /dev/zero")
    assert (runtime.log_dir / "stdout").stat().st_size == 1 << 16
