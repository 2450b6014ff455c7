"""Reading YAML and JSON documents into plain data with the position of every node.

YAML is parsed once, by libyaml where PyYAML has it (else by PyYAML's own parser), and its
events are composed under the YAML 1.2 core schema (``yes``/``no``/``on``/``off`` stay
strings). The composer counts nesting depth and how far aliases expand as it goes, so a
3,000-deep document or an alias bomb is refused after a bounded amount of work, at the line
that causes it. Every text, number and size is held to :mod:`railguard.spec.limits`.

JSON is read by the standard library for syntax, then walked once more by a small reader
that records the position of every key and value (JSON is not read as YAML: a tab, a
surrogate pair or a duplicate key would then be treated differently).
"""

from __future__ import annotations

import bisect
import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

import yaml

from .errors import LoadError, Location, Problem, SpecError
from .limits import (
    MAX_ALIAS_NODES,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_NODES,
    MAX_TEXT_LENGTH,
)

__all__ = [
    "Document",
    "JSONProblem",
    "bracket_depth",
    "collection_paused",
    "describe_path",
    "lone_surrogate",
    "one_line",
    "read_data",
    "read_json",
    "read_text",
    "read_yaml",
    "strict_json",
]

Path = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


@dataclass
class Document:
    """Plain data read from a source, with positions keyed by path."""

    data: Any
    file: str
    values: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)
    #: For one-line string scalars: how many characters precede the text on its first line
    #: (1 for a quote); ``None`` when positions inside the text cannot be mapped back.
    scalar_offsets: dict[Path, int | None] = field(default_factory=dict)
    #: For YAML literal block scalars (``|``): where the first line of the text starts, so a
    #: position inside a multi-line expression maps to its own line of the file.
    block_starts: dict[Path, Location] = field(default_factory=dict)

    def at(self, path: Path, *, key: bool = False) -> Location:
        """The location of ``path`` (the key itself when ``key``), else its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        probe = path
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Location(self.file))  # plain data: no positions


def one_line(message: str) -> str:
    """``message`` with line breaks and other control characters shown as escapes."""
    if message.isprintable():
        return message
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in message
    )


def _error(message: str, where: Location) -> LoadError:
    return LoadError([Problem(one_line(message), where)])


def describe_path(path: Path) -> str:
    """A short reader's name for the part of a spec at ``path``."""
    if not path:
        return "the spec"
    head, rest = path[0], path[1:]
    if head in ("transitions", "invariants", "waivers") and rest and isinstance(rest[0], int):
        noun = {"transitions": "transition", "invariants": "invariant", "waivers": "waiver"}
        text = f"{noun[str(head)]} {rest[0] + 1}"
        rest = rest[1:]
        return text + (f" `{'.'.join(map(str, rest))}`" if rest else "")
    return "`" + ".".join(map(str, path)) + "`"


# --------------------------------------------------------------------------- Python data


def read_data(data: Any, file: str = "<data>") -> Document:
    """Wrap plain Python data, refused at once if it breaks a limit the text readers enforce.

    No depth beyond :data:`MAX_DEPTH`, no more than :data:`MAX_NODES` values, no integer of more
    than :data:`MAX_DIGITS` digits and no container that contains itself.
    """
    count = 0
    # (value, path, depth, ids of the containers above it)
    stack: list[tuple[Any, Path, int, frozenset[int]]] = [(data, (), 0, frozenset())]
    while stack:
        value, path, depth, above = stack.pop()
        count += 1
        where = Location(file, path=path)
        if count > MAX_NODES:
            raise _error(f"the data holds more than {MAX_NODES:,} values", where)
        if _too_long(value):
            raise _error(
                f"a number in {describe_path(path)} has more than {MAX_DIGITS} digits", where
            )
        if isinstance(value, str):
            problem = text_problem(value, path)
            if problem is not None:
                raise _error(problem, where)
            continue
        if isinstance(value, Decimal | float) and not isinstance(value, bool):
            dec = Decimal(repr(value)) if isinstance(value, float) else value
            shown = f"{_show_text(str(dec))} in {describe_path(path)}"
            problem = decimal_problem(dec, shown) if dec.is_finite() else None
            if problem is not None:
                raise _error(problem, where)
            continue
        if not isinstance(value, dict | list):
            continue
        if id(value) in above:
            raise _error(f"{describe_path(path)} contains itself, so it would never end", where)
        if depth >= MAX_DEPTH:
            raise _error(f"the data nests deeper than {MAX_DEPTH} levels", where)
        inner = above | {id(value)}
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if _too_long(key):
                raise _error(
                    f"a key in {describe_path(path)} has more than {MAX_DIGITS} digits", where
                )
            problem = text_problem(key, path, key=True) if isinstance(key, str) else None
            if problem is not None:
                raise _error(problem, where)
            stack.append((item, (*path, key), depth + 1, inner))
    return Document(data, file)


def _too_long(value: Any) -> bool:
    """Whether ``value`` is an integer too long to print (or to keep in a spec)."""
    return isinstance(value, int) and abs(value) >= _INT_LIMIT


_INT_LIMIT = 10**MAX_DIGITS
_SURROGATE = re.compile("[\ud800-\udfff]")
#: A decimal number as YAML and JSON write it: sign, digits with a point, exponent.
_DECIMAL_PARTS = re.compile(r"[-+]?[0-9]*\.?[0-9]*(?:[eE]([-+]?[0-9]+))?")


def text_problem(value: str, path: Path, *, key: bool = False) -> str | None:
    """Why the text ``value`` (at ``path``; a key there when ``key``) cannot be in a spec, if it cannot.

    A text is at most :data:`MAX_TEXT_LENGTH` characters and holds no lone surrogate (an
    escape such as ``\\ud800`` decodes to one: it is no character and cannot be written as
    UTF-8, so no report, audit record or certificate could hold it).
    """
    too_long = len(value) > MAX_TEXT_LENGTH
    found = None if too_long else _SURROGATE.search(value)
    if not too_long and found is None:
        return None
    what = f"a key in {describe_path(path)}" if key else describe_path(path)
    if too_long:
        return f"{what} is longer than {MAX_TEXT_LENGTH:,} characters"
    if found is not None:
        return (
            f"{what} holds a lone surrogate `\\u{ord(found.group(0)):04x}`, which is not a "
            "character: a spec must be valid Unicode text"
        )
    return None


def decimal_problem(value: Decimal, shown: str) -> str | None:
    """Why the finite decimal ``value`` is out of a spec's reach (see :data:`MAX_DIGITS`), if it is."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "finite decimals only"
    if value.adjusted() >= MAX_DIGITS or exponent < -MAX_DIGITS:
        return (
            f"the number {shown} is too large or too precise: a number in a spec has at most "
            f"{MAX_DIGITS} digits before and after its point"
        )
    return None


def far_exponent(text: str) -> bool:
    """Whether the number ``text`` has an exponent of more than six digits (so it is far
    beyond :data:`MAX_DIGITS`, and too far to even construct as a decimal)."""
    parts = _DECIMAL_PARTS.fullmatch(text.strip())
    return parts is not None and parts.group(1) is not None and len(parts.group(1).lstrip("+-0")) > 6


def parse_decimal(text: str) -> Decimal | None:
    """``text`` (a number as YAML or JSON write it) as an exact decimal; ``None`` if it is
    beyond :data:`MAX_DIGITS` (checked before any arithmetic, so ``1e999999999999`` is cheap)."""
    if far_exponent(text):
        return None
    value = Decimal(text)
    if value.is_finite() and decimal_problem(value, "") is not None:
        return None
    return value


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """A composer that resolves plain scalars by the YAML 1.2 core schema."""


_Loader.yaml_implicit_resolvers = {}
_CORE = {
    "tag:yaml.org,2002:null": (r"\A(?:~|null|Null|NULL|)\Z", [*"~nN", ""]),
    "tag:yaml.org,2002:bool": (r"\A(?:true|True|TRUE|false|False|FALSE)\Z", list("tTfF")),
    "tag:yaml.org,2002:int": (
        r"\A(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z",
        list("-+0123456789"),
    ),
    "tag:yaml.org,2002:float": (
        r"\A(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z",
        list("-+0123456789."),
    ),
}
#: The text each core tag accepts, also when the tag is written out (``!!int x`` is refused).
_CORE_TEXT = {tag: re.compile(pattern) for tag, (pattern, _) in _CORE.items()}
for _tag, (_pattern, _first) in _CORE.items():
    _Loader.add_implicit_resolver(_tag, _CORE_TEXT[_tag], _first)

#: The core tags a plain scalar may resolve to, by its first character.
_BY_FIRST: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _tag, (_pattern, _first) in _CORE.items():
    for _char in _first:
        _BY_FIRST.setdefault(_char, []).append((_tag, _CORE_TEXT[_tag]))


def _resolve(value: str) -> str:
    """The tag of a plain scalar under the YAML 1.2 core schema (as :class:`_Loader` resolves)."""
    for tag, pattern in _BY_FIRST.get(value[:1], ()):
        if pattern.match(value):
            return tag
    return _STR


_CLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CSafeLoader(yaml.CSafeLoader):
        """libyaml's parser with the same YAML 1.2 core resolvers as :class:`_Loader`."""

    _CSafeLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _CLoader = _CSafeLoader


def _mark(file: str, mark: Any) -> Location:
    if mark is None:
        return Location(file, 1, 1)
    return Location(file, mark.line + 1, mark.column + 1)


@contextmanager
def collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a document is read and validated.

    Reading creates hundreds of thousands of small objects and no reference cycles; the
    collector would otherwise walk the growing heap again and again (half the time of
    reading a 5,000-state spec). Nested use is fine; the previous state is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_text(text: str, file: str = "<spec>", fmt: str | None = None) -> Document:
    """Read ``text`` as JSON when ``fmt == "json"`` (or the file ends in ``.json``), else YAML."""
    if fmt is None:
        fmt = "json" if file.lower().endswith(".json") else "yaml"
    with collection_paused():
        if fmt == "json":
            return read_json(text, file)
        return read_yaml(text, file)



def bracket_depth(text: str, stop: int | None = None) -> int:
    """How deeply ``[``/``{`` nest in JSON ``text``, ignoring brackets inside strings: a
    linear pre-scan, so a very deep document is refused before a recursive parser sees it.
    With ``stop``, the scan ends as soon as the depth passes it. Strings are cut out by one
    regular expression without backtracking; only the brackets left are walked in Python (an
    unterminated string's brackets count, which can only make invalid JSON look deeper)."""
    if "[" not in text and "{" not in text:
        return 0
    outside = _STRING_LITERAL.sub("", text) if '"' in text else text
    depth = deepest = 0
    for char in _BRACKETS.findall(outside):
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop is not None and deepest > stop:
                    return deepest
        else:
            depth -= 1
    return deepest


#: A JSON string literal, written as an unrolled loop so that matching never backtracks.
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


class JSONProblem(SpecError, ValueError):
    """JSON text that :func:`strict_json` refuses. ``kind`` is ``not-json`` (not JSON, or
    ``NaN``), ``too-deep``, ``repeated-key`` or ``not-unicode``; ``message`` is the predicate
    of one sentence ("is not valid JSON: ...") for the caller to give a subject."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(message)


#: Integers with more digits than this are read as exact decimals (Python refuses to convert
#: very long digit strings to ``int``), for the caller's domain check to refuse.
LONG_INT_DIGITS = 4_000


def _long_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= LONG_INT_DIGITS else Decimal(text)


def _not_a_number(name: str) -> Any:
    raise JSONProblem("not-json", f"is not valid JSON: `{name}` is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONProblem("repeated-key", f"repeats the key `{_shown_key(key)}` in one object: give each field once")
            seen.add(key)
    return data


def _shown_key(key: str) -> str:
    text = ascii(key)[1:-1]
    return text if len(text) <= 40 else text[:40] + "…"


def lone_surrogate(data: Any) -> str | None:
    """The first string in JSON ``data`` (keys included) that is not valid Unicode — a lone
    surrogate from an escape such as ``\\ud800`` — or ``None``. Checked without recursion."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def strict_json(text: str, max_depth: int) -> Any:
    """JSON ``text`` as data, read strictly: numbers with a fraction as exact decimals, very
    long integers as decimals, a leading byte-order mark ignored; :class:`JSONProblem` for
    text that is not JSON, ``NaN``/``Infinity``, nesting deeper than ``max_depth`` (found
    before parsing), a key repeated in one object (parsers disagree on which value wins) or
    a lone surrogate (text that cannot be stored or audited)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if bracket_depth(text, max_depth) > max_depth:
        raise JSONProblem("too-deep", f"nests deeper than {max_depth} levels")
    try:
        data = json.loads(text, parse_float=Decimal, parse_int=_long_int, parse_constant=_not_a_number, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise JSONProblem("not-json", f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise JSONProblem("too-deep", f"nests deeper than {max_depth} levels") from None
    broken = lone_surrogate(data)
    if broken is not None:
        raise JSONProblem("not-unicode", f"has text that is not valid Unicode (a lone surrogate in `{_shown_key(broken)}`)")
    return data


def _precheck(text: str, file: str) -> None:
    if len(text) > MAX_BYTES:
        raise _error(
            f"the spec is longer than {MAX_BYTES:,} characters, the largest a spec may be",
            Location(file, 1, 1),
        )
    if not text.strip():
        raise _error(
            "the file is empty: a spec needs at least `railguard: 1`", Location(file, 1, 1)
        )
    found = _SURROGATE.search(text)
    if found is not None:
        # Only text handed over as a Python string can hold one: UTF-8 cannot encode it.
        start = found.start()
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        raise _error(
            f"the text holds a lone surrogate `\\u{ord(found.group(0)):04x}`, which is not a "
            "character: a spec must be valid Unicode text",
            Location(file, line, column),
        )


_TOKEN_NAMES = {
    "block end": "the end of an indented block",
    "block mapping start": "the start of a new mapping",
    "block sequence start": "the start of a new list",
    "block entry": "a list item (`-`)",
    "stream end": "the end of the file",
    "document start": "a document start (`---`)",
    "document end": "a document end (`...`)",
    "flow mapping start": "`{`",
    "flow mapping end": "`}`",
    "flow sequence start": "`[`",
    "flow sequence end": "`]`",
    "flow entry": "`,`",
    "scalar": "a value",
    "key": "a key",
    "value": "`:`",
    "alias": "an alias",
    "anchor": "an anchor",
    "tag": "a tag",
}


def _yaml_message(exc: yaml.MarkedYAMLError, file: str) -> LoadError:
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or exc.context or "the text is not valid YAML").rstrip(".")
    if (exc.context or "").startswith("while scanning a simple key") and exc.context_mark:
        # The scanner gives up a line later; the key without its `:` is the mistake.
        return _error(
            "invalid YAML: this key is not followed by `:`, as every line of a mapping "
            "needs `key: value`",
            _mark(file, exc.context_mark),
        )
    if "'\\t'" in problem:
        problem = "a tab character cannot indent YAML or start a value; use spaces"
    elif problem == "mapping values are not allowed here":
        problem = "a `:` is not allowed here (quote a value that contains `: `)"
    else:
        problem = re.sub(
            r"'?<([a-z ]+)>'?", lambda m: _TOKEN_NAMES.get(m.group(1), m.group(1)), problem
        )
        problem = problem.replace("found '?'", "found a key").replace("found ':'", "found `:`")
    context = ""
    if (
        exc.problem
        and exc.context
        and exc.context_mark is not None
        and mark is not None
        and exc.context_mark.line != mark.line
    ):
        context = f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
    return _error(f"invalid YAML: {problem}{context}", _mark(file, mark))


class _Composer:
    """Builds the node graph from a parser's events in one pass, refusing on the way what no
    spec needs: nesting deeper than :data:`MAX_DEPTH`, more than one document, an alias that
    refers to a node containing it, and aliases that expand the document beyond
    :data:`MAX_ALIAS_NODES` values or :data:`MAX_BYTES` characters of text (an alias bomb,
    of many small values or of a few long texts, is refused at the alias that crosses the
    bound, before anything is expanded). The parser is libyaml's when installed, else PyYAML's
    own; both give the same events with the same marks.
    """

    def __init__(self, parser: Any, file: str) -> None:
        self.parser = parser
        self.file = file
        self.anchors: dict[str, yaml.Node] = {}
        #: Expanded size (values, characters of text) of each completed anchored node.
        self.sizes: dict[str, tuple[int, int]] = {}
        #: Anchors of the collections being composed (an alias to one would never end).
        self.open: set[str] = set()
        self.depth = 0
        self.expanded = 0
        self.characters = 0

    def document(self) -> yaml.Node | None:
        """The one document's root node (``None`` when the stream holds none)."""
        parser = self.parser
        parser.get_event()  # the stream start
        if parser.check_event(yaml.StreamEndEvent):
            return None
        parser.get_event()  # the document start
        node, _, _ = self.node()
        parser.get_event()  # the document end
        if not parser.check_event(yaml.StreamEndEvent):
            raise _error(
                "the file holds more than one YAML document, and a spec is one document",
                _mark(self.file, parser.peek_event().start_mark),
            )
        return node

    def grow(self, amount: int, characters: int, event: yaml.Event) -> None:
        self.expanded += amount
        self.characters += characters
        if self.sizes and self.characters > MAX_BYTES:
            raise _error(
                f"aliases expand the document to more than {MAX_BYTES:,} characters of text, "
                "so it is refused as an alias bomb",
                _mark(self.file, event.start_mark),
            )
        if self.expanded > (MAX_ALIAS_NODES if self.sizes else MAX_NODES):
            message = (
                f"aliases expand the document to more than {MAX_ALIAS_NODES:,} values, "
                "so it is refused as an alias bomb"
                if self.sizes
                else f"the document holds more than {MAX_NODES:,} values"
            )
            raise _error(message, _mark(self.file, event.start_mark))

    def node(self) -> tuple[yaml.Node, int, int]:
        """The next node, its expanded number of values and its expanded characters of text."""
        parser = self.parser
        # PyYAML's and libyaml's events carry marks of two classes with the same fields.
        event: Any = parser.get_event()
        start: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            anchor = str(event.anchor)
            if anchor in self.open:
                raise _error(
                    f"the alias `*{anchor}` refers to a node that contains it, "
                    "so the document would never end",
                    _mark(self.file, event.start_mark),
                )
            if anchor not in self.anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"found undefined alias `{anchor}`", start
                )
            size, characters = self.sizes[anchor]
            self.grow(size, characters, event)
            return self.anchors[anchor], size, characters
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            raise yaml.composer.ComposerError(
                "found duplicate anchor "
                f"`{anchor}` (first on line {self.anchors[anchor].start_mark.line + 1})",
                None,
                "the second occurrence",
                start,
            )
        tag = event.tag
        size = 1
        characters = 0
        node: yaml.Node
        if isinstance(event, yaml.ScalarEvent):
            if tag is None or tag == "!":
                tag = _resolve(event.value) if event.implicit[0] else _STR
            characters = len(event.value)
            self.grow(1, characters, event)
            # libyaml writes a plain scalar's style as "", PyYAML as None.
            end: Any = event.end_mark
            node = yaml.ScalarNode(tag, event.value, start, end, style=event.style or None)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _error(
                    f"the document nests deeper than {MAX_DEPTH} levels",
                    _mark(self.file, event.start_mark),
                )
            self.grow(1, 0, event)
            if anchor is not None:
                self.open.add(anchor)
            if isinstance(event, yaml.SequenceStartEvent):
                if tag is None or tag == "!":
                    tag = _SEQ
                items: list[yaml.Node] = []
                while not parser.check_event(yaml.SequenceEndEvent):
                    item, item_size, item_characters = self.node()
                    items.append(item)
                    size += item_size
                    characters += item_characters
                node = yaml.SequenceNode(tag, items, start, None)
            else:
                if tag is None or tag == "!":
                    tag = _MAP
                pairs: list[tuple[yaml.Node, yaml.Node]] = []
                while not parser.check_event(yaml.MappingEndEvent):
                    key, key_size, key_characters = self.node()
                    value, value_size, value_characters = self.node()
                    pairs.append((key, value))
                    size += key_size + value_size
                    characters += key_characters + value_characters
                node = yaml.MappingNode(tag, pairs, start, None)
            node.end_mark = parser.get_event().end_mark
            self.depth -= 1
            if anchor is not None:
                self.open.discard(anchor)
        else:  # pragma: no cover - the parsers produce no other event here
            raise _error("this YAML node is not supported in a spec", _mark(self.file, event.start_mark))
        if anchor is not None:
            self.anchors[anchor] = node
            self.sizes[anchor] = (size, characters)
        return node, size, characters


def _compose(text: str, file: str, loader: type[Any]) -> yaml.Node | None:
    parser = loader(text)
    try:
        return _Composer(parser, file).document()
    finally:
        parser.dispose()


def read_yaml(text: str, file: str = "<spec>") -> Document:
    """Read one YAML document; every failure is a :class:`LoadError` with file, line and column.

    The text is parsed once, by libyaml (``yaml.CSafeLoader``) where PyYAML was built with it.
    When libyaml finds the text invalid, PyYAML's own parser reads it again, so that every
    syntax error is worded (and located) the same on every installation. (libyaml accepts a
    little more valid YAML 1.2 than PyYAML, such as `?` inside a flow scalar, and places an
    empty value in a flow mapping one column later.)
    """
    _precheck(text, file)
    # PyYAML refuses tabs where libyaml lets some through, and counts a byte order mark inside
    # the text as a column where libyaml does not: such texts are read by PyYAML alone.
    fast = _CLoader is not None and "\t" not in text and "\ufeff" not in text
    loaders: tuple[type[Any], ...] = (_CLoader, _Loader) if fast and _CLoader else (_Loader,)
    node: yaml.Node | None = None
    for loader in loaders:
        try:
            node = _compose(text, file, loader)
            break
        except yaml.MarkedYAMLError as exc:
            if loader is _Loader:
                raise _yaml_message(exc, file) from None
        except yaml.YAMLError as exc:
            if loader is _Loader:
                first = str(exc).splitlines()[0] if str(exc) else "the text is not valid YAML"
                raise _error(f"invalid YAML: {first}", Location(file, 1, 1)) from None
    if node is None:
        raise _error(
            "the file is empty: a spec needs at least `railguard: 1`", Location(file, 1, 1)
        )
    doc = Document(None, file)
    doc.data = _Converter(doc, text).convert(node, ())
    return doc


class _Converter:
    def __init__(self, doc: Document, text: str) -> None:
        self.doc = doc
        self.lines = text.splitlines()
        self.count = 0
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: Path) -> Any:
        file = self.doc.file
        self.count += 1
        if self.count > MAX_NODES:
            raise _error(
                f"the document expands to more than {MAX_NODES:,} values, "
                "so it is refused as an alias bomb",
                _mark(file, node.start_mark),
            )
        self.doc.values.setdefault(path, _mark(file, node.start_mark))
        if id(node) in self.active:
            raise _error(
                "an alias refers to a node that contains it, which would never end",
                _mark(file, node.start_mark),
            )
        if isinstance(node, yaml.ScalarNode):
            self._offsets(node, path)
            return _scalar(node, file, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ:
                    raise _bad_tag(node, file)
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if node.tag != _MAP:
                    raise _bad_tag(node, file)
                return self._mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise _error("this YAML node is not supported in a spec", _mark(file, node.start_mark))

    def _offsets(self, node: yaml.ScalarNode, path: Path) -> None:
        if node.tag != _STR:
            return
        value = str(node.value)
        if node.style == "|":
            start = self._block_start(node)
            if start is not None:
                self.doc.block_starts[path] = start
            self.doc.scalar_offsets[path] = None
        elif "\n" in value or node.start_mark.line != node.end_mark.line:
            self.doc.scalar_offsets[path] = None
        elif node.style in ("'", '"'):
            # Escapes make positions inside a quoted text drift; map only plain content.
            raw = self.lines[node.start_mark.line][node.start_mark.column :]
            exact = "\\" not in raw[: node.end_mark.column] and "''" not in raw
            self.doc.scalar_offsets[path] = 1 if exact else None
        else:
            self.doc.scalar_offsets[path] = 0

    def _block_start(self, node: yaml.ScalarNode) -> Location | None:
        """Where the first non-blank line of a literal block scalar's text sits in the file."""
        for number in range(node.start_mark.line + 1, min(node.end_mark.line + 1, len(self.lines))):
            line = self.lines[number]
            if line.strip():
                indent = len(line) - len(line.lstrip(" "))
                return Location(self.doc.file, number + 1, indent + 1)
        return None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        file = self.doc.file
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            where = _mark(file, key_node.start_mark)
            if key_node.tag == "tag:yaml.org,2002:merge" or (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.value == "<<"
                and key_node.style is None
            ):
                raise _error(
                    "merge keys (`<<`) are not supported in specs: write each key out", where
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise _error(
                    f"a key in {describe_path(path)} must be a plain value, "
                    "not a list or a mapping",
                    where,
                )
            key = _scalar(key_node, file, path, key=True)
            key = key if isinstance(key, str) else _key_text(key)
            if key in result:
                first = self.doc.keys[(*path, key)]
                raise _error(
                    f"duplicate key `{key}` in {describe_path(path)} (first on line {first.line})",
                    where,
                )
            self.doc.keys[(*path, key)] = where
            result[key] = self.convert(value_node, (*path, key))
        return result


def _key_text(key: Any) -> str:
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return str(key)


def _bad_tag(node: yaml.Node, file: str) -> LoadError:
    tag = str(node.tag)
    shown = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml") else tag
    return _error(
        f"unsupported YAML tag `{shown}`: a spec holds plain data only",
        _mark(file, node.start_mark),
    )


def _scalar(node: yaml.ScalarNode, file: str, path: Path, *, key: bool = False) -> Any:
    tag, value = node.tag, node.value
    if tag == _STR:
        problem = text_problem(value, path, key=key)
        if problem is not None:
            raise _error(problem, _mark(file, node.start_mark))
        return value
    if tag in _CORE_TEXT and not _CORE_TEXT[tag].fullmatch(value):
        shown = "!!" + tag.removeprefix("tag:yaml.org,2002:")
        raise _error(
            f"{_show_text(value)} is not a valid `{shown}` value", _mark(file, node.start_mark)
        )
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return value.lower() == "true"
    if tag == "tag:yaml.org,2002:int":
        digits = value.lstrip("+-")
        where = f"a key in {describe_path(path)}" if key else f"a number in {describe_path(path)}"
        too_long = f"{where} has more than {MAX_DIGITS} digits"
        if len(digits) > MAX_DIGITS:
            raise _error(too_long, _mark(file, node.start_mark))
        if digits.startswith("0o"):
            number = int(value.replace("0o", "", 1), 8)
        elif digits.startswith("0x"):
            number = int(value.replace("0x", "", 1), 16)
        else:
            number = int(value)
        if _too_long(number):
            raise _error(too_long, _mark(file, node.start_mark))
        return number
    if tag == "tag:yaml.org,2002:float":
        if "inf" in value.lower() or "nan" in value.lower():
            raise _error(
                f"`{value}` is not allowed: numbers in a spec must be finite",
                _mark(file, node.start_mark),
            )
        if len(value.lstrip("+-")) > MAX_DIGITS:
            raise _error(
                f"a number in {describe_path(path)} has more than {MAX_DIGITS} digits",
                _mark(file, node.start_mark),
            )
        # Keep numbers exact: a decimal, never a binary float.
        return _number(value, path, _mark(file, node.start_mark))
    raise _bad_tag(node, file)


def _number(text: str, path: Path, where: Location) -> _Number:
    """The document number ``text`` at ``path``, refused when it is beyond a spec's reach."""
    if parse_decimal(text) is None:
        shown = f"{_show_text(text)} in {describe_path(path)}"
        problem = decimal_problem(Decimal(1).scaleb(MAX_DIGITS), shown)
        assert problem is not None
        raise _error(problem, where)
    return _Number(text)


def _show_text(value: str) -> str:
    """``value`` in backticks, shortened when long (or "an empty value")."""
    if not value:
        return "an empty value"
    return f"`{value[:40]}…`" if len(value) > 40 else f"`{value}`"


class _Number(Decimal):
    """A YAML/JSON number that is not an integer: its exact value, shown as it was written.

    It is a :class:`~decimal.Decimal`, never a ``str``, so no text field can take a number
    for text; it prints as its source text (``1e5`` stays ``1e5`` in messages and guards).
    """

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> _Number:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str, context: Context | None = None, /) -> str:
        return self.text if not spec else format(Decimal(self), spec)


# --------------------------------------------------------------------------- JSON


def _outside_strings(text: str) -> Any:
    """Yield ``(index, char)`` for every character of JSON ``text`` outside string literals."""
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
        else:
            yield index, char


def read_json(text: str, file: str = "<spec>") -> Document:
    """Read a JSON document exactly (numbers keep their text) with positions of every value."""
    _precheck(text, file)
    reader = _JsonReader(text, Document(None, file))
    depth = 0
    for index, char in _outside_strings(text):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _error(
                    f"the document nests deeper than {MAX_DEPTH} levels", reader.loc(index)
                )
        elif char in "]}":
            depth -= 1
    try:
        # Syntax only: numbers and constants stay text here, the reader below converts them.
        json.loads(text, parse_int=str, parse_float=str, parse_constant=str)
    except json.JSONDecodeError as exc:
        message = exc.msg[:1].lower() + exc.msg[1:]
        raise _error(f"invalid JSON: {message}", Location(file, exc.lineno, exc.colno)) from None
    except (ValueError, RecursionError):
        raise _error("invalid JSON: the text cannot be read", Location(file, 1, 1)) from None
    reader.doc.data = reader.read()
    return reader.doc


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_CONSTANTS = {"true": True, "false": False, "null": None}


class _JsonReader:
    """Walks JSON text already known to be well formed, recording where everything is."""

    def __init__(self, text: str, doc: Document) -> None:
        self.text = text
        self.doc = doc
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    def loc(self, index: int) -> Location:
        line = bisect.bisect_left(self.newlines, index)
        start = self.newlines[line - 1] + 1 if line else 0
        return Location(self.doc.file, line + 1, index - start + 1)

    def read(self) -> Any:
        value, _ = self.value(0, ())
        return value

    def skip(self, index: int) -> int:
        match = _WHITESPACE.match(self.text, index)
        return match.end() if match else index

    def value(self, index: int, path: Path) -> tuple[Any, int]:
        text = self.text
        index = self.skip(index)
        self.doc.values.setdefault(path, self.loc(index))
        char = text[index]
        if char == "{":
            return self.mapping(index + 1, path)
        if char == "[":
            items: list[Any] = []
            index = self.skip(index + 1)
            if text[index] == "]":
                return items, index + 1
            while True:
                item, index = self.value(index, (*path, len(items)))
                items.append(item)
                index = self.skip(index)
                if text[index] == "]":
                    return items, index + 1
                index += 1  # the comma
        if char == '"':
            string, end = self.string(index)
            problem = text_problem(string, path)
            if problem is not None:
                raise _error(problem, self.loc(index))
            exact = "\\" not in text[index:end]
            self.doc.scalar_offsets[path] = 1 if exact else None
            return string, end
        for word, constant in _CONSTANTS.items():
            if text.startswith(word, index):
                return constant, index + len(word)
        match = _JSON_NUMBER.match(text, index)
        if match is None:
            bare = re.match(r"-?[A-Za-z]+", text[index:])
            shown = bare.group(0) if bare else char
            raise _error(
                f"`{shown}` is not allowed: numbers in a spec must be finite", self.loc(index)
            )
        number = match.group(0)
        if len(number) > MAX_DIGITS:
            raise _error(
                f"a number in {describe_path(path)} has more than {MAX_DIGITS} digits",
                self.loc(index),
            )
        if match.group(1) or match.group(2):
            return _number(number, path, self.loc(index)), match.end()
        return int(number), match.end()

    def string(self, index: int) -> tuple[str, int]:
        """The string literal starting at ``index`` (its opening quote) and the index after it."""
        match = _JSON_STRING.match(self.text, index)
        assert match is not None, "the text was checked by json.loads"
        return str(json.loads(match.group(0))), match.end()

    def mapping(self, index: int, path: Path) -> tuple[dict[str, Any], int]:
        text = self.text
        result: dict[str, Any] = {}
        index = self.skip(index)
        if text[index] == "}":
            return result, index + 1
        while True:
            where = self.loc(index)
            key, index = self.string(index)
            problem = text_problem(key, path, key=True)
            if problem is not None:
                raise _error(problem, where)
            if key in result:
                first = self.doc.keys[(*path, key)]
                raise _error(
                    f"duplicate key `{key}` in {describe_path(path)} (first on line {first.line})",
                    where,
                )
            self.doc.keys[(*path, key)] = where
            index = self.skip(index) + 1  # the colon
            result[key], index = self.value(index, (*path, key))
            index = self.skip(index)
            if text[index] == "}":
                return result, index + 1
            index = self.skip(index + 1)  # the comma
