"""subrt as a drop-in for the seed (SlopCodeBench's execution layer): its
names, its calls as its harness makes them, its configs and its models, on
the local runtime and in Docker. What still differs, on purpose, is the
README's compatibility table."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import pydantic
import pytest

import subrt
from conftest import containers_of


@pytest.fixture
def seed_spec(kind, request):
    """A spec as the seed's code makes one: its config models, no network
    setting (the seed's harness never sets one)."""
    if kind == "docker":
        image = request.getfixturevalue("docker_image")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", subrt.SeedDifferenceWarning)
            return subrt.DockerEnvironmentSpec(
                name="seed-docker", docker=subrt.DockerConfig(image=image, network="none")
            )
    return subrt.LocalEnvironmentSpec(name="seed-local")


# -- 1. the surface ----------------------------------------------------------

#: What the seed's `slop_code.execution` exports for running commands, and
#: what its design (SEED.md) names.
SEED_NAMES = [
    "StreamingRuntime", "ExecRuntime", "DockerStreamingRuntime", "DockerExecRuntime",
    "LocalStreamingRuntime", "LocalExecRuntime", "LaunchSpec", "RuntimeResult",
    "RuntimeEvent", "SolutionRuntimeError", "spawn_streaming_runtime", "spawn_exec_runtime",
    "EnvironmentSpec", "EnvironmentSpecType", "LocalEnvironmentSpec", "DockerEnvironmentSpec",
    "ExecutionError", "network_mode_for_address", "InputFileReadError", "InputFileWriteError",
    "SubmissionRuntime", "spawn_runtime", "register_runtime", "RUNTIME_REGISTRY",
    "register_streaming_runtime", "register_exec_runtime", "STREAMING_RUNTIME_REGISTRY",
    "EXEC_RUNTIME_REGISTRY", "EnvironmentConfig", "SetupConfig", "CommandConfig",
    "LocalConfig", "SnapshotConfig", "DockerConfig",
]  # fmt: skip


def test_every_name_of_the_seeds_execution_layer_is_there():
    missing = [name for name in SEED_NAMES if not hasattr(subrt, name)]
    assert missing == []
    assert issubclass(subrt.SolutionRuntimeError, subrt.ExecutionError)
    assert issubclass(subrt.InputFileReadError, subrt.ExecutionError)
    assert subrt.RUNTIME_REGISTRY["local"] is subrt.LocalStreamingRuntime
    assert subrt.EXEC_RUNTIME_REGISTRY["docker"] is subrt.DockerExecRuntime
    assert subrt.network_mode_for_address("127.0.0.1") == "host"
    adapter = pydantic.TypeAdapter(subrt.EnvironmentSpecType)
    assert type(adapter.validate_python({"type": "local", "name": "x"})) is subrt.LocalEnvironmentSpec


def test_models_are_pydantic_models_as_the_seeds():
    for model in (subrt.EnvironmentSpec, subrt.DockerEnvironmentSpec, subrt.LaunchSpec,
                  subrt.RuntimeResult, subrt.RuntimeEvent, subrt.DockerConfig):
        assert issubclass(model, pydantic.BaseModel)
        assert model.model_json_schema()["properties"]
    with pytest.raises(pydantic.ValidationError, match="kind"):
        subrt.RuntimeEvent(kind="bogus")
    result = subrt.RuntimeResult(
        exit_code=0, stdout="o", stderr="", setup_stdout="", setup_stderr="", elapsed=0.1, timed_out=False
    )
    assert subrt.RuntimeResult.model_validate(result.model_dump()) == result
    assert result.model_copy(update={"exit_code": 3}).exit_code == 3
    spec = subrt.DockerEnvironmentSpec(name="d", docker={"image": "i", "network": "bridge"})
    again = subrt.EnvironmentSpec.model_validate(spec.model_dump())
    assert type(again) is subrt.DockerEnvironmentSpec and again == spec
    # An error still names the field, checked by the Rust types underneath.
    with pytest.raises(ValueError, match=r"docker\.memory `lots`"):
        subrt.DockerEnvironmentSpec(name="d", docker={"image": "i", "memory": "lots"})
    # A spec made with the seed's models is told of subrt's network default
    # as one loaded from a file is.
    with pytest.warns(subrt.SeedDifferenceWarning, match="network"):
        subrt.DockerEnvironmentSpec(name="from-models", docker=subrt.DockerConfig(image="i"))

    class WithHelper(subrt.DockerEnvironmentSpec):
        def helper(self):
            return self.name

    assert type(subrt.EnvironmentSpec.from_dict(spec.model_dump())) is subrt.DockerEnvironmentSpec, (
        "a subclass that names no type of its own takes no type over"
    )
    assert WithHelper(name="h", docker={"image": "i", "network": "none"}).helper() == "h"
    launch = subrt.LaunchSpec(working_dir=".", environment={"type": "local", "name": "l"})
    assert isinstance(launch.environment, subrt.LocalEnvironmentSpec)
    assert launch.model_dump()["ports"] == {}


def test_the_seeds_spec_helpers(monkeypatch):
    spec = subrt.DockerEnvironmentSpec(
        name="py",
        docker={"image": "python:3.12", "network": None},
        environment={"env": {"A": "1"}},
        setup={"commands": ["a"], "eval_commands": ["b"], "resume_commands": ["c"]},
        commands={"entry_file": "{entry_file}.py", "command": "uv run", "agent_command": "python"},
    )
    assert spec.get_full_env({"B": "2"}) == {"A": "1", "B": "2"}
    assert spec.get_setup_commands() == ["a"] and spec.get_setup_commands(True) == ["a", "b"]
    assert spec.get_resume_commands() == ["c"]
    assert spec.get_command("main") == "uv run main.py"
    assert spec.get_command("main", is_agent_run=True) == "python main.py"
    assert spec.effective_network_mode() == "bridge"
    assert spec.get_effective_address("127.0.0.1") == "0.0.0.0"
    assert spec.get_eval_user() == "1000:1000"
    monkeypatch.delenv("HUID", raising=False)
    assert spec.get_actual_user() == "0:0"
    monkeypatch.setenv("HUID", "1234")
    monkeypatch.setenv("HGID", "99")
    assert spec.get_actual_user() == "1234:99"
    assert spec.get_base_image() == "python:3.12"
    assert ".venv/*" in spec.get_ignore_globs()


# -- 2. calls as the seed's callers make them --------------------------------


def test_spawn_forwards_keywords_untouched_to_a_python_runtime(tmp_path):
    @subrt.register_runtime("seed-kwargs")
    class Recorder(subrt.SubmissionRuntime):
        @classmethod
        def spawn(cls, environment, working_dir, *, extra_flag=None, **kwargs):
            runtime = cls()
            runtime.got = {"environment": environment, "working_dir": working_dir,
                           "extra_flag": extra_flag, **kwargs}
            return runtime

        def stream(self, command, env=None, stdin=None, timeout=None):
            yield subrt.RuntimeEvent(kind="finished", result=subrt.RuntimeResult(exit_code=0))

        def poll(self):
            return 0

        def kill(self):
            pass

        def cleanup(self):
            pass

    class RecorderSpec(subrt.EnvironmentSpec):
        type: str = "seed-kwargs"

    spec = RecorderSpec(name="r")
    runtime = subrt.spawn_runtime(
        environment=spec, working_dir=tmp_path, image="img", extra_flag=7, ports={}
    )
    assert runtime.got == {
        "environment": spec, "working_dir": tmp_path, "extra_flag": 7, "image": "img", "ports": {},
    }


def test_image_and_user_keywords_choose_the_container(tmp_path, store, docker_image):
    subprocess.run(["docker", "tag", docker_image, "subrt-test-seed-image:1"], check=True)
    spec = subrt.DockerEnvironmentSpec(
        name="seed-image", docker={"image": "subrt-no-such-image:never", "network": "none"}
    )
    try:
        with subrt.spawn_runtime(spec, tmp_path, image="subrt-test-seed-image:1", user="4321:4321") as runtime:
            result = runtime.execute("id -u; id -g")
            assert result.stdout == "4321\n4321\n", result.stderr
            assert runtime.spec.docker.image == "subrt-test-seed-image:1"
    finally:
        # The tag only: the image keeps its own.
        subprocess.run(["docker", "rmi", "subrt-test-seed-image:1"], capture_output=True)


def test_unknown_keywords_are_warned_about_once_and_the_session_runs(kind, seed_spec, tmp_path, store):
    with pytest.warns(RuntimeWarning, match="`agent_name=` is not an argument"):
        runtime = subrt.spawn_runtime(seed_spec, tmp_path, agent_name="x")
    with runtime:
        assert runtime.execute("true").exit_code == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        subrt.spawn_runtime(seed_spec, tmp_path, agent_name="x").cleanup()


def test_an_argv_list_runs_exactly_those_words(kind, seed_spec, tmp_path, store):
    argv = ["sh", "-c", 'printf "%s|" "$@"', "sh", "a  b", "$HOME", "*", "'q'"]
    with subrt.spawn_runtime(seed_spec, tmp_path) as runtime:
        assert runtime.execute(argv).stdout == "a  b|$HOME|*|'q'|"
        events = list(runtime.stream(argv))
        assert events[-1].result.stdout == "a  b|$HOME|*|'q'|"
    exec_runtime = subrt.spawn_exec_runtime(seed_spec, argv, working_dir=tmp_path)
    with exec_runtime:
        assert exec_runtime.execute({}, None, 10).stdout == "a  b|$HOME|*|'q'|"


def test_a_class_refuses_a_spec_of_another_type(tmp_path, store):
    docker = subrt.DockerEnvironmentSpec(name="d", docker={"image": "i", "network": "none"})
    with pytest.raises(ValueError, match="^Invalid environment spec for local runtime"):
        subrt.LocalRuntime.spawn(environment=docker, working_dir=tmp_path)
    with pytest.raises(ValueError, match="^Invalid environment spec for docker runtime"):
        subrt.DockerStreamingRuntime.spawn(environment=subrt.LocalEnvironmentSpec(), working_dir=tmp_path)


def test_runtime_spec_cwd_and_container(kind, seed_spec, tmp_path, store):
    with subrt.spawn_runtime(seed_spec, tmp_path) as runtime:
        assert runtime.spec == seed_spec
        assert Path(runtime.cwd) == tmp_path
        if kind == "docker":
            assert containers_of(runtime.run_id) == [runtime.container.id[:12]]
            assert runtime.container.short_id == runtime.container.id[:12]


def test_runtimes_are_made_directly_as_the_seeds_tests_make_them(kind, seed_spec, tmp_path, store):
    if kind == "docker":
        runtime = subrt.DockerStreamingRuntime(
            spec=seed_spec, working_dir=tmp_path, static_assets={}, is_evaluation=False,
            ports={}, mounts={}, env_vars={"A": "a"}, setup_command=None,
        )
        bound = subrt.DockerExecRuntime(environment=seed_spec, working_dir=tmp_path, command="cat")
    else:
        runtime = subrt.LocalStreamingRuntime(environment=seed_spec, working_dir=tmp_path, env_vars={"A": "a"})
        bound = subrt.LocalExecRuntime(environment=seed_spec, working_dir=tmp_path, command="cat")
    with runtime, bound:
        assert runtime.execute("echo $A").stdout == "a\n"
        assert bound.execute({}, "in", 10).stdout == "in"


def test_the_seeds_stream_signature_takes_a_timeout_third(kind, seed_spec, tmp_path, store):
    with subrt.spawn_runtime(seed_spec, tmp_path) as runtime:
        events = list(runtime.stream("sleep 5", {}, 0.5))
    result = events[-1].result
    assert result.timed_out and result.elapsed < 4


# -- 3. the seed's configs ---------------------------------------------------

#: The fields of the seed's own environment configs
#: (configs/environments/*.yaml), on images of this machine.
SEED_DOCKER_YAML = """\
type: docker
name: python3.12
docker:
  image: ghcr.io/astral-sh/uv:python3.12-trixie-slim
  workdir: /workspace
  mount_workspace: true
environment:
  env:
    UV_CACHE_DIR: /tmp/uv-cache
    PIP_CACHE_DIR: /tmp/pip-cache-dir
    PIP_CONFIG_FILE: /tmp/pip-conf
setup:
  eval_commands:
    - uv init
    - uv add -r requirements.txt
  resume_commands:
    # Create venv and install deps using standard Python (agent uses pip, not uv)
    - python -m venv .venv || true
    - .venv/bin/pip install -r requirements.txt 2>/dev/null || true
commands:
  entry_file: "{entry_file}.py"
  command: uv run
  agent_command: "python"
"""

SEED_LOCAL_YAML = """\
type: local
name: python
environment:
  include_os_env: true
setup:
  eval_commands:
    - uv init
    - uv add -r requirements.txt
commands:
  entry_file: "{entry_file}.py"
  command: "uv run"
  agent_command: "python"
"""


def test_the_seeds_shipped_configs_load_and_run(tmp_path, store, docker_image):
    (tmp_path / "docker.yaml").write_text(SEED_DOCKER_YAML)
    (tmp_path / "local.yaml").write_text(SEED_LOCAL_YAML)
    with pytest.warns(subrt.SeedDifferenceWarning, match=r"docker\.network: bridge"):
        docker = subrt.load_config(tmp_path / "docker.yaml")["python3.12"]
    local = subrt.load_config(tmp_path / "local.yaml")["python"]
    assert docker.get_command("main") == "uv run main.py"
    assert docker.get_resume_commands()[0] == "python -m venv .venv || true"
    assert docker.environment.env["UV_CACHE_DIR"] == "/tmp/uv-cache"
    work = tmp_path / "work"
    work.mkdir()
    with subrt.spawn_runtime(docker, work, image=docker_image, resume=True) as runtime:
        result = runtime.execute("echo $UV_CACHE_DIR")
        assert result.stdout == "/tmp/uv-cache\n" and result.exit_code == 0, result
    with subrt.spawn_runtime(local, work) as runtime:
        assert runtime.execute(local.get_command("main", is_agent_run=True).replace("python", "echo")).stdout == "main.py\n"


def test_a_yaml_error_names_the_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: docker\nname: x\ndocker:\n  image: i\n  memroy: 1g\n")
    with pytest.raises(ValueError, match=r"bad\.yaml:5:3: docker\.memroy: unknown field"):
        subrt.load_config(bad)
    bad.write_text("type: local\nname: [x\n")
    with pytest.raises(ValueError, match=r"bad\.yaml:\d+:\d+: "):
        subrt.load_config(bad)


def test_resume_commands_run_when_a_session_resumes(kind, seed_spec, tmp_path, store):
    spec = seed_spec.model_copy(
        update={"setup": subrt.SetupConfig(commands=["echo setup >> log"], resume_commands=["echo resumed >> log"])}
    )
    with subrt.spawn_runtime(spec, tmp_path) as runtime:
        runtime.execute("true")
    assert (tmp_path / "log").read_text() == "setup\n"
    with subrt.spawn_runtime(spec, tmp_path, resume=True) as runtime:
        assert runtime.execute("true").setup_stdout == ""
    assert (tmp_path / "log").read_text() == "setup\nsetup\nresumed\n"


def test_seed_fields_mean_what_they_mean_there(tmp_path, store, docker_image):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("from the host\n")
    work = tmp_path / "work"
    work.mkdir()
    spec = subrt.EnvironmentSpec.from_dict({
        "type": "docker", "name": "fields",
        "docker": {"image": docker_image, "binary": "docker", "network": None,
                   "extra_mounts": {str(data): "/data"}},
        "local": {"shell": None},
        "snapshot": {"compression": "xz"},
    })
    assert spec.docker.extra_mounts == {str(data): "/data"}, "kept in the shape given"
    assert (spec.local.shell, spec.snapshot.compression) == ("/bin/sh", "xz")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    # The launch's mounts in the Docker SDK's shape, as the seed passes them.
    with subrt.spawn_runtime(spec, work, mounts={str(out): {"bind": "/out"}}) as runtime:
        result = runtime.execute("cat /data/f; touch /out/made; touch /data/g")
        assert result.stdout == "from the host\n"
        assert (out / "made").exists(), "a {bind} mount without mode is read-write"
        assert result.exit_code != 0, "a mapping's path mount is read-only"
        mode = subprocess.run(
            ["docker", "inspect", "-f", "{{.HostConfig.NetworkMode}}", runtime.container.id],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    assert mode == "bridge", "network: null is Docker's default network"


def test_docker_users_follow_the_seeds_rules(tmp_path, store, docker_image, monkeypatch):
    spec = subrt.DockerEnvironmentSpec(name="users", docker={"image": docker_image, "network": "none"})
    monkeypatch.delenv("HUID", raising=False)
    monkeypatch.delenv("HGID", raising=False)
    tmp_path.chmod(0o777)
    with subrt.spawn_runtime(spec, tmp_path) as runtime:
        assert runtime.execute("id -u").stdout == "0\n", "the image's user (root)"
    with subrt.spawn_runtime(spec, tmp_path, is_evaluation=True) as runtime:
        assert runtime.execute("id -u; id -g").stdout == "1000\n1000\n", "an evaluation's user"
    monkeypatch.setenv("HUID", "2345")
    monkeypatch.setenv("HGID", "2346")
    with subrt.spawn_runtime(spec, tmp_path) as runtime:
        assert runtime.execute("id -u; id -g").stdout == "2345\n2346\n", "$HUID:$HGID"


# -- a harness written against the seed --------------------------------------


def seed_harness(spec, workdir, image):
    """Calls as SlopCodeBench's harness makes them, unchanged."""
    from subrt import (  # the seed: from slop_code.execution import ...
        RuntimeResult,
        spawn_exec_runtime,
        spawn_streaming_runtime,
    )

    runtime = spawn_streaming_runtime(
        environment=spec,
        working_dir=workdir,
        static_assets=None,
        ports={},
        mounts={},
        env_vars={"GREETING": "hello"},
        setup_command=None,
        image=image,
        user="0:0",
        is_evaluation=False,
        disable_setup=False,
    )
    try:
        events = list(runtime.stream("echo $GREETING; echo oops >&2", {}, 30))
        kinds = [event.kind for event in events]
        finished = events[-1].result
        report = {
            "kinds": kinds,
            "result": finished.model_dump(),
            "image": runtime.spec.docker.image,
            "container": runtime.container.id,
            "cwd": str(runtime.cwd),
            "poll": runtime.poll(),
        }
    finally:
        runtime.cleanup()
    exec_runtime = spawn_exec_runtime(
        environment=spec, command="cat", working_dir=workdir, image=image, is_evaluation=False
    )
    try:
        result: RuntimeResult = exec_runtime.execute({}, "to stdin", 30)
        report["exec"] = json.loads(result.model_dump_json())
    finally:
        exec_runtime.cleanup()
    return report


def test_a_harness_written_against_the_seed_runs_unchanged(tmp_path, store, docker_image):
    spec = subrt.DockerEnvironmentSpec(
        name="harness", docker=subrt.DockerConfig(image="slop-code:harness", network="none")
    )
    report = seed_harness(spec, tmp_path, docker_image)
    assert report["kinds"][-1] == "finished" and set(report["kinds"][:-1]) == {"stdout", "stderr"}
    assert (report["result"]["stdout"], report["result"]["stderr"]) == ("hello\n", "oops\n")
    assert report["result"]["exit_code"] == 0 and report["poll"] == 0
    assert report["image"] == docker_image and len(report["container"]) == 64
    assert report["cwd"] == str(tmp_path)
    assert (report["exec"]["stdout"], report["exec"]["exit_code"]) == ("to stdin", 0)
