"""Specs: the fields and defaults of config.toml, errors that name the field."""

import pickle

import pydantic
import pytest

import subrt
from conftest import REPO


def test_defaults_are_config_toml_defaults():
    spec = subrt.LocalEnvironmentSpec()
    assert (spec.name, spec.type) == ("local", "local")
    assert spec.environment.env == {}
    assert spec.environment.include_os_env is False
    assert spec.setup.commands == [] and spec.setup.eval_commands == []
    assert spec.local.shell == "/bin/sh"
    docker = subrt.DockerEnvironmentSpec(name="py", docker={"image": "python:3.12-slim"})
    assert docker.docker.image == "python:3.12-slim"
    assert docker.docker["workdir"] == "/workspace"
    assert docker.docker.network == "none"


def test_unknown_field_names_the_field():
    with pytest.raises(ValueError, match=r"^docker\.imagee: unknown field `imagee`"):
        subrt.DockerEnvironmentSpec(name="d", docker={"imagee": "x"})
    with pytest.raises(ValueError, match=r"^local\.shell: invalid type"):
        subrt.LocalEnvironmentSpec(local={"shell": 3})
    with pytest.raises(ValueError, match=r"^environment\.env\.A: invalid type"):
        subrt.LocalEnvironmentSpec(environment={"env": {"A": 1}})


def test_a_docker_spec_needs_its_image():
    with pytest.raises(ValueError, match=r"no `docker` table"):
        subrt.DockerEnvironmentSpec(name="d")
    with pytest.raises(ValueError, match=r"^docker: missing field `image`"):
        subrt.DockerEnvironmentSpec(name="d", docker={})


def test_from_dict_dispatches_on_type():
    local = subrt.EnvironmentSpec.from_dict({"type": "local", "name": "l"})
    docker = subrt.EnvironmentSpec.from_dict({"type": "docker", "name": "d", "docker": {"image": "i"}})
    assert type(local) is subrt.LocalEnvironmentSpec
    assert type(docker) is subrt.DockerEnvironmentSpec
    other = subrt.EnvironmentSpec.from_dict({"type": "elsewhere", "name": "e"})
    assert other.type == "elsewhere"
    with pytest.raises(ValueError, match="type: missing"):
        subrt.EnvironmentSpec.from_dict({"name": "x"})
    with pytest.raises(ValueError, match="describes type 'local', not 'docker'"):
        subrt.LocalEnvironmentSpec(type="docker")


def test_specs_round_trip_and_pickle():
    spec = subrt.LocalEnvironmentSpec(name="x", setup={"commands": ["echo hi"]})
    assert subrt.EnvironmentSpec.from_dict(spec.to_dict()) == spec
    assert pickle.loads(pickle.dumps(spec)) == spec
    # Read-only, as the seed's frozen models are.
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        spec.name = "y"


def test_load_config_reads_the_shipped_config():
    environments = subrt.load_config(REPO / "config.toml")
    assert "local" in environments
    assert environments["local"].type == "local"
    for name, spec in environments.items():
        assert spec.name == name


def test_load_config_errors_name_file_line_and_column(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[[environments]]\nname = "x"\ntype = "local"\nshel = "/bin/sh"\n')
    with pytest.raises(ValueError, match=r"config\.toml:4:1: unknown field `shel`"):
        subrt.load_config(path)
    with pytest.raises(FileNotFoundError):
        subrt.load_config(tmp_path / "missing.toml")
