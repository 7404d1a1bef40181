"""Shared fixtures: a workspace and a store per test, the `subrt` binary,
and a Docker image built here from host binaries (nothing can be pulled).

The image is the one `tests/common/docker.rs` builds, by the same recipe and
under the same tag, so either test suite may build it first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

import pytest

import subrt

REPO = Path(__file__).resolve().parents[2]
TEST_IMAGE = "subrt-test-rootfs:3"
PROGRAMS = [
    "sh", "sleep", "cat", "head", "ls", "id", "touch", "tr", "dd", "wc", "mkdir", "rm", "true",
    "setsid", "nohup",
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store of the test's own, also as SUBRT_STORE (the default)."""
    path = tmp_path / "store"
    monkeypatch.setenv("SUBRT_STORE", str(path))
    return path


@pytest.fixture(scope="session")
def subrt_bin() -> Path:
    """The CLI, from SUBRT_BIN or built from this repository."""
    if os.environ.get("SUBRT_BIN"):
        return Path(os.environ["SUBRT_BIN"])
    subprocess.run(["cargo", "build", "--quiet", "--bin", "subrt"], cwd=REPO, check=True)
    return REPO / "target" / "debug" / "subrt"


def _build_image() -> str:
    """Builds TEST_IMAGE; the reason as a string when it cannot."""
    if shutil.which("docker") is None:
        return "the docker CLI is not on PATH"
    version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    )
    if version.returncode != 0:
        return f"the Docker daemon is not reachable: {version.stderr.strip()}"
    with tempfile.TemporaryDirectory() as context:
        root = Path(context) / "rootfs"
        for d in ["tmp", "workspace", "static", "proc", "sys", "dev"]:
            (root / d).mkdir(parents=True)
        (root / "tmp").chmod(0o1777)  # as in every image

        def place(at: str, source: str) -> None:
            target = root / at.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.realpath(source), target)

        for program in PROGRAMS:
            binary = shutil.which(program)
            if binary is None:
                return f"`{program}` is not on PATH; the test image needs it"
            place(f"/bin/{program}", binary)
            ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
            for line in ldd.splitlines():
                rest = line.split("=>")[1] if "=>" in line else line
                words = rest.split()
                if words and words[0].startswith("/"):
                    place(words[0], words[0])
        (Path(context) / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
        built = subprocess.run(
            ["docker", "build", "-q", "-t", TEST_IMAGE, context], capture_output=True, text=True
        )
        if built.returncode != 0:
            return f"docker build failed: {built.stderr.strip()}"
    return ""


@pytest.fixture(scope="session")
def docker_image() -> str:
    """TEST_IMAGE, built; without a daemon the test is skipped, unless CI is
    set, where that is a failure. ``SUBRT_SKIP=docker`` skips it anyway."""
    if "docker" in os.environ.get("SUBRT_SKIP", "").split(","):
        pytest.skip("SUBRT_SKIP=docker")
    reason = _build_image()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the Docker tests cannot run: {reason}")
        pytest.skip(reason)
    return TEST_IMAGE


@pytest.fixture(params=["local", "docker"])
def kind(request: pytest.FixtureRequest) -> str:
    """Runs a test on each built-in runtime."""
    return request.param


@pytest.fixture
def make_spec(kind: str, request: pytest.FixtureRequest) -> Callable[..., subrt.EnvironmentSpec]:
    """Makes a spec of the test's runtime type with the given fields."""
    image = request.getfixturevalue("docker_image") if kind == "docker" else None

    def make(**fields) -> subrt.EnvironmentSpec:
        if kind == "docker":
            docker = {"image": image, **fields.pop("docker", {})}
            return subrt.DockerEnvironmentSpec(name="test-docker", docker=docker, **fields)
        return subrt.LocalEnvironmentSpec(name="test-local", **fields)

    return make


_NEXT_SLEEP = [0]


def unique_sleep() -> int:
    """A `sleep` duration no other test process uses, so that a process scan
    finds only what this test started."""
    _NEXT_SLEEP[0] += 1
    return 200_000 + (os.getpid() % 30_000) * 20 + _NEXT_SLEEP[0] % 20


def live_processes(needle: str) -> List[str]:
    """Host processes (not zombies) whose command line contains `needle`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue
        text = cmdline.replace(b"\0", b" ").decode(errors="replace")
        if needle in text:
            found.append(text)
    return found


def eventually(check: Callable[[], bool], limit: float = 2.0) -> bool:
    deadline = time.monotonic() + limit
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def containers_of(run_id: str) -> List[str]:
    """Containers (running or not) labelled with `run_id`."""
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=subrt.run={run_id}"],
        capture_output=True, text=True,
    )
    return out.stdout.split()


def escapes() -> tuple:
    """A command line that leaves processes behind the ways a submission
    might (a background child, `setsid` double fork, `nohup`), says
    `started` and sleeps; and the needles that find each process."""
    n = [unique_sleep() for _ in range(4)]
    quiet = ">/dev/null 2>&1"
    line = (
        f"sleep {n[0]} {quiet} & setsid sh -c 'sleep {n[1]} {quiet} &'; "
        f"nohup sleep {n[2]} {quiet} & echo started; sleep {n[3]}"
    )
    return line, [f"sleep {x}" for x in n]


def python_child(script: str, **kwargs) -> subprocess.Popen:
    """Runs `script` in a new Python process with this package."""
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )
