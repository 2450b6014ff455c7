"""The expression language: a safe subset of Python expression syntax.

Source text is parsed with :mod:`ast` into railguard's own immutable tree (the ``Node``
subclasses below), type-checked against a :class:`Scope`, and printed back by
:func:`unparse`. Nothing is ever passed to ``eval`` or ``exec``: the runtime compiles the
tree to closures (:mod:`railguard.spec.evaluate`) and the verifier compiles the same tree to
Z3 terms, so the proof and the execution share one parser.

Semantics that every back end must share:

- ``//`` and ``%`` are Python's floor division and modulo (``-7 // 2 == -4``,
  ``-7 % 2 == 1``, ``7 % -2 == -1``): the remainder takes the divisor's sign. SMT-LIB's
  ``div``/``mod`` are Euclidean and differ when the divisor is negative. Division or modulo
  by zero is an :class:`~railguard.spec.EvaluationError`, not a value.
- ``bool`` is not a number: ``True`` never equals ``1``, and the checker never lets a bool
  meet an int.
- Decimal literals are exact (``0.1`` is one tenth, not a float) and decimal arithmetic is
  exact: no rounding to a context precision. A decimal-typed expression may yield an ``int``
  when only ints reached it (``x if c else 1.5`` with ``c`` true); the value is the same.
- A list literal is a set value: ``[1, 1] == [1]`` and ``len([x, x]) == 1``.
"""

from __future__ import annotations

import ast
import difflib
import functools
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .errors import ExpressionError
from .limits import MAX_DIGITS, MAX_EXPRESSION_LENGTH, MAX_NAME_LENGTH
from .types import Type, list_values

__all__ = [
    "FUNCTIONS",
    "RESERVED_NAMES",
    "Actor",
    "Binary",
    "BoolOp",
    "Call",
    "Compare",
    "Conditional",
    "ExprType",
    "ListExpr",
    "Literal",
    "Node",
    "Param",
    "Scope",
    "StateRef",
    "Unary",
    "Var",
    "check",
    "children",
    "parse",
    "unparse",
]

#: The functions an expression may call, with their arity (``None``: two or more).
FUNCTIONS: Mapping[str, int | None] = {"implies": 2, "min": None, "max": None, "abs": 1, "len": 1}
#: Names that cannot be used for variables or params.
RESERVED_NAMES = frozenset({"actor", "state", "params", "True", "False", "None", *FUNCTIONS})

MAX_SOURCE_LENGTH = MAX_EXPRESSION_LENGTH
MAX_DEPTH = 100
#: A decimal literal's digits may reach at most this far from the decimal point, so that its
#: canonical text (never in exponent notation) stays short; an integer literal is below
#: ``10**MAX_DIGITS`` in magnitude. These are the bounds of numbers written in a document.
MAX_DECIMAL_EXPONENT = MAX_DIGITS
_INT_LIMIT = 10**MAX_DIGITS


# --------------------------------------------------------------------------- tree


@dataclass(frozen=True, slots=True)
class Node:
    """Base of the expression tree. ``line``/``col`` (1-based, within the source) are not compared.

    Trees are canonical as :func:`parse` returns them: a minus sign before a number literal is
    folded into the literal (``-5`` is ``Literal(-5)``, never ``Unary("-", Literal(5))``), and a
    chained comparison ``a < b < c`` is the ``and`` of its pairs. ``parse(unparse(t)) == t``
    holds for every canonical tree.
    """

    line: int = field(default=1, compare=False, repr=False, kw_only=True)
    col: int = field(default=1, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A constant: ``int``, ``Decimal``, ``bool``, ``str`` or ``None``.

    Equal when the values have the same type and compare equal: ``True`` is not ``1`` and
    ``1`` is not ``1.0``, but ``Decimal("1.50") == Decimal("1.5")`` (both print as ``1.5``).
    """

    value: int | Decimal | bool | str | None

    def __eq__(self, other: object) -> bool:
        # 1 == True in Python; the tree must keep them apart.
        return (
            isinstance(other, Literal)
            and type(self.value) is type(other.value)
            and self.value == other.value
        )

    def __hash__(self) -> int:
        return hash((Literal, type(self.value), self.value))


@dataclass(frozen=True, slots=True)
class Var(Node):
    """A spec variable."""

    name: str


@dataclass(frozen=True, slots=True)
class Param(Node):
    """``params.<name>``: an event parameter of the transition."""

    name: str


@dataclass(frozen=True, slots=True)
class Actor(Node):
    """``actor``: the authenticated principal firing the event."""


@dataclass(frozen=True, slots=True)
class StateRef(Node):
    """``state``: the current state's name."""


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """``not x`` or ``-x``."""

    op: str  # "not" | "-"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """Arithmetic: ``+ - * // %``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    """``and`` / ``or`` over two or more operands."""

    op: str  # "and" | "or"
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """One comparison; chains such as ``a < b < c`` are parsed into ``and`` of pairs."""

    op: str  # == != < <= > >= in "not in"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    """A list literal ``[a, b, ...]``: the right side of ``in`` or a value for a set variable."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    """``then if cond else orelse``."""

    cond: Node
    then: Node
    orelse: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A call of one of :data:`FUNCTIONS`."""

    func: str
    args: tuple[Node, ...]


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary | Compare):
        return (node.left, node.right)
    if isinstance(node, BoolOp):
        return node.operands
    if isinstance(node, ListExpr):
        return node.items
    if isinstance(node, Conditional):
        return (node.cond, node.then, node.orelse)
    if isinstance(node, Call):
        return node.args
    return ()


# --------------------------------------------------------------------------- parser

_BINOPS: Mapping[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.FloorDiv: "//",
    ast.Mod: "%",
}
_CMPOPS: Mapping[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_FORBIDDEN: Mapping[type[ast.AST], str] = {
    ast.Lambda: "lambdas are not allowed in expressions",
    ast.ListComp: "comprehensions are not allowed in expressions",
    ast.SetComp: "comprehensions are not allowed in expressions",
    ast.DictComp: "comprehensions are not allowed in expressions",
    ast.GeneratorExp: "comprehensions are not allowed in expressions",
    ast.Subscript: "subscripts are not allowed in expressions",
    ast.Starred: "starred expressions are not allowed",
    ast.NamedExpr: "assignment expressions (`:=`) are not allowed",
    ast.Await: "`await` is not allowed in expressions",
    ast.Yield: "`yield` is not allowed in expressions",
    ast.YieldFrom: "`yield` is not allowed in expressions",
    ast.JoinedStr: "f-strings are not allowed in expressions",
    ast.Dict: "dict literals are not allowed in expressions",
    ast.Set: "set literals are not allowed: use a list `[...]`",
    ast.Tuple: "tuples are not allowed: use a list `[...]`",
    ast.Slice: "slices are not allowed in expressions",
}


def parse(source: str) -> Node:
    """Parse expression text into a tree, or raise :class:`ExpressionError`.

    Only the syntax listed in DESIGN §2 is accepted; anything else (attribute access other
    than ``params.<name>``, calls other than :data:`FUNCTIONS`, lambdas, comprehensions,
    subscripts, dunder names, ...) is refused with a message naming the construct.
    Trees are immutable and their positions are relative to ``source``, so the tree of a
    text seen before (a guard repeated on many transitions) is shared, not parsed again.
    """
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be text, not {type(source).__name__}")
    return _parse_text(source)


@functools.lru_cache(maxsize=4096)
def _parse_text(source: str) -> Node:
    if not source.strip():
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_SOURCE_LENGTH} characters")
    text = source.strip()
    # A YAML block scalar may span lines; inside parentheses Python accepts that.
    wrapped = "(\n" + text + "\n)" if "\n" in text else text
    shift = 1 if wrapped is not text else 0
    try:
        # The parser's warnings (invalid escape sequences, ...) depend on the interpreter's
        # warning filters; refuse them always, so a spec loads the same everywhere.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tree = ast.parse(wrapped, mode="eval")
    except SyntaxError as exc:
        line = (exc.lineno or 1) - shift
        msg = (exc.msg or "invalid syntax").rstrip(".")
        raise ExpressionError(
            f"invalid expression syntax: {msg}", max(line, 1), exc.offset or 1
        ) from None
    except (RecursionError, MemoryError, ValueError, OverflowError):
        raise ExpressionError("the expression is nested too deeply or malformed") from None
    for warning in caught:
        message = str(warning.message).rstrip(".")
        raise ExpressionError(f"invalid expression syntax: {message}")
    if shift and tree.body.lineno < 2:
        # The expression began at the wrapping parenthesis: the text closed it early, as in
        # `a) + (` + newline + `b`, which is not an expression on its own.
        raise ExpressionError("invalid expression syntax: unmatched ')'")
    return _Converter(wrapped, shift=shift).convert(tree.body, 0)


class _Converter:
    def __init__(self, source: str, shift: int) -> None:
        self.source = source
        self.shift = shift

    def _pos(self, node: ast.AST) -> dict[str, int]:
        line = getattr(node, "lineno", 1) - self.shift
        return {"line": max(line, 1), "col": getattr(node, "col_offset", 0) + 1}

    def _fail(self, node: ast.AST, message: str) -> ExpressionError:
        pos = self._pos(node)
        return ExpressionError(message, pos["line"], pos["col"])

    def convert(self, node: ast.AST, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self._fail(node, f"the expression nests deeper than {MAX_DEPTH} levels")
        pos = self._pos(node)
        sub = depth + 1
        for kind, message in _FORBIDDEN.items():
            if isinstance(node, kind):
                raise self._fail(node, message)
        if isinstance(node, ast.Constant):
            return self._constant(node, pos)
        if isinstance(node, ast.Name):
            return self._name(node, pos)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "params":
                if node.attr.startswith("_"):
                    raise self._fail(node, f"`params.{node.attr}` is not a valid param name")
                return Param(node.attr, **pos)
            raise self._fail(node, "attribute access is limited to `params.<name>`")
        if isinstance(node, ast.UnaryOp):
            operand = self.convert(node.operand, sub)
            if isinstance(node.op, ast.Not):
                return Unary("not", operand, **pos)
            if isinstance(node.op, ast.USub):
                if _is_number(operand):
                    assert isinstance(operand, Literal)
                    assert isinstance(operand.value, int | Decimal)
                    return Literal(-operand.value, **pos)
                return Unary("-", operand, **pos)
            if isinstance(node.op, ast.UAdd):
                # The tree has no unary plus; accepting `+flag` as `flag` would hide a type error.
                if _is_number(operand):
                    return operand
                raise self._fail(node, "unary `+` is only allowed before a number")
            raise self._fail(node, "bitwise `~` is not allowed in expressions")
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                if isinstance(node.op, ast.Div):
                    raise self._fail(node, "`/` is not allowed: use `//` for integer division")
                if isinstance(node.op, ast.Pow):
                    raise self._fail(node, "`**` is not allowed in expressions")
                raise self._fail(
                    node, "bitwise and matrix operators are not allowed in expressions"
                )
            return Binary(op, self.convert(node.left, sub), self.convert(node.right, sub), **pos)
        if isinstance(node, ast.BoolOp):
            # `a and b and c` is one node with three operands; `(a and b) and c` keeps its
            # grouping, as Python's own tree does, so unparse can print it back.
            bop = "and" if isinstance(node.op, ast.And) else "or"
            return BoolOp(bop, tuple(self.convert(v, sub) for v in node.values), **pos)
        if isinstance(node, ast.Compare):
            return self._compare(node, pos, sub)
        if isinstance(node, ast.List):
            return ListExpr(tuple(self.convert(item, sub) for item in node.elts), **pos)
        if isinstance(node, ast.IfExp):
            return Conditional(
                self.convert(node.test, sub),
                self.convert(node.body, sub),
                self.convert(node.orelse, sub),
                **pos,
            )
        if isinstance(node, ast.Call):
            return self._call(node, pos, sub)
        raise self._fail(node, f"`{type(node).__name__}` syntax is not allowed in expressions")

    def _constant(self, node: ast.Constant, pos: dict[str, int]) -> Node:
        value = node.value
        if value is None or isinstance(value, bool | str):
            return Literal(value, **pos)
        if isinstance(value, int):
            if abs(value) >= _INT_LIMIT:
                text = ast.get_source_segment(self.source, node) or "the literal"
                shown = f"{text[:20]}…" if len(text) > 20 else text
                raise self._fail(
                    node, f"the integer literal `{shown}` has more than {MAX_DIGITS} digits"
                )
            return Literal(value, **pos)
        if isinstance(value, float):
            # Keep decimal literals exact: rebuild them from their digits, not from the float.
            text = ast.get_source_segment(self.source, node) or repr(value)
            try:
                dec = Decimal(text.replace("_", ""))
            except InvalidOperation:
                raise self._fail(node, f"`{text}` is not a valid decimal literal") from None
            if not dec.is_finite():
                raise self._fail(node, "infinite and NaN numbers are not allowed")
            exponent = dec.as_tuple().exponent
            assert isinstance(exponent, int)
            if dec.adjusted() >= MAX_DECIMAL_EXPONENT or exponent < -MAX_DECIMAL_EXPONENT:
                shown = f"{text[:20]}…" if len(text) > 20 else text
                raise self._fail(
                    node,
                    f"`{shown}` is too large or too precise for a decimal literal "
                    f"(at most {MAX_DIGITS} digits before and after the point)",
                )
            return Literal(dec, **pos)
        raise self._fail(node, f"{type(value).__name__} literals are not allowed in expressions")

    def _name(self, node: ast.Name, pos: dict[str, int]) -> Node:
        name = node.id
        if name.startswith("__"):
            raise self._fail(node, f"`{name}` is not allowed in expressions")
        if name == "actor":
            return Actor(**pos)
        if name == "state":
            return StateRef(**pos)
        if name == "params":
            raise self._fail(node, "`params` must be followed by `.<name>`")
        if name in FUNCTIONS:
            raise self._fail(node, f"`{name}` is a function and must be called")
        return Var(name, **pos)

    def _compare(self, node: ast.Compare, pos: dict[str, int], sub: int) -> Node:
        operands = [self.convert(node.left, sub), *(self.convert(c, sub) for c in node.comparators)]
        pairs: list[Node] = []
        for index, op_node in enumerate(node.ops):
            op = _CMPOPS.get(type(op_node))
            if op is None:
                raise self._fail(node, "`is` and `is not` are not allowed: use `==` and `!=`")
            pairs.append(Compare(op, operands[index], operands[index + 1], **pos))
        if len(pairs) == 1:
            return pairs[0]
        return BoolOp("and", tuple(pairs), **pos)

    def _call(self, node: ast.Call, pos: dict[str, int], sub: int) -> Node:
        if not isinstance(node.func, ast.Name):
            raise self._fail(
                node, "only the functions implies, min, max, abs and len may be called"
            )
        name = node.func.id
        if name not in FUNCTIONS:
            raise self._fail(
                node,
                f"`{name}` cannot be called: only implies, min, max, abs and len are allowed",
            )
        if node.keywords:
            raise self._fail(node, f"`{name}` takes no keyword arguments")
        args = tuple(self.convert(a, sub) for a in node.args)
        arity = FUNCTIONS[name]
        if arity is None and len(args) < 2:
            raise self._fail(node, f"`{name}` takes two or more arguments")
        if arity is not None and len(args) != arity:
            plural = "s" if arity != 1 else ""
            raise self._fail(
                node, f"`{name}` takes exactly {arity} argument{plural}, not {len(args)}"
            )
        return Call(name, args, **pos)


def _is_number(node: Node) -> bool:
    """Whether ``node`` is an int or decimal literal (not a bool)."""
    return (
        isinstance(node, Literal)
        and isinstance(node.value, int | Decimal)
        and not isinstance(node.value, bool)
    )


# --------------------------------------------------------------------------- unparse

_PREC = {
    "if": 0,
    "or": 1,
    "and": 2,
    "not": 3,
    "cmp": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "//": 6,
    "%": 6,
    "neg": 7,
    "atom": 8,
}


def _prec(node: Node) -> int:
    if isinstance(node, Conditional):
        return _PREC["if"]
    if isinstance(node, BoolOp):
        return _PREC[node.op]
    if isinstance(node, Unary):
        return _PREC["not"] if node.op == "not" else _PREC["neg"]
    if isinstance(node, Compare):
        return _PREC["cmp"]
    if isinstance(node, Binary):
        return _PREC[node.op]
    if isinstance(node, Literal) and _is_number(node):
        assert isinstance(node.value, int | Decimal)
        if node.value < 0:
            return _PREC["neg"]
    return _PREC["atom"]


def _wrap(node: Node, minimum: int) -> str:
    text = unparse(node)
    return f"({text})" if _prec(node) < minimum else text


def unparse(node: Node) -> str:
    """Print a tree as canonical expression text; ``parse(unparse(t)) == t`` for every tree."""
    if isinstance(node, Literal):
        value = node.value
        if isinstance(value, str):
            return _string_text(value)
        if isinstance(value, Decimal):
            return _decimal_text(value)
        return repr(value)
    if isinstance(node, Var):
        return node.name
    if isinstance(node, Param):
        return f"params.{node.name}"
    if isinstance(node, Actor):
        return "actor"
    if isinstance(node, StateRef):
        return "state"
    if isinstance(node, Unary):
        if node.op == "not":
            return "not " + _wrap(node.operand, _PREC["not"])
        return "-" + _wrap(node.operand, _PREC["neg"])
    if isinstance(node, Binary):
        prec = _PREC[node.op]
        return f"{_wrap(node.left, prec)} {node.op} {_wrap(node.right, prec + 1)}"
    if isinstance(node, BoolOp):
        prec = _PREC[node.op]
        return f" {node.op} ".join(_wrap(o, prec + 1) for o in node.operands)
    if isinstance(node, Compare):
        prec = _PREC["cmp"]
        return f"{_wrap(node.left, prec + 1)} {node.op} {_wrap(node.right, prec + 1)}"
    if isinstance(node, ListExpr):
        return "[" + ", ".join(_wrap(i, 1) for i in node.items) + "]"
    if isinstance(node, Conditional):
        return f"{_wrap(node.then, 1)} if {_wrap(node.cond, 1)} else {_wrap(node.orelse, 0)}"
    if isinstance(node, Call):
        return f"{node.func}(" + ", ".join(_wrap(a, 1) for a in node.args) + ")"
    raise TypeError(f"not an expression node: {node!r}")


def _string_text(value: str) -> str:
    # JSON string syntax is Python string syntax, except that a lone surrogate would be
    # written raw, which Python source cannot hold: escape those.
    text = json.dumps(value, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)


def _decimal_text(value: Decimal) -> str:
    """Exact text of a decimal, without exponent or trailing zeros: ``1E+2`` → ``100.0``.

    Numerically equal decimals (``1.5``, ``1.50``, ``-0.0``, ``0``) print the same, as
    equal :class:`Literal` nodes must.
    """
    text = format(value, "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0") or "0"
    if whole in ("-0", "0") and fraction == "0":
        return "0.0"
    return f"{whole}.{fraction}"


# --------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class ExprType:
    """The static type of an expression.

    ``kind`` is one of int, decimal, bool, str, enum, principal, set, list, none.
    ``values`` holds an enum's values; for a ``literal`` str (text known statically), the
    values it can take: one for ``"a"``, two for ``"a" if c else "b"``. Such text may meet an
    enum whose values include all of them. ``elem`` is the element type of a set or list.
    """

    kind: str
    values: tuple[str, ...] = ()
    elem: ExprType | None = None
    literal: bool = False

    def describe(self) -> str:
        if self.kind == "enum":
            return "enum (" + list_values(self.values) + ")"
        if self.kind in ("set", "list") and self.elem is not None:
            return f"{self.kind} of {self.elem.describe()}"
        if self.kind == "none":
            return "None"
        return self.kind

    @staticmethod
    def of(declared: Type) -> ExprType:
        """The expression type of a declared variable or param type."""
        if declared.kind == "enum":
            return ExprType("enum", declared.values)
        if declared.kind == "set":
            assert declared.of is not None
            return ExprType("set", elem=ExprType.of(declared.of))
        return ExprType(declared.kind)


BOOL = ExprType("bool")
INT = ExprType("int")
DECIMAL = ExprType("decimal")
PRINCIPAL = ExprType("principal")
NUMERIC = ("int", "decimal")


@dataclass(frozen=True)
class Scope:
    """What names an expression may use.

    ``params`` is ``None`` outside a transition (invariants): then ``params`` and ``actor``
    are refused. ``states`` are the names ``state`` may be compared with.
    """

    variables: Mapping[str, Type]
    states: tuple[str, ...]
    params: Mapping[str, Type] | None = None
    allow_actor: bool = False


def _fail(node: Node, message: str) -> ExpressionError:
    return ExpressionError(message, node.line, node.col)


def _comparable(a: ExprType, b: ExprType) -> bool:
    if a.kind in NUMERIC and b.kind in NUMERIC:
        return True
    if a.kind == "none" or b.kind == "none":
        other = b if a.kind == "none" else a
        return other.kind in ("principal", "none")
    if {a.kind, b.kind} <= {"str", "enum"}:
        if a.kind == "enum" and b.kind == "enum":
            return bool(set(a.values) & set(b.values))
        if a.kind == "enum" or b.kind == "enum":
            text, enum = (a, b) if a.kind == "str" else (b, a)
            return _literal_in(text, enum.values)
        return True
    if a.kind in ("set", "list") and b.kind in ("set", "list"):
        return a.elem is None or b.elem is None or _comparable(a.elem, b.elem)
    return a.kind == b.kind


def _literal_in(text: ExprType, values: tuple[str, ...]) -> bool:
    """Whether ``text`` is literal text whose every possible value is one of ``values``."""
    return text.literal and bool(text.values) and set(text.values) <= set(values)


def _join(a: ExprType, b: ExprType) -> ExprType | None:
    """The type of a value that is of type ``a`` or of type ``b`` (``if`` branches, list items)."""
    if a.kind in NUMERIC and b.kind in NUMERIC:
        return DECIMAL if "decimal" in (a.kind, b.kind) else INT
    if a == b:
        return a
    if a.kind == "enum" and b.kind == "enum":
        return ExprType("enum", tuple(dict.fromkeys(a.values + b.values)))
    if {a.kind, b.kind} == {"enum", "str"}:
        enum, text = (a, b) if a.kind == "enum" else (b, a)
        return enum if _literal_in(text, enum.values) else None
    if a.kind == "str" and b.kind == "str":
        if a.literal and b.literal:
            return ExprType("str", tuple(dict.fromkeys(a.values + b.values)), literal=True)
        return ExprType("str")
    if {a.kind, b.kind} == {"principal", "none"}:
        return PRINCIPAL
    if a.kind in ("set", "list") and b.kind in ("set", "list"):
        # `tags if c else []`: a list literal is a set value.
        kind = "set" if "set" in (a.kind, b.kind) else "list"
        if a.elem is None or b.elem is None:
            return ExprType(kind, elem=a.elem or b.elem)
        elem = _join(a.elem, b.elem)
        return None if elem is None else ExprType(kind, elem=elem)
    return None


def _mismatch(op: str, a: ExprType, b: ExprType) -> str:
    for enum, text in ((a, b), (b, a)):
        if enum.kind == "enum" and text.literal:
            missing = next((v for v in text.values if v not in enum.values), None)
            if missing is not None:
                return f"{missing!r} is not one of {list_values(enum.values)}"
    return f"`{op}` cannot compare {a.describe()} with {b.describe()}"


def check(node: Node, scope: Scope) -> ExprType:
    """Type-check ``node`` in ``scope`` and return its type, or raise :class:`ExpressionError`."""
    if isinstance(node, Literal):
        value = node.value
        if value is None:
            return ExprType("none")
        if isinstance(value, bool):
            return BOOL
        if isinstance(value, int):
            return INT
        if isinstance(value, Decimal):
            return DECIMAL
        return ExprType("str", (value,), literal=True)
    if isinstance(node, Var):
        declared = scope.variables.get(node.name)
        if declared is None:
            hint = _suggest(node.name, scope.variables)
            raise _fail(node, f"unknown variable `{node.name}`{hint}")
        return ExprType.of(declared)
    if isinstance(node, Param):
        if scope.params is None:
            raise _fail(node, f"`params.{node.name}` is only available in transitions")
        declared = scope.params.get(node.name)
        if declared is None:
            hint = _suggest(node.name, scope.params)
            raise _fail(node, f"unknown param `{node.name}`{hint}")
        return ExprType.of(declared)
    if isinstance(node, Actor):
        if not scope.allow_actor:
            raise _fail(
                node,
                "`actor` is only available in transitions; compare principal variables instead",
            )
        return PRINCIPAL
    if isinstance(node, StateRef):
        return ExprType("enum", scope.states)
    if isinstance(node, Unary):
        inner = check(node.operand, scope)
        if node.op == "not":
            if inner.kind != "bool":
                raise _fail(node, f"`not` needs a bool, not {inner.describe()}")
            return BOOL
        if inner.kind not in NUMERIC:
            raise _fail(node, f"unary `-` needs a number, not {inner.describe()}")
        return inner
    if isinstance(node, Binary):
        left, right = check(node.left, scope), check(node.right, scope)
        both = f"{left.describe()} and {right.describe()}"
        if node.op in ("//", "%"):
            if left.kind != "int" or right.kind != "int":
                raise _fail(node, f"`{node.op}` needs two ints, not {both}")
            return INT
        if left.kind not in NUMERIC or right.kind not in NUMERIC:
            raise _fail(node, f"`{node.op}` needs numbers, not {both}")
        return DECIMAL if "decimal" in (left.kind, right.kind) else INT
    if isinstance(node, BoolOp):
        for operand in node.operands:
            kind = check(operand, scope)
            if kind.kind != "bool":
                raise _fail(operand, f"`{node.op}` needs bool operands, not {kind.describe()}")
        return BOOL
    if isinstance(node, Compare):
        return _check_compare(node, scope)
    if isinstance(node, ListExpr):
        if not node.items:
            return ExprType("list")
        types = [check(item, scope) for item in node.items]
        elem = types[0]
        for item, kind in zip(node.items[1:], types[1:], strict=True):
            joined = _join(elem, kind)
            if joined is None:
                raise _fail(item, "list items must all have the same type")
            elem = joined
        if elem.kind in ("set", "list"):
            raise _fail(node, "lists of lists are not allowed")
        return ExprType("list", elem=elem)
    if isinstance(node, Conditional):
        cond = check(node.cond, scope)
        if cond.kind != "bool":
            raise _fail(node.cond, f"the condition of `if` must be bool, not {cond.describe()}")
        then, orelse = check(node.then, scope), check(node.orelse, scope)
        joined = _join(then, orelse)
        if joined is None:
            raise _fail(
                node,
                "the branches of `if` have different types: "
                f"{then.describe()} and {orelse.describe()}",
            )
        return joined
    if isinstance(node, Call):
        return _check_call(node, scope)
    raise _fail(node, "unsupported expression")


def _check_compare(node: Compare, scope: Scope) -> ExprType:
    left, right = check(node.left, scope), check(node.right, scope)
    if node.op in ("in", "not in"):
        if right.kind not in ("set", "list"):
            raise _fail(
                node,
                f"the right side of `{node.op}` must be a list or a set, not {right.describe()}",
            )
        if right.elem is not None:
            elem = right.elem
            if left.kind == "enum" and elem.kind == "str" and elem.values:
                missing = [v for v in elem.values if v not in left.values]
                if missing:
                    raise _fail(node, f"{missing[0]!r} is not one of {list_values(left.values)}")
                return BOOL
            if not _comparable(left, elem):
                raise _fail(node, _mismatch(node.op, left, elem))
        return BOOL
    if not _comparable(left, right):
        raise _fail(node, _mismatch(node.op, left, right))
    if node.op not in ("==", "!=") and (left.kind not in NUMERIC or right.kind not in NUMERIC):
        raise _fail(node, f"`{node.op}` orders numbers only, not {left.describe()}")
    return BOOL


def _check_call(node: Call, scope: Scope) -> ExprType:
    types = [check(arg, scope) for arg in node.args]
    if node.func == "implies":
        for arg, kind in zip(node.args, types, strict=True):
            if kind.kind != "bool":
                raise _fail(arg, f"`implies` needs bool arguments, not {kind.describe()}")
        return BOOL
    if node.func == "len":
        if types[0].kind not in ("set", "list", "str"):
            raise _fail(node, f"`len` needs a set or a str, not {types[0].describe()}")
        return INT
    for arg, kind in zip(node.args, types, strict=True):
        if kind.kind not in NUMERIC:
            raise _fail(arg, f"`{node.func}` needs numbers, not {kind.describe()}")
    return DECIMAL if any(t.kind == "decimal" for t in types) else INT


#: Hints compare a misspelt name with at most this many known names (each comparison costs;
#: a spec of many thousands of variables gets no hint rather than a slow load).
_MAX_HINT_CANDIDATES = 1_000


def _suggest(name: str, known: Mapping[str, object]) -> str:
    if len(known) > _MAX_HINT_CANDIDATES or len(name) > MAX_NAME_LENGTH:
        return ""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def assignable(target: Type, value: ExprType) -> bool:
    """Whether a value of type ``value`` may be assigned to a variable declared as ``target``."""
    kind = target.kind
    if kind == "int":
        return value.kind == "int"
    if kind == "decimal":
        return value.kind in NUMERIC
    if kind == "bool":
        return value.kind == "bool"
    if kind == "str":
        return value.kind in ("str", "enum")
    if kind == "enum":
        if value.kind == "enum":
            return set(value.values) <= set(target.values)
        return value.kind == "str" and _literal_in(value, target.values)
    if kind == "principal":
        return value.kind in ("principal", "none")
    if kind == "set":
        if value.kind not in ("set", "list"):
            return False
        if value.elem is None:
            return True
        assert target.of is not None
        return assignable(target.of, value.elem)
    return False
