"""Inductive invariants from Z3, printed in the spec's own expression language.

Spacer returns an invariant as a Z3 formula over the system's state vector (a state code, the
variables, a Bool per set member, a Bool per role of a stored principal, a Bool per monitored
event). :func:`readable` turns it into an expression tree of :mod:`railguard.spec.expr` and
prints it with :func:`~railguard.spec.expr.unparse`: state and enum codes become their names
(``state in ["paid", "shipped"]``), ``Not(x <= 0)`` becomes ``x > 0``, a set member
``"a" in tags``. Two facts the language cannot state print as calls:
``has_role(approver, "admin")`` (a stored principal holds a role) and ``happened("submit")``
(a monitored event already fired on this run).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, localcontext

import z3

from railguard.spec.expr import Binary as BinaryNode
from railguard.spec.expr import (
    BoolOp,
    Call,
    Compare,
    Conditional,
    ListExpr,
    Literal,
    Node,
    StateRef,
    Unary,
    Var,
    unparse,
)

from .system import System

__all__ = ["MAX_LENGTH", "readable"]

#: Longer invariants are cut here (and say so).
MAX_LENGTH = 4000

_NEGATED = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!=", "!=": "=="}
_TESTS: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}
_MIRROR = {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "==", "!=": "!="}


class _Untranslatable(Exception):
    pass


class _Printer:
    def __init__(self, system: System) -> None:
        self.system = system
        spec = system.spec
        self.enums = {v.name: v.type.values for v in spec.variables if v.type.kind == "enum"}
        self.principals = {v.name for v in spec.variables if v.type.kind == "principal"}
        self.states = tuple(s.name for s in spec.states)

    def name_of(self, const: z3.ExprRef) -> str:
        return str(const.decl().name())

    def atom(self, expr: z3.ExprRef) -> Node:
        """A constant of the state vector."""
        name = self.name_of(expr)
        if name == "state":
            return StateRef()
        if name.startswith("@seen:"):
            return Call("happened", (Literal(name[len("@seen:") :]),))
        if "#" in name:
            variable, key = name.split("#", 1)
            member: Literal = Literal(key == "True") if key in ("True", "False") and variable not in self.enums else Literal(key)
            return Compare("in", member, Var(variable))
        if "@" in name:
            variable, role = name.split("@", 1)
            return Call("has_role", (Var(variable), Literal(role)))
        return Var(name)

    def coded(self, expr: z3.ExprRef) -> tuple[str, ...] | None:
        """The names an Int term's codes stand for (state names, an enum's values)."""
        if not z3.is_const(expr) or z3.is_int_value(expr):
            return None
        name = self.name_of(expr)
        if name == "state":
            return self.states
        return self.enums.get(name)

    def compare(self, op: str, left: z3.ExprRef, right: z3.ExprRef) -> Node:
        if z3.is_int_value(left) and not z3.is_int_value(right):
            left, right, op = right, left, _MIRROR[op]
        names = self.coded(left)
        if names is not None and z3.is_int_value(right):
            code = right.as_long()
            codes = self.system.codes
            chosen = [n for n in names if _TESTS[op](codes[n], code)]
            subject = self.node(left)
            if len(chosen) == 1:
                return Compare("==", subject, Literal(chosen[0]))
            if not chosen:
                return Literal(False)
            if len(chosen) == len(names):
                return Literal(True)
            if 2 * len(chosen) > len(names):
                rest = [n for n in names if n not in chosen]
                if len(rest) == 1:
                    return Compare("!=", subject, Literal(rest[0]))
                return Compare("not in", subject, ListExpr(tuple(Literal(n) for n in rest)))
            return Compare("in", subject, ListExpr(tuple(Literal(n) for n in chosen)))
        if z3.is_const(left) and self.name_of(left) in self.principals and z3.is_int_value(right) and right.as_long() == 0:
            return Compare(op, self.node(left), Literal(None))
        return Compare(op, self.node(left), self.node(right))

    def junction(self, op: str, parts: list[Node]) -> Node:
        """``and``/``or`` without neutral operands; ``x == "a" or x == "b"`` as ``x in [...]``."""
        unit, zero = (True, False) if op == "and" else (False, True)
        kept = [p for p in parts if not (isinstance(p, Literal) and p.value is unit)]
        if any(isinstance(p, Literal) and p.value is zero for p in kept):
            return Literal(zero)
        if op == "or" and len(kept) > 1 and all(isinstance(p, Compare) and p.op == "==" and isinstance(p.right, Literal) for p in kept):
            subjects = {unparse(p.left) for p in kept if isinstance(p, Compare)}
            if len(subjects) == 1 and isinstance(kept[0], Compare):
                subject = kept[0].left
                values = [p.right.value for p in kept if isinstance(p, Compare) and isinstance(p.right, Literal)]
                names = self.states if isinstance(subject, StateRef) else self.enums.get(subject.name) if isinstance(subject, Var) else None
                if names is not None and set(names) <= set(values):
                    return Literal(True)
                return Compare("in", subject, ListExpr(tuple(Literal(v) for v in values)))
        if not kept:
            return Literal(unit)
        return kept[0] if len(kept) == 1 else BoolOp(op, tuple(kept))

    def node(self, expr: z3.ExprRef) -> Node:
        if z3.is_true(expr):
            return Literal(True)
        if z3.is_false(expr):
            return Literal(False)
        if z3.is_int_value(expr):
            return _number(expr.as_long())
        if z3.is_rational_value(expr):
            fraction = expr.as_fraction()
            with localcontext() as ctx:
                ctx.prec = 40
                value = Decimal(fraction.numerator) / Decimal(fraction.denominator)
            return Literal(value) if value >= 0 else Unary("-", Literal(-value))
        if z3.is_const(expr) and expr.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            return self.atom(expr)
        kind = expr.decl().kind()
        args = expr.children()
        if kind == z3.Z3_OP_AND:
            return self.junction("and", [self.node(a) for a in args])
        if kind == z3.Z3_OP_OR:
            return self.junction("or", [self.node(a) for a in args])
        if kind == z3.Z3_OP_NOT:
            (inner,) = args
            op = _compare_op(inner)
            if op is not None:
                left, right = inner.children()
                return self.compare(_NEGATED[op], left, right)
            return Unary("not", self.node(inner))
        if kind == z3.Z3_OP_IMPLIES:
            return Call("implies", (self.node(args[0]), self.node(args[1])))
        if kind == z3.Z3_OP_ITE:
            return Conditional(self.node(args[0]), self.node(args[1]), self.node(args[2]))
        op = _compare_op(expr)
        if op is not None:
            if kind == z3.Z3_OP_DISTINCT and len(args) != 2:
                raise _Untranslatable
            return self.compare(op, args[0], args[1])
        arith = {z3.Z3_OP_ADD: "+", z3.Z3_OP_SUB: "-", z3.Z3_OP_MUL: "*", z3.Z3_OP_IDIV: "//", z3.Z3_OP_MOD: "%"}
        if kind in arith:
            out = self.node(args[0])
            for arg in args[1:]:
                out = BinaryNode(arith[kind], out, self.node(arg))
            return out
        if kind == z3.Z3_OP_UMINUS:
            return Unary("-", self.node(args[0]))
        if kind == z3.Z3_OP_TO_REAL:
            return self.node(args[0])
        raise _Untranslatable


def _number(value: int) -> Node:
    return Literal(value) if value >= 0 else Unary("-", Literal(-value))


def _compare_op(expr: z3.ExprRef) -> str | None:
    kind = expr.decl().kind()
    return {
        z3.Z3_OP_EQ: "==",
        z3.Z3_OP_DISTINCT: "!=",
        z3.Z3_OP_LE: "<=",
        z3.Z3_OP_LT: "<",
        z3.Z3_OP_GE: ">=",
        z3.Z3_OP_GT: ">",
    }.get(kind)


def readable(system: System, invariant: z3.ExprRef) -> str:
    """``invariant`` (over constants named ``state``, the variables, ``v#member``, ``p@role``
    and ``@seen:event``) as expression text of the spec language; Z3's own syntax, on one line,
    for a part that has no counterpart."""
    try:
        text = unparse(_Printer(system).node(invariant))
    except (_Untranslatable, ValueError, RecursionError, z3.Z3Exception):
        text = " ".join(str(invariant).split())
    if len(text) > MAX_LENGTH:
        text = text[: MAX_LENGTH - 15] + " … (truncated)"
    return text
