"""`inspect eval` of a small task (tests/inspect_tasks/shout.py) on the subrt
provider, as a user runs it: the CLI, model `mockllm/model`, no network.
Then what a person watching does: find the evaluation's sessions with
`subrt ls --label`, and kill a hung one from the dashboard in a terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.log import list_eval_logs, read_eval_log  # noqa: E402

from conftest import live_processes  # noqa: E402

TASKS = Path(__file__).parent / "inspect_tasks"
INSPECT = Path(sys.executable).parent / "inspect"


def _eval(store: Path, logs: Path, **env: str) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [str(INSPECT), "eval", "shout.py", "--model", "mockllm/model", "--log-dir", str(logs),
         "--display", "plain", "--no-fail-on-error"],
        cwd=TASKS,
        env={**os.environ, "SUBRT_STORE": str(store), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _ls(subrt_bin: Path, store: Path, *args: str) -> List[dict]:
    out = subprocess.run(
        [str(subrt_bin), "ls", "--json", *args],
        env={**os.environ, "SUBRT_STORE": str(store)},
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def _samples(logs: Path) -> dict:
    [info] = list_eval_logs(str(logs))
    log = read_eval_log(info)
    assert log.status == "success", log.error
    return {sample.id: sample for sample in log.samples or []}


def test_an_evaluation_runs_on_subrt_and_its_sessions_are_listed(
    tmp_path: Path, store: Path, subrt_bin: Path
) -> None:
    evaluation = _eval(store, tmp_path / "logs")
    output, _ = evaluation.communicate(timeout=300)
    assert evaluation.returncode == 0, output.decode(errors="replace")
    samples = _samples(tmp_path / "logs")
    assert sorted(samples) == ["s1", "s2", "s3"]
    for sample in samples.values():
        assert sample.scores["shouted"].value == "C", sample.output.completion
        assert sample.metadata["exits"] == [0, 0]

    runs = _ls(subrt_bin, store, "--label", "inspect.task=shout")
    assert sorted(run["labels"]["inspect.sample"] for run in runs) == ["s1", "s2", "s3"]
    for run in runs:
        assert run["labels"]["name"] == f"shout/{run['labels']['inspect.sample']}"
        assert run["labels"]["inspect.epoch"] == "1"
        assert run["state"] == "finished" and run["verdict"] == "ok", run
        # inspect's own probe, then the solver's two commands.
        assert run["commands"] >= 3, run
    one = _ls(subrt_bin, store, "--label", "inspect.sample=s2")
    assert len(one) == 1


def _tmux(server: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", server, *args], capture_output=True, text=True).stdout


def _wait(what, timeout: float = 60.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(step)
    return what()


def test_a_hung_command_killed_from_the_dashboard_fails_its_sample_only(
    tmp_path: Path, store: Path, subrt_bin: Path
) -> None:
    if subprocess.run(["tmux", "-V"], capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("CI is set and tmux is missing (.ci/run installs it)")
        pytest.skip("tmux is not installed")
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\ndir = "{store}"\n\n[[environments]]\nname = "local"\ntype = "local"\n')
    evaluation = _eval(store, tmp_path / "logs", HANG_SAMPLE="s2")
    server = f"subrt-inspect-{os.getpid()}"
    try:
        hung = _wait(
            lambda: [r for r in _ls(subrt_bin, store, "--label", "inspect.sample=s2") if r["state"] == "running"]
        )
        assert hung, "the hung sample's session runs"
        # The others done, so that the running view below holds the hung
        # session alone (under load they may still run).
        assert _wait(
            lambda: [r["run_id"] for r in _ls(subrt_bin, store) if r["state"] == "running"]
            == [hung[0]["run_id"]]
        ), _ls(subrt_bin, store)
        _tmux(server, "new-session", "-d", "-s", server, "-x", "160", "-y", "45",
              f"{subrt_bin} --config {config}; sleep 60")
        # The running view: the hung session is the one running.
        assert _wait(lambda: "shout/s2" in _tmux(server, "capture-pane", "-p", "-t", server))
        _tmux(server, "send-keys", "-t", server, "R")
        assert _wait(lambda: "hanging" in _tmux(server, "capture-pane", "-p", "-t", server))
        _tmux(server, "send-keys", "-t", server, "k")
        assert _wait(lambda: "Kill session" in _tmux(server, "capture-pane", "-p", "-t", server))
        _tmux(server, "send-keys", "-t", server, "y")
        output, _ = evaluation.communicate(timeout=120)
        assert evaluation.returncode == 0, output.decode(errors="replace")
    finally:
        evaluation.kill()
        _tmux(server, "kill-server")
    samples = _samples(tmp_path / "logs")
    assert samples["s2"].metadata["hung_exit"] == 137
    assert samples["s2"].scores["shouted"].value == "I"
    assert samples["s1"].scores["shouted"].value == "C"
    assert samples["s3"].scores["shouted"].value == "C"
    assert not live_processes("sleep 100000"), "nothing of the hung command is left"
    [run] = _ls(subrt_bin, store, "--label", "inspect.sample=s2")
    assert run["state"] == "finished"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_exec_remote_streams_and_its_kill_ends_the_command(store: Path) -> None:
    from inspect_ai.util._sandbox.exec_remote import ExecCompleted, ExecStdout

    from conftest import unique_sleep
    from subrt.inspect import SubrtSandboxEnvironment

    environments = await SubrtSandboxEnvironment.sample_init("remote", None, {})
    box = environments["default"]
    try:
        n = unique_sleep()
        server = await box.exec_remote(["sh", "-c", f"echo ready; sleep {n}; true"])
        events = server.__aiter__()
        assert await events.__anext__() == ExecStdout(data="ready\n")
        # Another command runs while the server does.
        beside = await box.exec(["sh", "-c", "echo beside"])
        assert beside.stdout == "beside\n"
        assert live_processes(f"sleep {n}")
        await server.kill()
        rest = [event async for event in events]
        assert rest == [ExecCompleted(exit_code=137)]
        deadline = time.monotonic() + 10
        while live_processes(f"sleep {n}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not live_processes(f"sleep {n}"), "the killed command survived"
        result = await box.exec_remote(["sh", "-c", "echo done"], stream=False)
        assert (result.success, result.stdout) == (True, "done\n")
    finally:
        await SubrtSandboxEnvironment.sample_cleanup("remote", None, environments, False)
