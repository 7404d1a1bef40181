"""Environment specs: where and how a submission runs.

A spec is one ``[[environments]]`` table of ``config.toml`` (or one of the
seed's YAML environment files), with the same fields and defaults. Specs
are pydantic models, as the seed's are (``model_dump``, ``model_validate``,
``model_copy``, a JSON schema), and the Rust library checks and completes
them underneath, so a spec means the same thing here, in ``config.toml`` and
on the command line, and an error names the field.

>>> spec = DockerEnvironmentSpec(name="py", docker={"image": "python:3.12-slim"})
>>> spec.docker.workdir
'/workspace'
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import (
    Any,
    ClassVar,
    Dict,
    FrozenSet,
    List,
    Literal,
    Mapping,
    Optional,
    Set,
    Tuple,
    Type,
    Union,
)

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from . import _native

__all__ = [
    "CommandConfig",
    "DockerConfig",
    "DockerEnvironmentSpec",
    "EnvironmentConfig",
    "EnvironmentSpec",
    "Limits",
    "LocalConfig",
    "LocalEnvironmentSpec",
    "Mount",
    "SandboxConfig",
    "SeedDifferenceWarning",
    "SetupConfig",
    "SlurmConfig",
    "SlurmContainer",
    "SlurmEnvironmentSpec",
    "SnapshotConfig",
    "load_config",
    "network_mode_for_address",
]


class SeedDifferenceWarning(UserWarning):
    """A config written for the seed loads, and subrt keeps a different
    default on purpose; the message names the setting that gives the seed's
    behaviour."""


class _Section(BaseModel):
    """A table of a spec: read-only, unknown fields refused; its fields read
    as attributes and, as before the specs were pydantic models, as keys
    (``spec.docker["image"]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __getitem__(self, name: str) -> Any:
        if name not in type(self).model_fields:
            raise KeyError(name)
        return getattr(self, name)


class EnvironmentConfig(_Section):
    """``environment``: the variables of every command."""

    #: Variables set for every command.
    env: Dict[str, str] = Field(default_factory=dict)
    #: Start from the environment of the process that runs subrt.
    include_os_env: bool = False


class SetupConfig(_Section):
    """``setup``: commands run once per session before its first command."""

    #: Run first.
    commands: List[str] = Field(default_factory=list)
    #: Run after ``commands`` when the launch is an evaluation.
    eval_commands: List[str] = Field(default_factory=list)
    #: Run after the others when the session resumes from a snapshot
    #: (``spawn_runtime(..., resume=True)``).
    resume_commands: List[str] = Field(default_factory=list)


class CommandConfig(_Section):
    """``commands``: how a submission's command line is composed."""

    #: Format of the entry file; ``{entry_file}`` is replaced by its name.
    entry_file: str = "{entry_file}"
    #: Program that evaluates the entry file.
    command: str = ""
    #: Program an agent uses instead of ``command``.
    agent_command: Optional[str] = None


class SnapshotConfig(_Section):
    """``snapshot``: what the seed's harness archives of a workspace between
    checkpoints. Kept so that its configs load and read back; subrt itself
    archives nothing."""

    keep_globs: Optional[Set[str]] = None
    ignore_globs: Set[str] = Field(
        default_factory=lambda: {"*.pyc", "venv/*", ".venv/*", ".evaluation_tests/*"}
    )
    compression: str = "gz"
    archive_save_dir: Optional[Path] = None


class SandboxConfig(_Section):
    """``local.sandbox``: the view a sandboxed local session gets."""

    rootfs: Optional[str] = None
    image: Optional[str] = None
    expose: Optional[List[str]] = None
    hide: List[str] = Field(default_factory=list)
    network: bool = False
    user: Optional[str] = None


class LocalConfig(_Section):
    """``local``: settings of the local runtime."""

    #: Shell of each command (``<shell> -c <command>``).
    shell: str = "/bin/sh"
    requires_tty: bool = False
    containment: Literal["auto", "pid-namespace", "process-group"] = "auto"
    isolation: Literal["process", "sandbox"] = "process"
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)


class Mount(_Section):
    """A bind mount: host ``source``, container ``target``, ``mode``."""

    source: str
    target: str
    mode: Literal["ro", "rw"] = "ro"


class DockerConfig(_Section):
    """``docker``: settings of the Docker runtime."""

    #: Image of the container.
    image: str
    #: The seed's Docker CLI; subrt talks to the daemon's API (``host``).
    binary: str = "docker"
    workdir: str = "/workspace"
    mount_workspace: bool = True
    #: A list of :class:`Mount`, or the seed's mapping of host path to a
    #: container path (read-only) or to ``{"bind": ..., "mode": ...}``,
    #: kept in the shape it was given.
    extra_mounts: Union[List[Mount], Dict[str, Union[str, Dict[str, str]]]] = Field(
        default_factory=list
    )
    #: Docker network mode: ``"none"`` (subrt's default: loopback only),
    #: ``"bridge"`` (Docker's, the seed's; ``network: null`` means it),
    #: ``"host"`` or a network's name.
    network: str = "none"
    user: Optional[str] = None
    keep_container_after_clean: bool = False
    memory: Optional[str] = None
    cpus: Optional[float] = None
    pids_limit: Optional[int] = None
    host: Optional[str] = None


class SlurmContainer(_Section):
    """``slurm.container``: an OCI bundle or a local image steps run in."""

    bundle: Optional[str] = None
    image: Optional[str] = None
    cache: Optional[str] = None


class SlurmConfig(_Section):
    """``slurm``: what each session's allocation asks for."""

    partition: Optional[str] = None
    account: Optional[str] = None
    time: str = "60"
    mem: Optional[str] = None
    cpus: Optional[int] = None
    nodes: Optional[str] = None
    constraint: Optional[str] = None
    extra_args: List[str] = Field(default_factory=list)
    container: Optional[SlurmContainer] = None
    #: In a batch, hand a cleanly ended session's allocation on to the next
    #: session asking for the same; ``False``: a job per submission.
    reuse_allocations: bool = True


class Limits(_Section):
    """``limits``: what a session may use, where its runtime can apply it."""

    memory: Optional[str] = None
    pids: Optional[int] = None
    cpus: Optional[float] = None
    tmp: Optional[str] = None
    file_size: Optional[str] = None
    open_files: Optional[int] = None


class _Checked(dict):
    """Fields the Rust library checked and completed already."""


#: The fields of a spec the Rust library reads; a subclass's own fields
#: (a Python runtime's) are pydantic's alone.
_CORE_FIELDS: FrozenSet[str] = frozenset(
    {
        "type", "name", "environment", "setup", "commands", "snapshot",
        "local", "docker", "slurm", "limits",
    }
)  # fmt: skip

#: Seed configs told once of each default subrt keeps on purpose.
_TOLD: Set[Tuple[str, str]] = set()


class EnvironmentSpec(BaseModel):
    """One environment: ``name``, ``type``, ``environment`` (``env``,
    ``include_os_env``), ``setup`` (``commands``, ``eval_commands``,
    ``resume_commands``), ``commands``, ``snapshot``, ``local``,
    ``docker``, ``slurm`` and ``limits``.

    ``EnvironmentSpec.from_dict`` (or ``model_validate`` on the base class)
    picks the class of the dict's ``type``. A Python runtime's spec is a
    subclass, with fields of its own, for a type of its own: ``class
    EchoSpec(EnvironmentSpec): type: Literal["echo"] = "echo"`` (or
    ``class EchoSpec(EnvironmentSpec, type="echo")``).

    :raises ValueError: a field is unknown or has the wrong type; the message
        names it (``docker.memroy: unknown field ...``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The runtime type a subclass describes (``None`` on the base class).
    spec_type: ClassVar[Optional[str]] = None
    _by_type: ClassVar[Dict[str, Type["EnvironmentSpec"]]] = {}

    type: str
    name: str
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    setup: SetupConfig = Field(default_factory=SetupConfig)
    commands: CommandConfig = Field(default_factory=CommandConfig)
    snapshot: SnapshotConfig = Field(default_factory=SnapshotConfig)
    local: LocalConfig = Field(default_factory=LocalConfig)
    docker: Optional[DockerConfig] = None
    slurm: Optional[SlurmConfig] = None
    limits: Limits = Field(default_factory=Limits)

    #: ``[store]`` of the config the spec was loaded from, if it was.
    _store_settings: Optional["StoreSettings"] = PrivateAttr(default=None)

    def __init_subclass__(cls, type: Optional[str] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type is not None:
            cls.spec_type = type

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        default = cls.model_fields["type"].default
        own = cls.__dict__.get("__annotations__")
        if own is None and sys.version_info >= (3, 10):
            own = getattr(cls, "__annotations__", {})  # the class's own only
        if "type" in (own or {}) and isinstance(default, str):
            cls.spec_type = default  # the seed's style: `type: Literal["x"] = "x"`
        # Only a class that names its type serves it in `from_dict`: a
        # subclass of DockerEnvironmentSpec that adds a helper does not
        # take "docker" over.
        if "spec_type" in cls.__dict__ and cls.spec_type is not None:
            EnvironmentSpec._by_type[cls.spec_type] = cls

    def __init__(self, /, **fields: Any) -> None:
        # Checked here rather than in the validator below, so that an error
        # of the Rust check is the plain ValueError that names the field,
        # not wrapped in pydantic's report.
        checked = type(self)._check(fields)
        self.__pydantic_validator__.validate_python(checked, self_instance=self)

    @model_validator(mode="before")
    @classmethod
    def _checked_before_validation(cls, data: Any) -> Any:
        if isinstance(data, _Checked):
            return dict(data)
        if isinstance(data, Mapping):
            return cls._check(data)
        return data

    @classmethod
    def _check(cls, fields: Mapping[str, Any]) -> "_Checked":
        """``fields`` checked by the Rust library, with its defaults."""
        docker = fields.get("docker")
        network_given = (
            "network" in docker.model_fields_set
            if isinstance(docker, DockerConfig)
            else isinstance(docker, Mapping) and "network" in docker
        )
        fields = _plain(fields)
        kind = fields.get("type", cls.spec_type)
        if kind is None:
            raise ValueError('type: missing (e.g. "local" or "docker")')
        if cls.spec_type is not None and kind != cls.spec_type:
            raise ValueError(
                f"type: {cls.__name__} describes type {cls.spec_type!r}, not {kind!r}"
            )
        fields["type"] = kind
        fields.setdefault("name", kind)
        own = set(cls.model_fields) - _CORE_FIELDS
        core = {k: v for k, v in fields.items() if k not in own}
        try:
            text = json.dumps(core)
        except TypeError as e:
            raise ValueError(f"a field is not a plain value: {e}") from None
        checked = _Checked(json.loads(_native.check_spec(text)))
        checked.update((k, v) for k, v in fields.items() if k in own)
        docker = fields.get("docker")
        if isinstance(docker, Mapping):
            if isinstance(docker.get("extra_mounts"), Mapping):
                # Checked; kept in the seed's shape, which its code reads.
                checked["docker"]["extra_mounts"] = docker["extra_mounts"]
            if not network_given and kind == "docker":
                _tell(
                    fields["name"],
                    "network",
                    "no network (subrt's default, docker.network = \"none\"); the seed "
                    "used Docker's bridge: set docker.network: bridge (or null) for it",
                )
        return checked

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EnvironmentSpec":
        """The spec of ``data``, as the class registered for its ``type``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an environment spec is a dict, not {type(data).__name__}")
        kind = data.get("type")
        if not isinstance(kind, str):
            raise ValueError('type: missing (e.g. "local" or "docker")')
        target = EnvironmentSpec._by_type.get(kind, EnvironmentSpec)
        return target(**dict(data))

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> "EnvironmentSpec":  # type: ignore[override]
        """As pydantic's; on the base class, the class of ``obj``'s ``type``."""
        if cls is EnvironmentSpec and isinstance(obj, Mapping):
            target = EnvironmentSpec._by_type.get(obj.get("type"), EnvironmentSpec)  # type: ignore[arg-type]
            if target is not EnvironmentSpec:
                return target.model_validate(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    def to_dict(self) -> Dict[str, Any]:
        """Every field, defaults included, as plain dicts and lists."""
        return self.model_dump(mode="json")

    def _core_json(self) -> str:
        """The fields the Rust library reads, as JSON."""
        return json.dumps(self.model_dump(mode="json", include=set(_CORE_FIELDS)))

    def __reduce__(self):
        return (EnvironmentSpec.from_dict, (self.to_dict(),))

    # The seed's helpers, with its names and meaning.

    def get_full_env(self, other_env: Mapping[str, str]) -> Dict[str, str]:
        """The variables of a command: the OS environment when
        ``include_os_env``, the spec's, then ``other_env``."""
        env = dict(os.environ) if self.environment.include_os_env else {}
        env.update(self.environment.env)
        env.update(other_env)
        return env

    def get_setup_commands(self, is_evaluation: bool = False) -> List[str]:
        """``setup.commands``, then ``eval_commands`` for an evaluation."""
        commands = list(self.setup.commands)
        if is_evaluation:
            commands.extend(self.setup.eval_commands)
        return commands

    def get_resume_commands(self) -> List[str]:
        """``setup.resume_commands``."""
        return list(self.setup.resume_commands)

    def format_entry_file(self, entry_file: str) -> str:
        """``commands.entry_file`` with ``{entry_file}`` replaced.

        :raises ValueError: the format is not one of ``entry_file``, or the
            result is empty.
        """
        try:
            formatted = self.commands.entry_file.format(entry_file=entry_file)
        except (KeyError, IndexError) as e:
            raise ValueError(
                "commands.entry_file must be a format string taking 'entry_file' "
                f"as a keyword: {e}"
            ) from None
        if not formatted:
            raise ValueError("the formatted entry command is empty")
        return formatted

    def get_command(self, entry_file: str, *, is_agent_run: bool = False) -> str:
        """The command line that runs ``entry_file``: ``commands.command``, or
        ``agent_command`` for an agent's run when it is set."""
        entry = self.format_entry_file(entry_file=entry_file)
        if is_agent_run and self.commands.agent_command is not None:
            command = self.commands.agent_command.strip()
        else:
            command = self.commands.command.strip()
        return f"{command} {entry}".strip()

    def get_ignore_globs(self, static_assets: Optional[Mapping[str, Any]] = None) -> Set[str]:
        """What a snapshot leaves out: ``snapshot.ignore_globs``,
        ``tests/assets`` and the static assets' save paths."""
        globs = set(self.snapshot.ignore_globs) | {"tests/assets", "tests/assets/*"}
        for asset in (static_assets or {}).values():
            save_path = Path(getattr(asset, "save_path", "")).as_posix().rstrip("/")
            absolute = getattr(asset, "absolute_path", None)
            if absolute is not None and Path(absolute).is_dir():
                globs.update({save_path, f"{save_path}/*"})
            elif save_path:
                globs.add(save_path)
        return globs

    def get_archive_save_dir(self) -> Path:
        """``snapshot.archive_save_dir``, else a fresh folder name in the
        temporary folder."""
        if self.snapshot.archive_save_dir is None:
            return Path(tempfile.gettempdir(), f"slop_code_{uuid.uuid4().hex[:8]}")
        return self.snapshot.archive_save_dir


class LocalEnvironmentSpec(EnvironmentSpec):
    """An environment of the local runtime: commands run on this machine,
    each session in its own PID namespace where the kernel allows one."""

    type: Literal["local"] = "local"  # type: ignore[assignment]
    name: str = "local"


class DockerEnvironmentSpec(EnvironmentSpec):
    """An environment of the Docker runtime: one container per session;
    ``docker={"image": ...}`` is required."""

    type: Literal["docker"] = "docker"  # type: ignore[assignment]
    name: str = "docker"
    docker: DockerConfig  # type: ignore[assignment]

    def get_eval_user(self) -> str:
        """Who an evaluation's commands run as: ``docker.user``, else
        ``1000:1000``."""
        return self.docker.user or "1000:1000"

    def get_actual_user(self) -> str:
        """Who other commands run as: ``docker.user``, else ``$HUID:$HGID``
        when both are set, else ``0:0`` (subrt: the image's ``USER``, which
        is root unless the image says otherwise)."""
        if self.docker.user:
            return self.docker.user
        uid, gid = os.getenv("HUID"), os.getenv("HGID")
        if uid and gid:
            return f"{uid}:{gid}"
        return "0:0"

    def effective_network_mode(self) -> str:
        """``docker.network``; ``host`` is ``bridge`` off Linux, as Docker
        Desktop has no host network."""
        if self.docker.network == "host" and platform.system() != "Linux":
            return "bridge"
        return self.docker.network

    def get_effective_address(self, address: str) -> str:
        """The address a server in the container binds to: on a bridge
        network, loopback is all interfaces, so a published port reaches it."""
        if self.effective_network_mode() == "bridge" and address in ("127.0.0.1", "localhost"):
            return "0.0.0.0"
        return address

    def get_base_image(self) -> str:
        """The image sessions run: ``docker.image`` (the seed built an image
        of its own, ``slop-code:<name>``, from it; subrt runs the image as
        named, and ``spawn_runtime(..., image=...)`` names another)."""
        return self.docker.image


class SlurmEnvironmentSpec(EnvironmentSpec):
    """An environment of the Slurm runtime: an allocation per session, a
    step per command."""

    type: Literal["slurm"] = "slurm"  # type: ignore[assignment]
    name: str = "slurm"


def network_mode_for_address(address: str) -> str:
    """The seed's helper: ``host`` for a server bound to loopback (reachable
    from the host only that way), else ``bridge``."""
    return "host" if address in ("127.0.0.1", "localhost") else "bridge"


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _tell(environment: str, setting: str, message: str) -> None:
    """Says once per environment and setting where subrt's default differs
    from the seed's, as a :class:`SeedDifferenceWarning`."""
    if (environment, setting) in _TOLD:
        return
    _TOLD.add((environment, setting))
    warnings.warn(f"environment {environment}: {message}", SeedDifferenceWarning, stacklevel=4)


def load_config(path: "os.PathLike[str] | str") -> Dict[str, EnvironmentSpec]:
    """The environments of a config, by name, in the file's order: subrt's
    ``config.toml`` (its ``[[environments]]``), or a YAML file of the seed's:
    one environment (``configs/environments/*.yaml``) or a list of them
    under ``environments``.

    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the file is not a valid config; the message names
        the file, line and column.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    if path.endswith((".yaml", ".yml")):
        return _load_yaml(path)
    _default, store, max_run_bytes, max_bytes, environments = _native.load_config(path)
    settings = StoreSettings(os.fspath(store), max_run_bytes, max_bytes)
    out = {}
    for text in environments:
        spec = EnvironmentSpec.from_dict(json.loads(text))
        # Runs of a spec from a config go to its store, within its bounds,
        # unless the caller says otherwise (``store=``, ``max_run_bytes=``).
        spec._store_settings = settings
        out[spec.name] = spec
    return out


def _load_yaml(path: str) -> Dict[str, EnvironmentSpec]:
    import yaml

    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        raise ValueError(f"{where}: {getattr(e, 'problem', None) or e}") from None
    if isinstance(data, Mapping) and isinstance(data.get("environments"), list):
        items = list(enumerate(data["environments"]))
        nodes = _yaml_child(root, "environments")
    else:
        items, nodes = [(None, data)], None
    out = {}
    for index, item in items:
        node = root if index is None else _yaml_child(nodes, index)
        try:
            spec = EnvironmentSpec.from_dict(item)
        except ValueError as e:
            raise ValueError(f"{_yaml_place(path, node, str(e))}: {e}") from None
        out[spec.name] = spec
    return out


def _yaml_child(node: Any, key: Any) -> Any:
    """The YAML node under ``key`` (a mapping key or a list index), if any."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def _yaml_place(path: str, node: Any, message: str) -> str:
    """``path:line:column`` of the field an error names (``docker.image:
    ...``), as deep as the file has it."""
    import yaml

    field = message.split(":", 1)[0]
    place = node
    for part in field.split(".") if " " not in field else []:
        if not isinstance(place, yaml.MappingNode):
            break
        for k, v in place.value:
            if k.value == part:
                place = k if not isinstance(v, yaml.MappingNode) else v
                break
        else:
            break
    if place is None:
        return path
    mark = place.start_mark
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


class StoreSettings(tuple):
    """``[store]`` of the config a spec was loaded from: ``dir``,
    ``max_run_bytes`` and ``max_bytes`` (``None``: unbounded)."""

    def __new__(cls, dir: str, max_run_bytes: int, max_bytes: Optional[int]) -> "StoreSettings":
        return super().__new__(cls, (dir, max_run_bytes, max_bytes))

    dir = property(lambda self: self[0])
    max_run_bytes = property(lambda self: self[1])
    max_bytes = property(lambda self: self[2])
