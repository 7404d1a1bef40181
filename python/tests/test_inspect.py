"""inspect's own conformance suite for sandbox providers, run against the
subrt provider on each runtime, as its module doc says a provider does.

Every check runs; those a runtime cannot pass are marked ``xfail`` here,
strictly (one that starts passing fails the run), with the reason the
README's table gives. None of them is one inspect's ``docker`` provider
passes with a non-root user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.util._sandbox.self_check import *  # noqa: E402,F401,F403

from subrt.inspect import SubrtSandboxEnvironment  # noqa: E402

pytestmark = pytest.mark.anyio

INSPECT_IMAGE = "subrt-test-inspect:3"

#: Checks a runtime fails, and why (the README's table says the same).
KNOWN_FAILURES: Dict[str, Dict[str, str]] = {
    "local": {
        "test_exec_as_user": "runs adduser on the host: plain local sessions are the host (not run)",
        "test_read_file_not_allowed": "subrt runs as root here and root reads any file",
        "test_write_text_file_without_permissions": "root writes any file",
        "test_write_binary_file_without_permissions": "root writes any file",
    },
    "sandbox": {
        "test_exec_as_user": "a sandbox runs commands as its own unprivileged user only: "
        "root inside would be root on the host (no user namespace)",
    },
    "docker": {},
    "slurm": {
        "test_exec_as_user": "Slurm runs every step as the user who holds the allocation; "
        "adduser would also run on the test cluster's node, this host (not run)",
        "test_read_file_not_allowed": "the allocation is root's here and root reads any file",
        "test_write_text_file_without_permissions": "root writes any file",
        "test_write_binary_file_without_permissions": "root writes any file",
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


ADDUSER = r"""#!/bin/sh
# adduser -D NAME, as BusyBox's (this image's busybox lacks the applet).
case $1 in --help|-h) echo "BusyBox-style adduser of the subrt test image: adduser -D NAME"; exit 0 ;; esac
[ "$1" = -D ] && shift
name=$1
[ -n "$name" ] || { echo "adduser: no name" >&2; exit 1; }
grep -q "^$name:" /etc/passwd && { echo "adduser: user '$name' in use" >&2; exit 1; }
uid=$(awk -F: 'BEGIN { m = 999 } $3 > m && $3 < 60000 { m = $3 } END { print m + 1 }' /etc/passwd)
echo "$name:x:$uid:$uid::/home/$name:/bin/sh" >> /etc/passwd
echo "$name:x:$uid:" >> /etc/group
echo "$name:!:19000:0:99999:7:::" >> /etc/shadow
mkdir -p "/home/$name" && chown "$uid:$uid" "/home/$name"
"""

USERDEL = r"""#!/bin/sh
[ "$1" = -r ] && shift
for f in /etc/passwd /etc/group /etc/shadow; do
  grep -v "^$1:" "$f" > "$f.new"; cat "$f.new" > "$f"; rm -f "$f.new"
done
rm -rf "/home/$1"
"""


def _busybox_image() -> str:
    """Builds INSPECT_IMAGE: busybox (adduser, ps, grep, whoami...) with
    root and a user `app` (1000) whose home is the workdir; the reason as a
    string when it cannot."""
    if shutil.which("docker") is None:
        return "the docker CLI is not on PATH"
    busybox = shutil.which("busybox")
    if busybox is None:
        return "busybox is not installed (apt-get install busybox-static)"
    if subprocess.run(["docker", "image", "inspect", INSPECT_IMAGE], capture_output=True).returncode == 0:
        return ""
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory() as context:
        root = Path(context) / "rootfs"
        for d in ["tmp", "proc", "sys", "dev", "root", "etc", "bin", "usr/bin", "sbin", "usr/sbin"]:
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        shutil.copy(os.path.realpath(busybox), root / "bin/busybox")
        for applet in applets:
            link = root / applet
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to("/bin/busybox")
        # Debian's busybox has no adduser applet: a script in its place
        # does what `adduser -D NAME` does (the form the suite uses when
        # `adduser --help` says BusyBox), and userdel its undoing.
        (root / "usr/sbin/adduser").write_text(ADDUSER)
        (root / "usr/sbin/adduser").chmod(0o755)
        (root / "usr/sbin/userdel").write_text(USERDEL)
        (root / "usr/sbin/userdel").chmod(0o755)
        (root / "etc/passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
        )
        (root / "etc/group").write_text("root:x:0:\napp:x:1000:\n")
        (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\napp:*:19000:0:99999:7:::\n")
        (Path(context) / "home/app").mkdir(parents=True)
        (Path(context) / "Dockerfile").write_text(
            "FROM scratch\nENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            "COPY rootfs/ /\nCOPY --chown=1000:1000 home/ /home/\n"
        )
        built = subprocess.run(
            ["docker", "build", "-q", "-t", INSPECT_IMAGE, context],
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
        if built.returncode != 0:
            return f"docker build failed: {built.stderr.strip()}"
    return ""


def _no_cluster() -> Optional[str]:
    """Why the Slurm checks cannot run: only on the cluster of
    assets/slurm/cluster.sh, never another one."""
    ours = "/run/subrt-slurm/slurm.conf"
    used = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    mine = os.path.exists(ours) and os.path.realpath(used) == os.path.realpath(ours)
    if not mine or shutil.which("sinfo") is None:
        return f"no Slurm cluster of assets/slurm/cluster.sh (SLURM_CONF={ours})"
    if subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        return "the cluster of assets/slurm/cluster.sh does not answer"
    return None


def _can_sandbox() -> Optional[str]:
    if os.geteuid() != 0:
        return "isolation = \"sandbox\" needs root"
    return None


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config with one environment per runtime under test."""
    folder = tmp_path_factory.mktemp("inspect-config")
    (folder / "config.toml").write_text(
        f"""
default_environment = "local"
[store]
dir = "{folder / 'store'}"

[[environments]]
name = "local"
type = "local"

[[environments]]
name = "sandbox"
type = "local"
environment = {{ env = {{ PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" }} }}
local = {{ isolation = "sandbox" }}

[[environments]]
name = "slurm"
type = "slurm"
slurm = {{ time = "10" }}

[[environments]]
name = "docker"
type = "docker"
docker = {{ image = "{INSPECT_IMAGE}", workdir = "/home/app/work", user = "app", network = "none" }}
"""
    )
    return folder / "config.toml"


@pytest.fixture(params=["local", "sandbox", "docker", "slurm"])
async def sandbox_env(request: pytest.FixtureRequest, configs: Path):
    runtime = request.param
    if runtime == "docker":
        if "docker" in os.environ.get("SUBRT_SKIP", "").split(","):
            pytest.skip("SUBRT_SKIP=docker")
        reason = _busybox_image()
        if reason:
            if os.environ.get("CI"):
                pytest.fail(f"CI is set and the Docker checks cannot run: {reason}")
            pytest.skip(reason)
    if runtime == "sandbox" and _can_sandbox():
        pytest.skip(_can_sandbox())
    if runtime == "slurm":
        if "slurm" in os.environ.get("SUBRT_SKIP", "").split(","):
            pytest.skip("SUBRT_SKIP=slurm")
        reason = _no_cluster()
        if reason:
            if os.environ.get("CI"):
                pytest.fail(f"CI is set and the Slurm checks cannot run: {reason}")
            pytest.skip(reason)
    check = request.node.originalname
    reason = KNOWN_FAILURES[runtime].get(check)
    if reason:
        if check == "test_exec_as_user" and runtime in ("local", "slurm"):
            pytest.skip(reason)
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
    task = f"self-check-{runtime}"
    config = f"{configs}#{runtime}"
    await SubrtSandboxEnvironment.task_init(task, config)
    environments = await SubrtSandboxEnvironment.sample_init(task, config, {})
    try:
        yield environments["default"]
    finally:
        await SubrtSandboxEnvironment.sample_cleanup(task, config, environments, False)
        await SubrtSandboxEnvironment.task_cleanup(task, config, True)
