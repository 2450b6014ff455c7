"""Who holds which roles: the application's directory of principals. Deny by default."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import yaml

from .errors import ExecutionError

__all__ = ["TOKEN_DIGEST", "CallableDirectory", "Directory", "StaticDirectory", "knows", "load_directory"]


class Directory(Protocol):
    """Maps an authenticated principal id to the roles it holds (empty if unknown)."""

    def roles_of(self, principal: str) -> frozenset[str]: ...


#: How a directory stores a bearer token: the SHA-256 of its UTF-8 text, never the token.
TOKEN_DIGEST = re.compile(r"\Asha256:[0-9a-f]{64}\Z")


class StaticDirectory:
    """A directory held in memory: ``{"alice": ["support"], "bob": ["manager"]}``.

    ``tokens`` maps principals to the digests (``sha256:<hex>``) of the bearer tokens that
    prove them (see :meth:`principal_for_token`)."""

    def __init__(self, members: Mapping[str, Iterable[str]], tokens: Mapping[str, Iterable[str]] | None = None) -> None:
        self._members = {str(p): frozenset(str(r) for r in roles) for p, roles in members.items()}
        self._tokens: list[tuple[bytes, str]] = []
        for principal, digests in (tokens or {}).items():
            if principal not in self._members:
                raise ExecutionError(f"a token is given for `{principal}`, who is not a principal of the directory")
            for digest in digests:
                if not TOKEN_DIGEST.fullmatch(digest):
                    raise ExecutionError(f"the token of `{principal}` must be stored as `sha256:<64 hex digits>` (see `railguard serve --hash-token`)")
                self._tokens.append((digest.encode("ascii"), principal))

    def principal_for_token(self, token: str) -> str | None:
        """The principal a bearer token proves, or ``None``. The token's digest is compared
        with every stored digest in constant time (:func:`hmac.compare_digest`), all of them
        every time, so the time taken says nothing about which digest came close."""
        digest = ("sha256:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()).encode("ascii")
        found: str | None = None
        for stored, principal in self._tokens:
            if hmac.compare_digest(stored, digest) and found is None:
                found = principal
        return found

    def roles_of(self, principal: str) -> frozenset[str]:
        return self._members.get(principal, frozenset())

    @property
    def members(self) -> Mapping[str, frozenset[str]]:
        return dict(self._members)

    def knows(self, principal: str) -> bool:
        """Whether ``principal`` is listed (even with no roles)."""
        return principal in self._members


class CallableDirectory:
    """A directory backed by a function (an identity provider, an LDAP lookup, ...)."""

    def __init__(self, lookup: Callable[[str], Iterable[str]]) -> None:
        self._lookup = lookup

    def roles_of(self, principal: str) -> frozenset[str]:
        return frozenset(self._lookup(principal))


def knows(directory: Directory, principal: str) -> bool:
    """Whether ``directory`` knows ``principal``: listed, for a directory that can say so
    (a ``knows`` method), else holding at least one role."""
    check = getattr(directory, "knows", None)
    if callable(check):
        return bool(check(principal))
    return bool(directory.roles_of(principal))


#: The largest directory file read.
MAX_DIRECTORY_BYTES = 16_000_000


def load_directory(path: str | os.PathLike[str]) -> StaticDirectory:
    """Read a YAML (or ``.json``) file mapping principal ids to lists of roles.

    A principal may instead map to ``{roles: [...], tokens: ["sha256:<hex>", ...]}``: the
    digests of the bearer tokens that prove it (``railguard serve`` over HTTP).

    The file is read by the spec's own hardened reader (size, nesting and alias bounds; YAML
    1.2 core schema, so ``no`` is the text "no"), and a principal id is the key exactly as
    written (``007`` stays "007"). Any problem is one :class:`ExecutionError` sentence.
    """
    from railguard.spec.errors import LoadError
    from railguard.spec.source import read_text

    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            raw = handle.read(MAX_DIRECTORY_BYTES + 1)
    except OSError as exc:
        raise ExecutionError(f"cannot read the directory `{name}`: {(exc.strerror or str(exc)).lower()}") from None
    if len(raw) > MAX_DIRECTORY_BYTES:
        raise ExecutionError(f"the directory `{name}` is larger than {MAX_DIRECTORY_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
        data = read_text(text, name).data
    except UnicodeDecodeError:
        raise ExecutionError(f"the directory `{name}` is not UTF-8 text") from None
    except LoadError as exc:
        first = exc.problems[0]
        raise ExecutionError(f"cannot read the directory `{name}` ({first.location}): {first.message}") from None
    if not isinstance(data, dict):
        raise ExecutionError(f"the directory `{name}` must map principal ids to lists of roles")
    principals = list(data) if name.lower().endswith(".json") else _written_keys(text)
    members: dict[str, list[str]] = {}
    tokens: dict[str, list[str]] = {}
    for principal, entry in zip(principals, data.values(), strict=True):
        roles = entry
        if isinstance(entry, dict):
            unknown = sorted(str(k) for k in entry if k not in ("roles", "tokens"))
            if unknown:
                raise ExecutionError(f"the directory `{name}`: principal `{principal}` has an unknown field `{unknown[0]}` (fields: roles, tokens)")
            digests = entry.get("tokens", [])
            if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
                raise ExecutionError(f"the directory `{name}`: the `tokens` of principal `{principal}` must be a list of `sha256:<hex>` digests")
            tokens[principal] = digests
            roles = entry.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            raise ExecutionError(f"the directory `{name}`: principal `{principal}` must have a list of role names")
        if not principal:
            raise ExecutionError(f"the directory `{name}` lists an empty principal id")
        members[principal] = roles
    try:
        return StaticDirectory(members, tokens)
    except ExecutionError as exc:
        raise ExecutionError(f"the directory `{name}`: {exc}") from None


def _written_keys(text: str) -> list[str]:
    """The top-level keys of a YAML mapping as written (already checked by the hardened reader,
    so composing it again is bounded)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(root, yaml.MappingNode)
    return [str(key.value) for key, _ in root.value]
