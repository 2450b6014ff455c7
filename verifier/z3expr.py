"""The Z3 back end of the expression language.

:func:`compile_z3` turns the same tree the runtime evaluates into Z3 terms, together with a
*definedness* condition that is true exactly when the Python evaluator would not raise
(a ``//`` or ``%`` by zero). Short-circuit operators (``and``, ``or``, ``implies``,
``if``) propagate definedness the way Python evaluates them, so the encoding and the runtime
agree on every input — the cross-check tests hold them to that.

Representation of values: ``int`` → Int, ``decimal`` → a *scaled integer* (an Int holding
value * 10^scale, the scale carried by the :class:`Sym`: exact, and far faster than Z3's
reals; a decimal declared without ``places`` has no fixed scale and stays a Real), ``bool`` → Bool, ``enum`` and
``state`` → Int code (one table per spec), ``str`` → String, ``principal`` → Int identity
(0 unset, -1 the system, 1.. people), ``set`` of enum or bool → one Bool per possible member,
``set`` of str, int, decimal or principal → a Z3 array from the element sort to Bool
(kind ``array``: membership is ``Select``, equality is array equality, a list literal is a
chain of ``Store``); a *known* such set (a context value at admission) is the list of its
members. ``len`` of an array-valued set has no encoding yet and raises :class:`Unsupported`,
which names the construct: a missing encoding is not a budget problem.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import z3

from railguard.spec.expr import (
    Actor,
    Binary,
    BoolOp,
    Call,
    Compare,
    Conditional,
    ListExpr,
    Literal,
    Node,
    Param,
    StateRef,
    Unary,
    Var,
)
from railguard.spec.types import Type

from .errors import VerifierError

__all__ = [
    "Codes",
    "Sym",
    "Unsupported",
    "as_array",
    "as_string",
    "compile_z3",
    "declared_bounds",
    "declared_scale",
    "domain_constraint",
    "element_sort",
    "literal_sym",
    "represent",
    "sym_eq",
]

UNSET = 0
#: Exact decimal arithmetic for scaling literals (they carry at most ~2,000 digits).
_EXACT = decimal.Context(prec=10_000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
SYSTEM_ID = -1


class Unsupported(VerifierError):
    """A construct has no Z3 encoding (e.g. a set of integers); checks that need it are unknown."""


class Codes:
    """The integer code of every enum value and state name in a spec (sorted, stable)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(sorted(set(names)))
        self.code = {name: i for i, name in enumerate(self.names)}

    def __getitem__(self, name: str) -> int:
        return self.code[name]

    def get(self, name: str) -> int | None:
        return self.code.get(name)


@dataclass(frozen=True)
class Sym:
    """A symbolic value: its kind, its term(s) and when evaluating it would not raise.

    ``term`` is a Z3 expression for scalars, a Python ``str`` for a string literal
    (``kind == "strlit"``), a list of :class:`Sym` for a list literal and a mapping of member
    → Bool for a set (``members`` is the element kind).
    """

    kind: str
    term: Any
    ok: z3.BoolRef
    members: str = ""
    values: tuple[str, ...] = ()
    #: For an int: the least and greatest value it can take (where the variables and params it
    #: reads lie in their domains), or None when unbounded. Lets `//` and `%` by a term with few
    #: possible values stay linear (see :func:`_floordiv`).
    bounds: tuple[int, int] | None = None
    #: For a decimal: ``term`` is an Int equal to the value * 10**scale; None: ``term`` is a Real.
    scale: int | None = None


TRUE = z3.BoolVal(True)
#: Divide by a bounded term case by case (linear) when it has at most this many values.
MAX_DIVISOR_CASES = 32

Bounds = tuple[int, int] | None


def declared_bounds(declared: Type) -> Bounds:
    """The bounds of an int of type ``declared`` (None unless both ends are declared)."""
    if declared.kind == "int" and declared.min is not None and declared.max is not None:
        return int(declared.min), int(declared.max)
    return None


def _span(*candidates: int) -> tuple[int, int]:
    return min(candidates), max(candidates)


def _bounds_binary(op: str, a: Bounds, b: Bounds) -> Bounds:
    if a is None or b is None:
        return None
    (a1, a2), (b1, b2) = a, b
    if op == "+":
        return a1 + b1, a2 + b2
    if op == "-":
        return a1 - b2, a2 - b1
    if op == "*":
        return _span(a1 * b1, a1 * b2, a2 * b1, a2 * b2)
    divisors = [c for c in (b1, b2, max(b1, 1), min(b2, -1)) if c != 0 and b1 <= c <= b2]
    if op == "//":
        # for a fixed sign of the divisor, `a // c` is monotonic in a and in c
        return _span(0, *(x // c for x in (a1, a2) for c in divisors))
    return _span(0, *(c - 1 for c in divisors if c > 0), *(c + 1 for c in divisors if c < 0))


def _and(*parts: z3.BoolRef) -> z3.BoolRef:
    kept = [p for p in parts if not z3.is_true(p)]
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else z3.And(*kept)


def literal_sym(value: Any, declared: Type | None, codes: Codes) -> Sym:
    """The symbolic form of a concrete value (an initial value, a default)."""
    if declared is not None and declared.kind == "set":
        assert declared.of is not None
        if declared.of.kind not in ("enum", "bool"):
            # A known set of ints, decimals, texts or principals is the list of its members:
            # membership, `len` and equality with literals are exact over it.
            items = sorted(value, key=lambda v: (type(v).__name__, str(v)))
            return Sym("list", [literal_sym(v, None if declared.of.kind == "str" else declared.of, codes) for v in items], TRUE)
        keys = _member_keys(declared.of)
        return Sym("set", {k: z3.BoolVal(_member_value(k, declared.of) in value) for k in keys}, TRUE, declared.of.kind, tuple(keys))
    if declared is not None and declared.kind == "enum":
        return Sym("enum", z3.IntVal(codes[str(value)]), TRUE)
    if declared is not None and declared.kind == "principal":
        return Sym("principal", z3.IntVal(UNSET), TRUE)
    if isinstance(value, bool):
        return Sym("bool", z3.BoolVal(value), TRUE)
    if isinstance(value, int):
        return Sym("int", z3.IntVal(value), TRUE, bounds=(value, value))
    if isinstance(value, Decimal):
        exponent = value.normalize(_EXACT).as_tuple().exponent
        scale = max(0, -exponent) if isinstance(exponent, int) else 0
        return Sym("decimal", z3.IntVal(int(value.scaleb(scale, _EXACT))), TRUE, scale=scale)
    if isinstance(value, str):
        if declared is not None and declared.kind == "str":
            return Sym("str", z3.StringVal(value), TRUE)
        return Sym("strlit", value, TRUE)
    if value is None:
        return Sym("none", z3.IntVal(UNSET), TRUE)
    raise Unsupported(f"no symbolic form for {value!r}")


def element_sort(of: Type) -> z3.SortRef:
    """The Z3 sort of the members of an array-valued set (see the module docstring)."""
    if of.kind == "str":
        return z3.StringSort()
    if of.kind in ("int", "principal"):
        return z3.IntSort()
    if of.kind == "decimal":
        return z3.RealSort()
    raise Unsupported(f"sets of {of.kind} are encoded member by member, not as arrays")


def _element(sym: Sym, members: str, codes: Codes) -> Any:
    if members == "str":
        return as_string(sym, codes)
    if members == "decimal":
        return _numeric(sym, True)
    if sym.kind == "none":
        return z3.IntVal(UNSET)
    return sym.term


def _element_sort_of(members: str) -> z3.SortRef:
    return {"str": z3.StringSort(), "decimal": z3.RealSort()}.get(members, z3.IntSort())


def as_array(sym: Sym, members: str, codes: Codes) -> Any:
    """A set value as a Z3 array over members of kind ``members``: an array-valued set as
    it is, a list literal as ``Store`` of each item on the empty set."""
    if sym.kind == "array":
        return sym.term
    if sym.kind == "list":
        result = z3.K(_element_sort_of(members), z3.BoolVal(False))
        for item in sym.term:
            result = z3.Store(result, _element(item, members, codes), z3.BoolVal(True))
        return result
    raise Unsupported(f"a {sym.kind} cannot stand for a set of {members}")


def _member_keys(of: Type) -> list[str]:
    if of.kind == "enum":
        return list(of.values)
    if of.kind == "bool":
        return ["True", "False"]
    raise Unsupported(f"sets of {of.kind} have no Z3 encoding yet")


def _member_value(key: str, of: Type) -> Any:
    if of.kind == "bool":
        return key == "True"
    return key


def declared_scale(declared: Type) -> int | None:
    """The scale of a decimal of type ``declared`` (its ``places``; None: a Real)."""
    return declared.places if declared.kind == "decimal" else None


def _scaled(sym: Sym) -> tuple[Any, int | None]:
    """A number as (term, scale): an int has scale 0; a Real decimal has scale None."""
    if sym.kind == "int":
        return sym.term, 0
    return sym.term, sym.scale


def _to_real(term: Any, scale: int | None) -> Any:
    if scale is None:
        return term
    real = z3.ToReal(term)
    return real if scale == 0 else real / z3.RealVal(10**scale)


def _align(*syms: Sym) -> tuple[list[Any], int | None]:
    """Numbers brought to one representation: Ints at the largest scale, or Reals if any
    is a Real."""
    pairs = [_scaled(s) for s in syms]
    scales = [scale for _, scale in pairs if scale is not None]
    if len(scales) < len(pairs):
        return [_to_real(t, scale) for t, scale in pairs], None
    top = max(scales)
    return [t if scale == top else t * (10 ** (top - (scale or 0))) for t, scale in pairs], top


def _numeric(sym: Sym, real: bool) -> Any:
    if real:
        return _to_real(*_scaled(sym))
    return sym.term


def represent(declared: Type, sym: Sym) -> Any:
    """A number as a term of ``declared``'s representation (exact when the value lies in the
    declared domain, which the callers require)."""
    if declared.kind != "decimal":
        return sym.term
    term, scale = _scaled(sym)
    places = declared.places
    if places is None:
        return _to_real(term, scale)
    if scale is None:
        return z3.ToInt(term * (10**places))
    if scale <= places:
        return term if scale == places else term * (10 ** (places - scale))
    return term / (10 ** (scale - places))


def _texts(sym: Sym) -> tuple[str, ...]:
    """The texts a value can be when it is literal text (``"a"``, ``"a" if c else "b"``)."""
    if sym.kind == "strlit":
        return (sym.term,)
    if sym.kind == "enum":
        return sym.values
    return ()


def as_string(sym: Sym, codes: Codes) -> Any:
    """A text value as a Z3 String: a literal, literal text chosen by ``if`` (an Int code), or a ``str``."""
    if sym.kind == "strlit":
        return z3.StringVal(sym.term)
    if sym.kind == "enum" and sym.values:
        result = z3.StringVal(sym.values[-1])
        for text in reversed(sym.values[:-1]):
            result = z3.If(sym.term == codes[text], z3.StringVal(text), result)
        return result
    return sym.term


def _pair(a: Sym, b: Sym, codes: Codes) -> tuple[Any, Any] | None:
    """Bring two comparable values to terms of one sort; None if they can never be equal."""
    kinds = {a.kind, b.kind}
    if kinds <= {"int", "decimal"}:
        (left, right), _ = _align(a, b)
        return left, right
    if kinds == {"str", "enum"}:
        # literal text chosen by `if` (see `compile_z3`) meets a str
        return as_string(a, codes), as_string(b, codes)
    if a.kind == "strlit" or b.kind == "strlit":
        lit, other = (a, b) if a.kind == "strlit" else (b, a)
        if other.kind == "strlit":
            return z3.BoolVal(lit.term == other.term), z3.BoolVal(True)
        if other.kind == "enum":
            code = codes.get(lit.term)
            if code is None:
                return None
            return z3.IntVal(code), other.term
        return z3.StringVal(lit.term), other.term
    if "none" in kinds:
        return (z3.IntVal(UNSET) if a.kind == "none" else a.term), (z3.IntVal(UNSET) if b.kind == "none" else b.term)
    return a.term, b.term


def sym_eq(a: Sym, b: Sym, codes: Codes) -> z3.BoolRef:
    """Python ``==`` on two symbolic values (both defined)."""
    if a.kind == "array" or b.kind == "array":
        members = a.members if a.kind == "array" else b.members
        return as_array(a, members, codes) == as_array(b, members, codes)
    if a.kind in ("set", "list") or b.kind in ("set", "list"):
        return _set_eq(a, b, codes)
    pair = _pair(a, b, codes)
    if pair is None:
        return z3.BoolVal(False)
    left, right = pair
    if isinstance(left, z3.BoolRef) and z3.is_true(right) and a.kind == "strlit":
        return left
    return left == right


def _bits(sym: Sym, keys: Sequence[str], codes: Codes) -> dict[str, z3.BoolRef]:
    if sym.kind == "set":
        return {k: sym.term.get(k, z3.BoolVal(False)) for k in keys}
    out: dict[str, z3.BoolRef] = {}
    for key in keys:
        probe = Sym("strlit", key, TRUE) if key not in ("True", "False") else Sym("bool", z3.BoolVal(key == "True"), TRUE)
        out[key] = z3.Or([sym_eq(item, probe, codes) for item in sym.term]) if sym.term else z3.BoolVal(False)
    return out


def _set_eq(a: Sym, b: Sym, codes: Codes) -> z3.BoolRef:
    keys = sorted(set(a.values) | set(b.values) | set(_list_keys(a)) | set(_list_keys(b)))
    abits, bbits = _bits(a, keys, codes), _bits(b, keys, codes)
    return z3.And([abits[k] == bbits[k] for k in keys]) if keys else z3.BoolVal(True)


def _list_keys(sym: Sym) -> list[str]:
    if sym.kind != "list":
        return []
    keys = []
    for item in sym.term:
        if item.kind == "strlit":
            keys.append(item.term)
        elif item.kind == "bool" and z3.is_bool(item.term) and (z3.is_true(item.term) or z3.is_false(item.term)):
            keys.append(str(z3.is_true(item.term)))
        else:
            raise Unsupported("list literals compared with sets must hold literals")
    return keys


Env = Mapping[str, Sym]


def compile_z3(
    node: Node,
    variables: Env,
    params: Env,
    actor: Sym | None,
    state: z3.ArithRef,
    codes: Codes,
) -> Sym:
    """Compile a type-checked tree to a :class:`Sym` over the given symbolic environment."""
    rec: Callable[[Node], Sym] = lambda n: compile_z3(n, variables, params, actor, state, codes)  # noqa: E731
    if isinstance(node, Literal):
        return literal_sym(node.value, None, codes)
    if isinstance(node, Var):
        return variables[node.name]
    if isinstance(node, Param):
        return params[node.name]
    if isinstance(node, Actor):
        if actor is None:
            raise Unsupported("`actor` outside a transition")
        return actor
    if isinstance(node, StateRef):
        return Sym("enum", state, TRUE)
    if isinstance(node, Unary):
        inner = rec(node.operand)
        if node.op == "not":
            return Sym("bool", z3.Not(inner.term), inner.ok)
        flipped = (-inner.bounds[1], -inner.bounds[0]) if inner.bounds is not None else None
        return Sym(inner.kind, -inner.term, inner.ok, bounds=flipped, scale=inner.scale)
    if isinstance(node, Binary):
        return _binary(node.op, rec(node.left), rec(node.right))
    if isinstance(node, BoolOp):
        parts = [rec(o) for o in node.operands]
        # Python stops at the first false (and) / true (or) operand: later operands only
        # need to be defined when evaluation reaches them.
        ok = parts[-1].ok
        for part in reversed(parts[:-1]):
            stop = z3.Not(part.term) if node.op == "and" else part.term
            ok = part.ok if z3.is_true(ok) else _and(part.ok, z3.Or(stop, ok))
        term = z3.And([p.term for p in parts]) if node.op == "and" else z3.Or([p.term for p in parts])
        return Sym("bool", term, ok)
    if isinstance(node, Compare):
        return _compare(node.op, rec(node.left), rec(node.right), codes)
    if isinstance(node, ListExpr):
        items = [rec(i) for i in node.items]
        return Sym("list", items, _and(*(i.ok for i in items)))
    if isinstance(node, Conditional):
        cond, then, orelse = rec(node.cond), rec(node.then), rec(node.orelse)
        ok = _and(cond.ok, z3.If(cond.term, then.ok, orelse.ok))
        texts = _texts(then) + _texts(orelse)
        if _texts(then) and _texts(orelse) and all(codes.get(t) is not None for t in texts):
            # `"a" if c else "b"` is literal text that may meet an enum (or the state) as well
            # as a str: keep it as the code of the chosen text, remembering the texts.
            left = z3.IntVal(codes[then.term]) if then.kind == "strlit" else then.term
            right = z3.IntVal(codes[orelse.term]) if orelse.kind == "strlit" else orelse.term
            return Sym("enum", z3.If(cond.term, left, right), ok, values=tuple(dict.fromkeys(texts)))
        if "array" in (then.kind, orelse.kind):
            members = then.members if then.kind == "array" else orelse.members
            return Sym("array", z3.If(cond.term, as_array(then, members, codes), as_array(orelse, members, codes)), ok, members)
        if {then.kind, orelse.kind} <= {"set", "list"}:
            return _join_sets(cond.term, then, orelse, ok, codes)
        kind, a, b = _join(then, orelse, codes)
        joined = None
        if kind == "int" and then.bounds is not None and orelse.bounds is not None:
            joined = _span(*then.bounds, *orelse.bounds)
        scale = _align(then, orelse)[1] if kind == "decimal" else None
        return Sym(kind, z3.If(cond.term, a, b), ok, bounds=joined, scale=scale)
    if isinstance(node, Call):
        return _call(node.func, [rec(a) for a in node.args], codes)
    raise Unsupported(f"no Z3 encoding for {type(node).__name__}")


def _join(a: Sym, b: Sym, codes: Codes) -> tuple[str, Any, Any]:
    kinds = {a.kind, b.kind}
    if kinds <= {"int", "decimal"}:
        (left, right), _ = _align(a, b)
        return ("decimal" if "decimal" in kinds else "int"), left, right
    if "enum" in kinds and kinds <= {"enum", "strlit"}:
        left = z3.IntVal(codes[a.term]) if a.kind == "strlit" else a.term
        right = z3.IntVal(codes[b.term]) if b.kind == "strlit" else b.term
        return "enum", left, right
    if "strlit" in kinds or "str" in kinds:
        return "str", as_string(a, codes), as_string(b, codes)
    if kinds <= {"principal", "none"}:
        return "principal", a.term, b.term
    if kinds == {"bool"}:
        return "bool", a.term, b.term
    raise Unsupported(f"no Z3 encoding for `if` over {a.kind} and {b.kind}")


def _join_sets(cond: z3.BoolRef, a: Sym, b: Sym, ok: z3.BoolRef, codes: Codes) -> Sym:
    """``a if cond else b`` for sets and list literals: a set, member by member."""
    universe: set[str] = set()
    known = False
    for side in (a, b):
        if side.kind == "set":
            universe.update(side.values)
            known = True
        elif all(item.kind in ("strlit", "bool") for item in side.term):
            universe.update(_list_keys(side))
            known = True
    if not known:
        raise Unsupported("`if` over list literals of computed values")
    keys = sorted(universe)
    sets = [side for side in (a, b) if side.kind == "set"]
    items = [item for side in (a, b) if side.kind == "list" for item in side.term]
    members = sets[0].members if sets else "bool" if any(i.kind == "bool" for i in items) else "enum"
    left, right = _bits(a, keys, codes), _bits(b, keys, codes)
    return Sym("set", {k: z3.If(cond, left[k], right[k]) for k in keys}, ok, members, tuple(keys))


def _floordiv(a: z3.ArithRef, b: z3.ArithRef, bounds: Bounds) -> tuple[z3.ArithRef, z3.ArithRef]:
    """Python's ``a // b`` and ``a % b`` for ``b != 0`` (0 otherwise: definedness excludes it).

    Z3's integer division is Euclidean; it agrees with flooring for ``b > 0``. Spacer only
    handles linear arithmetic and gives up on a ``div`` by a term, so a divisor that is a
    number, or a term with ``bounds`` of a few values, is divided case by case by constants;
    only an unbounded divisor leaves a non-linear term."""

    def by(c: int) -> tuple[z3.ArithRef, z3.ArithRef]:
        quotient = a / c if c > 0 else (-a) / (-c)
        return quotient, a - c * quotient

    divisor = z3.simplify(b)
    if z3.is_int_value(divisor):
        value = divisor.as_long()
        return by(value) if value != 0 else (z3.IntVal(0), z3.IntVal(0))
    if bounds is not None and bounds[1] - bounds[0] < MAX_DIVISOR_CASES:
        quotient, remainder = z3.IntVal(0), z3.IntVal(0)
        for c in range(bounds[0], bounds[1] + 1):
            if c != 0:
                q, r = by(c)
                quotient, remainder = z3.If(b == c, q, quotient), z3.If(b == c, r, remainder)
        return quotient, remainder
    quotient = z3.If(b > 0, a / b, z3.If(b < 0, (-a) / (-b), z3.IntVal(0)))
    return quotient, a - b * quotient


def _binary(op: str, a: Sym, b: Sym) -> Sym:
    real = "decimal" in (a.kind, b.kind)
    kind = "decimal" if real else "int"
    ok = _and(a.ok, b.ok)
    if real:
        if op == "*":
            (ta, sa), (tb, sb) = _scaled(a), _scaled(b)
            if sa is None or sb is None:
                return Sym(kind, _to_real(ta, sa) * _to_real(tb, sb), ok)
            return Sym(kind, ta * tb, ok, scale=sa + sb)
        (ta, tb), scale = _align(a, b)
        return Sym(kind, ta + tb if op == "+" else ta - tb, ok, scale=scale)
    left, right = a.term, b.term
    bounds = _bounds_binary(op, a.bounds, b.bounds)
    if op == "+":
        return Sym(kind, left + right, ok, bounds=bounds)
    if op == "-":
        return Sym(kind, left - right, ok, bounds=bounds)
    if op == "*":
        return Sym(kind, left * right, ok, bounds=bounds)
    ok = _and(ok, right != 0)
    quotient, remainder = _floordiv(left, right, b.bounds)
    return Sym("int", quotient if op == "//" else remainder, ok, bounds=bounds)


def _compare(op: str, a: Sym, b: Sym, codes: Codes) -> Sym:
    ok = _and(a.ok, b.ok)
    if op in ("in", "not in"):
        if b.kind == "list":
            term = z3.Or([sym_eq(a, item, codes) for item in b.term]) if b.term else z3.BoolVal(False)
        elif b.kind == "set":
            options = []
            for key, bit in b.term.items():
                member = Sym("strlit", key, TRUE) if b.members == "enum" else Sym("bool", z3.BoolVal(key == "True"), TRUE)
                options.append(z3.And(sym_eq(a, member, codes), bit))
            term = z3.Or(options) if options else z3.BoolVal(False)
        elif b.kind == "array":
            term = z3.Select(b.term, _element(a, b.members, codes))
        else:
            raise Unsupported(f"`in` over {b.kind}")
        return Sym("bool", term if op == "in" else z3.Not(term), ok)
    if op in ("==", "!="):
        eq = sym_eq(a, b, codes)
        return Sym("bool", eq if op == "==" else z3.Not(eq), ok)
    (left, right), _ = _align(a, b)
    term = {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    return Sym("bool", term, ok)


def _call(func: str, args: list[Sym], codes: Codes) -> Sym:
    ok = _and(*(a.ok for a in args))
    if func == "implies":
        first, second = args
        return Sym("bool", z3.Implies(first.term, second.term), _and(first.ok, z3.Or(z3.Not(first.term), second.ok)))
    if func == "len":
        (only,) = args
        if only.kind == "str":
            return Sym("int", z3.Length(only.term), ok)
        if only.kind == "strlit":
            return Sym("int", z3.IntVal(len(only.term)), ok)
        if only.kind == "enum" and only.values:
            return Sym("int", z3.Length(as_string(only, codes)), ok)
        if only.kind == "set":
            return Sym("int", z3.Sum([z3.If(bit, 1, 0) for bit in only.term.values()]) if only.term else z3.IntVal(0), ok, bounds=(0, len(only.term)))
        if only.kind == "list":
            distinct = []
            for i, item in enumerate(only.term):
                fresh = z3.And([z3.Not(sym_eq(item, other, codes)) for other in only.term[:i]]) if i else TRUE
                distinct.append(z3.If(fresh, 1, 0))
            return Sym("int", z3.Sum(distinct) if distinct else z3.IntVal(0), ok, bounds=(min(1, len(distinct)), len(distinct)))
        if only.kind == "array":
            raise Unsupported(f"`len` of a set of {only.members} has no Z3 encoding yet")
        raise Unsupported(f"len of {only.kind}")
    real = any(a.kind == "decimal" for a in args)
    kind = "decimal" if real else "int"
    terms, scale = _align(*args)
    if not real:
        scale = None
    known = [a.bounds for a in args if a.bounds is not None]
    exact = not real and len(known) == len(args)
    if func == "abs":
        (term,) = terms
        low, high = args[0].bounds or (0, 0)
        magnitude = (max(low, -high, 0), max(-low, high)) if exact else None
        return Sym(kind, z3.If(term >= 0, term, -term), ok, bounds=magnitude, scale=scale)
    result = terms[0]
    for term in terms[1:]:
        # Python's min/max keep the first of equal values; for numbers the value is the same.
        result = z3.If(term < result, term, result) if func == "min" else z3.If(term > result, term, result)
    pick = min if func == "min" else max
    extremes = (pick(b[0] for b in known), pick(b[1] for b in known)) if exact else None
    return Sym(kind, result, ok, bounds=extremes, scale=scale)


def domain_constraint(declared: Type, sym: Sym, codes: Codes) -> z3.BoolRef:
    """Whether the symbolic value ``sym`` lies in ``declared``'s domain (as
    :meth:`railguard.spec.types.Type.contains` decides for a concrete value)."""
    kind = declared.kind
    term = sym.term
    parts: list[z3.BoolRef] = []
    if kind == "int":
        if declared.min is not None:
            parts.append(term >= int(declared.min))
        if declared.max is not None:
            parts.append(term <= int(declared.max))
    elif kind == "decimal":
        for bound, above in ((declared.min, True), (declared.max, False)):
            if bound is not None:
                (value, limit), _ = _align(sym, literal_sym(Decimal(bound), None, codes))
                parts.append(value >= limit if above else value <= limit)
        if declared.places is not None:
            value, scale = _scaled(sym)
            if scale is None:
                parts.append(z3.IsInt(value * (10**declared.places)))
            elif scale > declared.places:
                parts.append(value % (10 ** (scale - declared.places)) == 0)
    elif kind == "enum":
        if sym.kind == "strlit":
            return z3.BoolVal(term in declared.values)
        parts.append(z3.Or([term == codes[v] for v in declared.values]))
    elif kind == "str":
        if declared.max_length is not None:
            parts.append(z3.Length(as_string(sym, codes)) <= declared.max_length)
    elif kind == "principal":
        parts.append(term >= SYSTEM_ID)
    elif kind == "set":
        assert declared.of is not None
        if sym.kind == "list":
            parts.extend(domain_constraint(declared.of, item, codes) for item in sym.term)
            if declared.max_size is not None:
                parts.append(_call("len", [sym], codes).term <= declared.max_size)
        elif sym.kind == "set" and declared.max_size is not None:
            bits = list(sym.term.values())
            parts.append(z3.Sum([z3.If(b, 1, 0) for b in bits]) <= declared.max_size if bits else TRUE)
    return z3.And(parts) if parts else TRUE
