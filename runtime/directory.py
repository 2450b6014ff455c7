"""Who holds which roles: the application's directory of principals. Deny by default."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

import yaml

from .errors import ExecutionError

__all__ = ["CallableDirectory", "Directory", "StaticDirectory", "load_directory"]


class Directory(Protocol):
    """Maps an authenticated principal id to the roles it holds (empty if unknown)."""

    def roles_of(self, principal: str) -> frozenset[str]: ...


class StaticDirectory:
    """A directory held in memory: ``{"alice": ["support"], "bob": ["manager"]}``."""

    def __init__(self, members: Mapping[str, Iterable[str]]) -> None:
        self._members = {str(p): frozenset(str(r) for r in roles) for p, roles in members.items()}

    def roles_of(self, principal: str) -> frozenset[str]:
        return self._members.get(principal, frozenset())

    @property
    def members(self) -> Mapping[str, frozenset[str]]:
        return dict(self._members)


class CallableDirectory:
    """A directory backed by a function (an identity provider, an LDAP lookup, ...)."""

    def __init__(self, lookup: Callable[[str], Iterable[str]]) -> None:
        self._lookup = lookup

    def roles_of(self, principal: str) -> frozenset[str]:
        return frozenset(self._lookup(principal))


def load_directory(path: str | os.PathLike[str]) -> StaticDirectory:
    """Read a YAML file mapping principal ids to lists of roles."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExecutionError(f"cannot read the directory `{os.fspath(path)}`: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ExecutionError(f"the directory `{os.fspath(path)}` must map principal ids to lists of roles")
    return StaticDirectory(data)
