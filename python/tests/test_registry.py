"""The registry: Rust's runtimes built in, Python's registered by decorator."""

import os

import pytest

import subrt


class EchoSpec(subrt.EnvironmentSpec, type="echo"):
    """A spec of a Python runtime, with a field of its own."""

    prefix: str = ""


@subrt.register_runtime("echo")
class EchoRuntime(subrt.SubmissionRuntime):
    """Streams back the command instead of running it."""

    def __init__(self, spec, working_dir, kwargs):
        self.spec, self.working_dir, self.kwargs = spec, working_dir, kwargs
        self.cleaned = False

    @classmethod
    def spawn(cls, environment, working_dir, static_assets=None, ports=None, mounts=None,
              env_vars=None, **kwargs):
        return cls(environment, working_dir, kwargs)

    def stream(self, command, env=None, stdin=None, timeout=None):
        text = f"{self.spec.prefix}{command}\n"
        yield subrt.RuntimeEvent(kind="stdout", text=text, data=text.encode(), phase="command")
        result = subrt.RuntimeResult(exit_code=0, stdout=text, stdout_bytes=text.encode())
        yield subrt.RuntimeEvent(kind="finished", result=result)

    def poll(self):
        return 0

    def kill(self):
        pass

    def cleanup(self):
        self.cleaned = True


def test_builtins_come_from_rust():
    registered = subrt.registered_runtimes()
    assert registered["local"] is subrt.LocalRuntime
    assert registered["docker"] is subrt.DockerRuntime
    assert issubclass(subrt.LocalRuntime, subrt.RustRuntime)
    assert registered["slurm"] is subrt.SlurmRuntime


def test_a_python_runtime_serves_its_type(tmp_path):
    spec = subrt.EnvironmentSpec.from_dict({"type": "echo", "name": "e", "prefix": "> "})
    assert isinstance(spec, EchoSpec) and spec.prefix == "> "
    with subrt.spawn_runtime(spec, tmp_path, is_evaluation=True, labels={"a": "b"}) as runtime:
        assert isinstance(runtime, EchoRuntime)
        assert runtime.execute("hello").stdout == "> hello\n", "execute defaults to the stream"
        # Forwarded untouched, as the seed's spawn_runtime does.
        assert runtime.kwargs == {"is_evaluation": True, "labels": {"a": "b"}}
    assert runtime.cleaned, "the context manager cleaned up"


def test_an_unknown_type_lists_the_registered_ones(tmp_path):
    with pytest.raises(subrt.SolutionRuntimeError) as error:
        subrt.spawn_runtime({"type": "kubernetes", "name": "k"}, tmp_path)
    registered = sorted(subrt.registered_runtimes())
    assert {"docker", "echo", "local", "slurm"} <= set(registered)
    assert str(error.value) == f"unknown runtime type `kubernetes` (registered types: {', '.join(registered)})"
    assert isinstance(error.value, subrt.ExecutionError)


def test_only_runtimes_can_be_registered():
    with pytest.raises(TypeError, match="not a SubmissionRuntime subclass"):
        subrt.register_runtime("bad")(dict)


def test_runtime_errors_carry_the_clis_messages(tmp_path, store):
    spec = subrt.DockerEnvironmentSpec(name="d", docker={"image": "i", "host": "unix:///nonexistent.sock"})
    with pytest.raises(subrt.SolutionRuntimeError, match=r"cannot reach the Docker daemon at unix:///nonexistent\.sock"):
        subrt.spawn_runtime(spec, tmp_path)
    with pytest.raises(subrt.SolutionRuntimeError, match=r"working directory .*missing.* is not usable"):
        subrt.spawn_runtime(subrt.LocalEnvironmentSpec(), tmp_path / "missing")


def test_a_missing_image_is_named(tmp_path, store, docker_image):
    spec = subrt.DockerEnvironmentSpec(name="d", docker={"image": "subrt-test-no-such-image:0"})
    with pytest.raises(subrt.SolutionRuntimeError, match=r"image `subrt-test-no-such-image:0`"):
        subrt.spawn_runtime(spec, tmp_path)


def test_a_session_on_the_slurm_cluster(tmp_path, store):
    import shutil
    import subprocess

    if "slurm" in os.environ.get("SUBRT_SKIP", "").split(","):
        pytest.skip("SUBRT_SKIP=slurm")
    # The cluster of assets/slurm/cluster.sh only, never another one.
    ours = "/run/subrt-slurm/slurm.conf"
    used = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    mine = os.path.exists(ours) and os.path.realpath(used) == os.path.realpath(ours)
    if not mine or shutil.which("sinfo") is None or subprocess.run(["sinfo"], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the cluster of assets/slurm/cluster.sh does not answer (SLURM_CONF={ours})")
        pytest.skip("no Slurm cluster of assets/slurm/cluster.sh")
    spec = subrt.EnvironmentSpec.from_dict(
        {"type": "slurm", "name": "cluster", "slurm": {"nodes": "n3", "time": "5"}}
    )
    with subrt.spawn_runtime(spec, tmp_path, labels={"on": "slurm"}) as runtime:
        assert isinstance(runtime, subrt.SlurmRuntime)
        assert runtime.info()["containment"] == "slurm-step"
        result = runtime.execute('echo "$SLURMD_NODENAME"; cat', stdin="in\n", timeout=30)
        assert (result.stdout, result.exit_code) == ("n3\nin\n", 0)
