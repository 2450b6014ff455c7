"""The runtime back end of the expression language: trees compiled to Python closures.

A compiled expression is called as ``fn(variables, params, actor, state)``. Compilation
walks the tree once; evaluation never touches ``eval``/``exec`` and never looks anything up
by a name that the type checker has not already accepted.

The semantics are those listed in :mod:`railguard.spec.expr`: Python's floor ``//`` and
``%``, exact decimal arithmetic (no rounding to the default 28 digits), bool never equal to
an int, list literals as sets.
"""

from __future__ import annotations

import decimal
import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeAlias

from .errors import EvaluationError
from .expr import (
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
    unparse,
)

__all__ = ["FAULTS", "Compiled", "compile_expression", "compile_unguarded", "evaluate", "fault"]

#: ``fn(variables, params, actor, state) -> value``
Compiled: TypeAlias = Callable[[Mapping[str, Any], Mapping[str, Any], "str | None", str], Any]


def evaluate(
    node: Node,
    variables: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    actor: str | None = None,
    state: str = "",
) -> Any:
    """Evaluate ``node`` once; prefer :func:`compile_expression` for repeated evaluation."""
    return compile_expression(node)(variables, params or {}, actor, state)


#: The Python errors a compiled expression's runtime faults surface as (before translation).
FAULTS = (EvaluationError, ZeroDivisionError, KeyError, TypeError, ArithmeticError, ValueError)


def compile_expression(node: Node) -> Compiled:
    """Compile a type-checked tree to a closure; runtime faults raise :class:`EvaluationError`."""
    fn = _compile(node)
    text = unparse(node)

    def guarded(v: Mapping[str, Any], p: Mapping[str, Any], a: str | None, s: str) -> Any:
        try:
            return fn(v, p, a, s)
        except FAULTS as exc:
            raise fault(exc, text) from None

    return guarded


def compile_unguarded(node: Node) -> Compiled:
    """The closure of :func:`compile_expression` without its fault translation, for callers
    that catch :data:`FAULTS` themselves and translate them with :func:`fault` (one frame less
    per evaluation on the runtime's hot path)."""
    return _compile(node)


def fault(exc: BaseException, text: str) -> EvaluationError:
    """The :class:`EvaluationError` a runtime fault of expression ``text`` means."""
    if isinstance(exc, EvaluationError):
        return exc
    if isinstance(exc, ZeroDivisionError):
        return EvaluationError(f"division by zero in `{text}`")
    if isinstance(exc, KeyError):
        return EvaluationError(f"`{text}` needs a value for `{exc.args[0]}`")
    return EvaluationError(f"`{text}` cannot be evaluated: {exc}")


_Fn: TypeAlias = Callable[[Mapping[str, Any], Mapping[str, Any], "str | None", str], Any]

#: Decimal arithmetic without rounding: sums, differences, products, negation and ``abs`` of
#: finite decimals are always exact at this precision, and anything else traps.
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact],
)


def _compile(node: Node) -> _Fn:
    if isinstance(node, Literal):
        value = node.value
        return lambda v, p, a, s: value
    if isinstance(node, Var):
        name = node.name
        return lambda v, p, a, s: v[name]
    if isinstance(node, Param):
        pname = node.name

        def param(v: Mapping[str, Any], p: Mapping[str, Any], a: str | None, s: str) -> Any:
            if pname not in p:
                raise EvaluationError(f"param `{pname}` has no value")
            return p[pname]

        return param
    if isinstance(node, Actor):
        return lambda v, p, a, s: a
    if isinstance(node, StateRef):
        return lambda v, p, a, s: s
    if isinstance(node, Unary):
        inner = _compile(node.operand)
        if node.op == "not":
            return lambda v, p, a, s: not inner(v, p, a, s)
        return lambda v, p, a, s: _negate(inner(v, p, a, s))
    if isinstance(node, Binary):
        simple = _var_and_int(node.left, node.right)
        if simple is not None and node.op in ("+", "-"):
            name, const = simple
            delta = const if node.op == "+" else -const
            return lambda v, p, a, s: x + delta if type(x := v[name]) is int else _add(x, delta)
        return _binary(node.op, _compile(node.left), _compile(node.right))
    if isinstance(node, BoolOp):
        parts = tuple(_compile(o) for o in node.operands)
        if len(parts) == 2:
            # `all`/`any` of two, without the generator: each operand's truth is tested once,
            # left to right, and the answer is a bool, as with `all`/`any`.
            first, second = parts
            if node.op == "and":
                return lambda v, p, a, s: True if first(v, p, a, s) and second(v, p, a, s) else False  # noqa: SIM210
            return lambda v, p, a, s: True if first(v, p, a, s) or second(v, p, a, s) else False  # noqa: SIM210
        if node.op == "and":
            return lambda v, p, a, s: all(f(v, p, a, s) for f in parts)
        return lambda v, p, a, s: any(f(v, p, a, s) for f in parts)
    if isinstance(node, Compare):
        return _compare(node)
    if isinstance(node, ListExpr):
        items = tuple(_compile(i) for i in node.items)
        return lambda v, p, a, s: frozenset(f(v, p, a, s) for f in items)
    if isinstance(node, Conditional):
        cond, then, orelse = _compile(node.cond), _compile(node.then), _compile(node.orelse)
        return lambda v, p, a, s: then(v, p, a, s) if cond(v, p, a, s) else orelse(v, p, a, s)
    if isinstance(node, Call):
        return _call(node)
    raise EvaluationError(f"cannot evaluate {type(node).__name__}")


def _binary(op: str, left: _Fn, right: _Fn) -> _Fn:
    if op == "+":
        return lambda v, p, a, s: _add(left(v, p, a, s), right(v, p, a, s))
    if op == "-":
        return lambda v, p, a, s: _subtract(left(v, p, a, s), right(v, p, a, s))
    if op == "*":
        return lambda v, p, a, s: _multiply(left(v, p, a, s), right(v, p, a, s))
    # Python's floor semantics on purpose (see the module docstring); ints only.
    if op == "//":
        return lambda v, p, a, s: left(v, p, a, s) // right(v, p, a, s)
    return lambda v, p, a, s: left(v, p, a, s) % right(v, p, a, s)


def _add(x: Any, y: Any) -> Any:
    if isinstance(x, Decimal) or isinstance(y, Decimal):
        return _EXACT.add(x, y)
    return x + y


def _subtract(x: Any, y: Any) -> Any:
    if isinstance(x, Decimal) or isinstance(y, Decimal):
        return _EXACT.subtract(x, y)
    return x - y


def _multiply(x: Any, y: Any) -> Any:
    if isinstance(x, Decimal) or isinstance(y, Decimal):
        return _EXACT.multiply(x, y)
    return x * y


def _negate(x: Any) -> Any:
    return _EXACT.minus(x) if isinstance(x, Decimal) else -x


def _absolute(x: Any) -> Any:
    return _EXACT.abs(x) if isinstance(x, Decimal) else abs(x)


def _var_and_int(left: Node, right: Node) -> tuple[str, int] | None:
    """(variable, constant) when the operands are a variable and an int literal: the common
    guard shape (``attempts < 3``), which gets a closure without intermediate calls."""
    if isinstance(left, Var) and isinstance(right, Literal) and type(right.value) is int:
        return left.name, right.value
    return None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(node: Compare) -> _Fn:
    op = node.op
    simple = _var_and_int(node.left, node.right)
    if simple is not None and op in _ORDER:
        name, const = simple
        if op == "<":
            return lambda v, p, a, s: v[name] < const
        if op == "<=":
            return lambda v, p, a, s: v[name] <= const
        if op == ">":
            return lambda v, p, a, s: v[name] > const
        return lambda v, p, a, s: v[name] >= const
    left, right = _compile(node.left), _compile(node.right)
    if op == "==":
        return lambda v, p, a, s: _eq(left(v, p, a, s), right(v, p, a, s))
    if op == "!=":
        return lambda v, p, a, s: not _eq(left(v, p, a, s), right(v, p, a, s))
    if op == "<":
        return lambda v, p, a, s: left(v, p, a, s) < right(v, p, a, s)
    if op == "<=":
        return lambda v, p, a, s: left(v, p, a, s) <= right(v, p, a, s)
    if op == ">":
        return lambda v, p, a, s: left(v, p, a, s) > right(v, p, a, s)
    if op == ">=":
        return lambda v, p, a, s: left(v, p, a, s) >= right(v, p, a, s)
    if op == "in" and isinstance(node.right, Var):
        # `x in some_set` (the commonest membership shape): the set read in place.
        collection = node.right.name
        if isinstance(node.left, Param):
            pname = node.left.name

            def param_in_var(v: Mapping[str, Any], p: Mapping[str, Any], a: str | None, s: str) -> bool:
                if pname not in p:
                    raise EvaluationError(f"param `{pname}` has no value")
                x = p[pname]
                if type(x) is str:
                    return x in v[collection]  # text: `_member` is plain `in` (see there)
                return _member(x, v[collection])

            return param_in_var
        return lambda v, p, a, s: _member(left(v, p, a, s), v[collection])
    if op == "in":
        return lambda v, p, a, s: _member(left(v, p, a, s), right(v, p, a, s))
    return lambda v, p, a, s: not _member(left(v, p, a, s), right(v, p, a, s))


def _eq(x: Any, y: Any) -> bool:
    # bool is an int subclass in Python; the type checker never lets them meet, but a value
    # supplied from outside (context, params) must not make True equal 1 either.
    if isinstance(x, bool) != isinstance(y, bool):
        return False
    return bool(x == y)


def _member(x: Any, collection: Any) -> bool:
    """``x in collection`` with bool never equal to a number (`_eq`), in one hash lookup for
    the common elements.

    Python's ``in`` finds an item equal to ``x`` (``True in {1}`` holds); the answer only
    differs from `_eq`'s when every equal item is a bool and ``x`` is not, or the other way
    round. Text never equals a non-text value, and a number other than 0 and 1 never equals
    a bool, so for those one lookup is the answer; only ``0``, ``1``, bools, non-finite
    decimals and other values scan the collection for an item equal by `_eq`.
    """
    if x not in collection:
        return False
    kind = type(x)
    if kind is str:
        return True
    if (kind is int or (kind is Decimal and x.is_finite())) and x not in {0, 1}:
        return True
    return any(_eq(x, item) for item in collection)


def _call(node: Call) -> _Fn:
    args = tuple(_compile(a) for a in node.args)
    func = node.func
    if func == "implies":
        first, second = args
        return lambda v, p, a, s: (not first(v, p, a, s)) or bool(second(v, p, a, s))
    if func == "len":
        (only,) = args
        return lambda v, p, a, s: len(only(v, p, a, s))
    if func == "abs":
        (only,) = args
        return lambda v, p, a, s: _absolute(only(v, p, a, s))
    if func == "min":
        return lambda v, p, a, s: min(f(v, p, a, s) for f in args)
    return lambda v, p, a, s: max(f(v, p, a, s) for f in args)
