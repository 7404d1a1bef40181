"""Environment specs: where and how a submission runs.

A spec is one ``[[environments]]`` table of ``config.toml``, with the same
fields and defaults: the Rust library checks and completes it, so a spec means
the same thing here, in ``config.toml`` and on the command line.

>>> spec = DockerEnvironmentSpec(name="py", docker={"image": "python:3.12-slim"})
>>> spec.docker.workdir
'/workspace'
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Dict, Mapping, Optional, Type

from . import _native

__all__ = [
    "DockerEnvironmentSpec",
    "EnvironmentSpec",
    "LocalEnvironmentSpec",
    "load_config",
]


class Section(dict):
    """A table of a spec: a ``dict`` whose keys also read as attributes
    (``spec.docker.image`` and ``spec.docker["image"]``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self):  # plain dicts inside, so that pickling is cheap
        return (Section, (dict(self),))


def _sections(value: Any) -> Any:
    if isinstance(value, dict):
        return Section({k: _sections(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_sections(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


class EnvironmentSpec:
    """One environment: ``name``, ``type``, ``environment`` (``env``,
    ``include_os_env``), ``setup`` (``commands``, ``eval_commands``),
    ``commands``, ``local`` and ``docker``.

    Fields read as attributes (``spec.setup.commands``); :meth:`to_dict`
    gives them all, defaults included. ``EnvironmentSpec.from_dict`` picks
    the class of the dict's ``type``.

    :raises ValueError: a field is unknown or has the wrong type; the message
        names it (``docker.memroy: unknown field ...``).
    """

    #: The runtime type this class describes (``None`` on the base class);
    #: set by ``class MySpec(EnvironmentSpec, type="mine")``, which also
    #: makes :meth:`from_dict` pick the class for that type.
    spec_type: ClassVar[Optional[str]] = None
    _by_type: ClassVar[Dict[str, Type["EnvironmentSpec"]]] = {}

    def __init_subclass__(cls, type: Optional[str] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type is not None:
            cls.spec_type = type
            EnvironmentSpec._by_type[type] = cls

    def __init__(self, **fields: Any) -> None:
        fields = _plain(fields)
        kind = fields.get("type", self.spec_type)
        if kind is None:
            raise ValueError("type: missing (e.g. \"local\" or \"docker\")")
        if self.spec_type is not None and kind != self.spec_type:
            raise ValueError(
                f"type: {type(self).__name__} describes type {self.spec_type!r}, not {kind!r}"
            )
        fields["type"] = kind
        fields.setdefault("name", kind)
        object.__setattr__(self, "_fields", _sections(self.validate(fields)))

    @classmethod
    def validate(cls, fields: Dict[str, Any]) -> Dict[str, Any]:
        """Checks ``fields`` and returns them with every default filled in.

        The built-in types are checked by the Rust library; a subclass for a
        Python runtime with fields of its own overrides this.
        """
        try:
            text = json.dumps(fields)
        except TypeError as e:
            raise ValueError(f"a field is not a plain value: {e}") from None
        return json.loads(_native.check_spec(text))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EnvironmentSpec":
        """The spec of ``data``, as the class registered for its ``type``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an environment spec is a dict, not {type(data).__name__}")
        kind = data.get("type")
        if not isinstance(kind, str):
            raise ValueError("type: missing (e.g. \"local\" or \"docker\")")
        target = EnvironmentSpec._by_type.get(kind, EnvironmentSpec)
        return target(**dict(data))

    @property
    def type(self) -> str:
        """The runtime type, looked up in the registry: ``"local"``, ``"docker"``..."""
        return self._fields["type"]

    def to_dict(self) -> Dict[str, Any]:
        """Every field, defaults included, as plain dicts and lists."""
        return json.loads(json.dumps(self._fields))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            "specs are read-only; make a new one: "
            f"type(spec)(**{{**spec.to_dict(), {name!r}: ...}})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EnvironmentSpec):
            return NotImplemented
        return self._fields == other._fields

    def __hash__(self) -> int:
        return hash(json.dumps(self._fields, sort_keys=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, type={self.type!r})"

    def __reduce__(self):
        return (EnvironmentSpec.from_dict, (self.to_dict(),))


class LocalEnvironmentSpec(EnvironmentSpec, type="local"):
    """An environment of the local runtime: commands run on this machine,
    each session in its own PID namespace where the kernel allows one."""


class DockerEnvironmentSpec(EnvironmentSpec, type="docker"):
    """An environment of the Docker runtime: one container per session;
    ``docker={"image": ...}`` is required."""


def load_config(path: "os.PathLike[str] | str") -> Dict[str, EnvironmentSpec]:
    """The environments of a ``config.toml``, by name, in the file's order.

    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the file is not a valid config; the message names
        the file, line and column.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    _default, store, max_run_bytes, max_bytes, environments = _native.load_config(path)
    settings = StoreSettings(os.fspath(store), max_run_bytes, max_bytes)
    out = {}
    for text in environments:
        spec = EnvironmentSpec.from_dict(json.loads(text))
        # Runs of a spec from a config go to its store, within its bounds,
        # unless the caller says otherwise (``store=``, ``max_run_bytes=``).
        object.__setattr__(spec, "_store_settings", settings)
        out[spec.name] = spec
    return out


class StoreSettings(tuple):
    """``[store]`` of the config a spec was loaded from: ``dir``,
    ``max_run_bytes`` and ``max_bytes`` (``None``: unbounded)."""

    def __new__(cls, dir: str, max_run_bytes: int, max_bytes: Optional[int]) -> "StoreSettings":
        return super().__new__(cls, (dir, max_run_bytes, max_bytes))

    dir = property(lambda self: self[0])
    max_run_bytes = property(lambda self: self[1])
    max_bytes = property(lambda self: self[2])
