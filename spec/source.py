"""Reading YAML and JSON documents into plain data with the position of every node.

YAML is read with PyYAML's event parser and composer under the YAML 1.2 core schema
(``yes``/``no``/``on``/``off`` stay strings). Before composing, the event stream is scanned
for nesting depth, so a 3,000-deep document is refused at once; aliases are never expanded
beyond :data:`MAX_NODES`, so an alias bomb is refused after a bounded amount of work.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import LoadError, Location, Problem

__all__ = ["Document", "read_json", "read_text", "read_yaml"]

MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_BYTES = 5_000_000

Path = tuple[str | int, ...]


@dataclass
class Document:
    """Plain data read from a source, with positions keyed by path."""

    data: Any
    file: str
    values: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)
    #: For string scalars: how many characters precede the text on its first line (quotes).
    scalar_offsets: dict[Path, int | None] = field(default_factory=dict)

    def at(self, path: Path, *, key: bool = False) -> Location:
        """The location of ``path`` (the key itself when ``key``), else its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        probe = path
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Location(self.file, 1, 1))


class _Loader(yaml.SafeLoader):
    """A composer that resolves plain scalars by the YAML 1.2 core schema."""


_Loader.yaml_implicit_resolvers = {}
_CORE = {
    "tag:yaml.org,2002:null": (r"^(?:~|null|Null|NULL|)$", list("~nN") + [""]),
    "tag:yaml.org,2002:bool": (r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    "tag:yaml.org,2002:int": (
        r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
        list("-+0123456789"),
    ),
    "tag:yaml.org,2002:float": (
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
}
for _tag, (_pattern, _first) in _CORE.items():
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _mark(file: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(file, 1, 1)
    return Location(file, mark.line + 1, mark.column + 1)


def read_text(text: str, file: str = "<spec>", fmt: str | None = None) -> Document:
    """Read ``text`` as JSON when ``fmt == "json"`` (or the file ends in ``.json``), else YAML."""
    if fmt is None:
        fmt = "json" if file.lower().endswith(".json") else "yaml"
    if fmt == "json":
        return read_json(text, file)
    return read_yaml(text, file)


def _precheck(text: str, file: str) -> None:
    if len(text) > MAX_BYTES:
        raise LoadError([Problem(f"the file is larger than {MAX_BYTES:,} bytes", Location(file, 1, 1))])
    if not text.strip():
        raise LoadError([Problem("the file is empty: a spec needs at least `railguard: 1`", Location(file, 1, 1))])


def read_yaml(text: str, file: str = "<spec>") -> Document:
    """Read one YAML document; every failure is a :class:`LoadError` with file, line and column."""
    _precheck(text, file)
    try:
        depth = 0
        documents = 0
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise LoadError([Problem(
                        f"the document nests deeper than {MAX_DEPTH} levels",
                        _mark(file, event.start_mark),
                    )])
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise LoadError([Problem(
                        "the file holds more than one YAML document; a spec is one document",
                        _mark(file, event.start_mark),
                    )])
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = (exc.problem or exc.context or "invalid YAML").rstrip(".")
        raise LoadError([Problem(f"YAML syntax error: {what}", _mark(file, mark))]) from None
    except yaml.YAMLError as exc:
        raise LoadError([Problem(f"YAML error: {exc}".splitlines()[0], Location(file, 1, 1))]) from None
    if node is None:
        raise LoadError([Problem("the file is empty: a spec needs at least `railguard: 1`", Location(file, 1, 1))])
    doc = Document(None, file)
    doc.data = _Converter(doc).convert(node, ())
    return doc


class _Converter:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: Path) -> Any:
        file = self.doc.file
        self.count += 1
        if self.count > MAX_NODES:
            raise LoadError([Problem(
                f"the document expands to more than {MAX_NODES:,} nodes (an alias bomb?)",
                _mark(file, node.start_mark),
            )])
        self.doc.values.setdefault(path, _mark(file, node.start_mark))
        if id(node) in self.active:
            raise LoadError([Problem("an alias refers to a node that contains it", _mark(file, node.start_mark))])
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:str" and "\n" not in str(node.value):
                self.doc.scalar_offsets[path] = 1 if node.style in ("'", '"') else 0
            elif node.tag == "tag:yaml.org,2002:str":
                self.doc.scalar_offsets[path] = None
            return _scalar(node, file)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != "tag:yaml.org,2002:seq":
                    raise _bad_tag(node, file)
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if node.tag != "tag:yaml.org,2002:map":
                    raise _bad_tag(node, file)
                result: dict[str, Any] = {}
                for key_node, value_node in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        raise LoadError([Problem(
                            "YAML merge keys (`<<`) are not supported in specs",
                            _mark(file, key_node.start_mark),
                        )])
                    if not isinstance(key_node, yaml.ScalarNode):
                        raise LoadError([Problem("a mapping key must be a plain scalar", _mark(file, key_node.start_mark))])
                    key = _scalar(key_node, file)
                    key = key if isinstance(key, str) else _key_text(key)
                    if key in result:
                        raise LoadError([Problem(f"duplicate key `{key}`", _mark(file, key_node.start_mark))])
                    self.doc.keys[(*path, key)] = _mark(file, key_node.start_mark)
                    result[key] = self.convert(value_node, (*path, key))
                return result
        finally:
            self.active.discard(id(node))
        raise LoadError([Problem("unsupported YAML node", _mark(file, node.start_mark))])


def _key_text(key: Any) -> str:
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return str(key)


def _bad_tag(node: yaml.Node, file: str) -> LoadError:
    return LoadError([Problem(f"unsupported YAML tag `{node.tag}`", _mark(file, node.start_mark))])


def _scalar(node: yaml.ScalarNode, file: str) -> Any:
    tag, value = node.tag, node.value
    if tag == "tag:yaml.org,2002:str":
        return value
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return value.lower() == "true"
    if tag == "tag:yaml.org,2002:int":
        try:
            if value.startswith("0o"):
                return int(value[2:], 8)
            if value.startswith("0x"):
                return int(value[2:], 16)
            return int(value)
        except ValueError:
            raise LoadError([Problem(f"`{value[:40]}` is not a valid integer", _mark(file, node.start_mark))]) from None
    if tag == "tag:yaml.org,2002:float":
        # Keep numbers exact: the loader turns them into Decimal or refuses them.
        return _Number(value)
    raise _bad_tag(node, file)


class _Number(str):
    """A YAML/JSON number that is not an integer, kept as its exact text."""

    __slots__ = ()


def is_number_text(value: Any) -> bool:
    """Whether ``value`` is a non-integer number read from a document (exact text)."""
    return isinstance(value, _Number)


def read_json(text: str, file: str = "<spec>") -> Document:
    """Read a JSON document exactly (numbers keep their text) with positions of every value."""
    _precheck(text, file)
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                where = _offset(text, file, _text_pos(text, depth))
                raise LoadError([Problem(f"the document nests deeper than {MAX_DEPTH} levels", where)])
        elif char in "]}":
            depth -= 1

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                raise _Duplicate(key)
            result[key] = value
        return result

    try:
        json.loads(text, object_pairs_hook=pairs, parse_float=_Number, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise LoadError([Problem(f"JSON syntax error: {exc.msg.lower()}", Location(file, exc.lineno, exc.colno))]) from None
    except _Duplicate as exc:
        raise LoadError([Problem(f"duplicate key `{exc.args[0]}`", Location(file, 1, 1))]) from None
    except ValueError as exc:
        raise LoadError([Problem(f"JSON error: {exc}", Location(file, 1, 1))]) from None
    # JSON is YAML: compose it again to learn where each value sits.
    return read_yaml(text, file)


class _Duplicate(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not valid JSON")


def _text_pos(text: str, depth: int) -> int:
    """The index of the bracket that first reaches ``depth``."""
    level = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            if level == depth:
                return index
        elif char in "]}":
            level -= 1
    return 0


def _offset(text: str, file: str, index: int) -> Location:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return Location(file, line, column)
