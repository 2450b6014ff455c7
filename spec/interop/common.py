"""What the importers share: bounded reading, railguard-safe names, the default role scheme.

Every limit here is checked before or while a document is parsed, so hostile input is
refused in bounded time and memory with one sentence (an :class:`InteropError`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from railguard.spec.errors import LoadError
from railguard.spec.source import bracket_depth

from . import InteropError

__all__ = [
    "DEFAULT_ROLE",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Names",
    "load_spec",
    "read_bounded",
    "roles_for",
    "safe_json",
]

#: A source document larger than this is refused before it is parsed.
MAX_BYTES = 4 * 1024 * 1024
#: Elements or JSON values nested deeper than this are refused.
MAX_DEPTH = 100
#: Elements or JSON values beyond this count are refused.
MAX_NODES = 100_000
#: The role that, without a roles file, grants every imported event's permission.
DEFAULT_ROLE = "caller"

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]+")


def read_bounded(path: str) -> str:
    """The text of ``path`` (UTF-8), refused when it is larger than :data:`MAX_BYTES`."""
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise InteropError(f"cannot read `{path}`: {exc.strerror or exc}") from None
    if size > MAX_BYTES:
        raise InteropError(f"`{path}` is {size} bytes, more than the {MAX_BYTES} an import accepts")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InteropError(f"cannot read `{path}` as UTF-8 text: {exc}") from None


def _check_shape(value: Any, source: str) -> None:
    """Refuse JSON-like data nested deeper than :data:`MAX_DEPTH` or with too many values."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise InteropError(f"`{source}` has more than {MAX_NODES} values, more than an import accepts")
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InteropError(f"`{source}` is nested more than {MAX_DEPTH} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InteropError(f"field `{key}` appears twice in the same object")
        result[key] = value
    return result


def safe_json(text: str, source: str) -> Any:
    """Parse JSON (or, when it does not start with ``{``/``[``, YAML) with the depth, size and
    duplicate-key limits of an import; YAML aliases and tags are refused."""
    if len(text) > MAX_BYTES:
        raise InteropError(f"`{source}` is longer than {MAX_BYTES} characters, more than an import accepts")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        if bracket_depth(stripped, MAX_DEPTH) > MAX_DEPTH:
            raise InteropError(f"`{source}` is nested more than {MAX_DEPTH} levels deep")
        try:
            data = json.loads(stripped, object_pairs_hook=_reject_duplicates)
        except InteropError as exc:
            raise InteropError(f"`{source}`: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise InteropError(f"`{source}` is not valid JSON: {exc}") from None
    else:
        data = _safe_yaml(stripped, source)
    _check_shape(data, source)
    return data


def _safe_yaml(text: str, source: str) -> Any:
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise InteropError(f"`{source}`: field `{key}` appears twice in the same mapping")
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    # CloudFormation short forms (`!Sub`, `!Ref`, ...) are read as their plain value.
    _Loader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None)
    try:
        events = yaml.parse(text, Loader=yaml.SafeLoader)
        depth = 0
        for event in events:
            if isinstance(event, yaml.AliasEvent):
                raise InteropError(f"`{source}` uses YAML anchors or aliases, which an import refuses")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InteropError(f"`{source}` is nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise InteropError(f"`{source}` is not valid JSON or YAML: {str(exc).splitlines()[0]}") from None


class Names:
    """Hands out unique railguard identifiers for source names (``b1.1`` -> ``b1_1``)."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self.taken: set[str] = set(reserved)
        self.given: dict[str, str] = {}

    def __call__(self, source: str) -> str:
        """The name for ``source``: the same every time it is asked for."""
        if source in self.given:
            return self.given[source]
        name = self.fresh(source)
        self.given[source] = name
        return name

    def fresh(self, source: str) -> str:
        """A new name derived from ``source``, distinct from every name handed out so far."""
        base = _NOT_IDENT.sub("_", source).strip("_") or "x"
        if base[0].isdigit():
            base = f"s_{base}"
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name


def roles_for(permissions: Sequence[str], roles: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """The roles of an imported spec: ``roles`` as given, or :data:`DEFAULT_ROLE` granting
    every permission the import uses."""
    if roles is not None:
        return {name: list(perms) for name, perms in roles.items()}
    return {DEFAULT_ROLE: list(dict.fromkeys(permissions))}


def load_spec(data: Mapping[str, Any], source: str) -> Any:
    """Validate imported plain data with railguard's loader; a failure is an :class:`InteropError`."""
    from railguard.spec.loader import load_data

    try:
        return load_data(data, file=source)
    except LoadError as exc:
        first = exc.problems[0].message if exc.problems else str(exc)
        raise InteropError(f"the spec imported from `{source}` does not load: {first}") from None
