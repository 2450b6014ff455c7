"""Export a finite spec as a Promela model for the SPIN model checker.

The model is the same transition system that :mod:`railguard.verifier.system` encodes in Z3,
written for explicit-state search, so that SPIN can cross-check the symbolic verdicts (and
so that users of SPIN can take a railguard spec to their own tools):

- One ``active proctype`` loops over a nondeterministic ``if`` of every *move*: for each
  non-terminal state and event, a person fires the event (actor and params chosen
  nondeterministically, the step then computed deterministically inside a ``d_step``); a
  state's timeout event fired by the system with default params; and the error exit of every
  non-terminal state, which may happen at any time.
- A step follows :mod:`railguard.spec.semantics`: among the transitions on the event from the
  current state whose permission the actor holds, in declaration order, the first whose guard
  holds is taken; a guard or an assignment that cannot be evaluated (a ``//`` or ``%`` by
  zero) refuses the step, and so does an assignment whose new value leaves its variable's
  domain. Assignments are simultaneous: new values are computed from the old ones first.
- Expressions keep Python's semantics: ``//`` and ``%`` floor (C, and so SPIN, truncates), and
  short-circuit ``and``/``or``/``if``/``implies`` are only evaluated where Python would. An
  expression whose intermediate values could leave SPIN's 32-bit ``int`` is refused at export.
- Principals are data-independent (DESIGN §3): a principal variable is a small identity plus
  one bit per role; identities are renumbered after every step in order of first occurrence,
  so the state space is finite. The actor of a step is one of the people stored in principal
  variables (with their roles) or a fresh person with any allowed role set.
- Properties are assertions: every ``always``/``never`` invariant is asserted in the initial
  configuration and after every step; ``precedes: {first: A, then: B}`` is asserted where
  ``B`` fires, on a monitor bit that the first ``A`` sets. SPIN prints a violated property as
  ``assertion violated inv_<name>`` (see :func:`assertion_names`).
- Reachability probes: compiling with ``spin -DPROBE=<expr> -a`` adds ``assert(!(<expr>))``
  after every step, so ``./pan`` reports ``assertion violated probe`` with a run to a
  configuration where ``<expr>`` holds; the macros ``at_<state>`` name the states
  (``spin -DPROBE=at_paid -a refund.pml``). SPIN hands the definition to a shell, so quote an
  expression twice: ``spin '-DPROBE="(v_amount > 5000)"' -a refund.pml``.

Only finite specs can be exported: every variable and param an ``int`` with ``min`` and
``max``, a ``bool``, an ``enum`` or a ``principal``. Anything else raises
:class:`PromelaError`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from railguard.spec import Spec, Transition
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
    children,
    unparse,
)
from railguard.spec.types import Type

from .errors import VerifierError

__all__ = ["FORMATS", "PromelaError", "assertion_names", "export", "to_promela"]

#: The formats :func:`export` writes.
FORMATS: tuple[str, ...] = ("promela",)

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
#: Param domains up to this size are chosen by one nondeterministic ``if``; larger ones bit
#: by bit, so that SPIN's search depth grows with the logarithm of the domain, not its size.
SMALL_DOMAIN = 16

#: Promela's reserved words and predefined names, which no generated name may take.
_KEYWORDS = frozenset(
    (
        "active", "assert", "atomic", "bit", "bool", "break", "byte", "c_code", "c_decl", "c_expr",
        "c_state", "c_track", "chan", "d_proctype", "d_step", "do", "else", "empty", "enabled",
        "eval", "false", "fi", "for", "full", "get_priority", "goto", "hidden", "if", "in", "init",
        "inline", "int", "len", "local", "ltl", "mtype", "nempty", "never", "nfull", "notrace",
        "od", "of", "pc_value", "printf", "printm", "priority", "proctype", "provided", "run",
        "select", "set_priority", "short", "show", "skip", "timeout", "trace", "true", "typedef",
        "unless", "unsigned", "xr", "xs", "np_", "_", "_last", "_nr_pr", "_pid",
    )
)
#: Names the model itself defines.
_FIXED = frozenset({"P_UNSET", "P_SYSTEM", "P_FRESH", "PROBE", "check_invariants", "canonical", "end"})


class PromelaError(VerifierError):
    """The spec cannot be exported to Promela (it is not finite, or SPIN cannot hold its data)."""


def export(spec: Spec, fmt: str = "promela") -> str:
    """The spec in another tool's format; ``fmt`` is one of :data:`FORMATS`."""
    if fmt == "promela":
        return to_promela(spec)
    known = ", ".join(FORMATS)
    raise VerifierError(f"unknown export format `{fmt}` (formats: {known})")


def to_promela(spec: Spec) -> str:
    """The Promela model of a finite spec (see the module docstring); raises :class:`PromelaError`."""
    return _Exporter(spec).render()


def assertion_names(spec: Spec) -> dict[str, str]:
    """Each invariant's name → the name SPIN prints when its assertion is violated."""
    return dict(_Exporter(spec).inv_names)


# --------------------------------------------------------------------------- names


class _Names:
    """Readable, unique Promela identifiers."""

    def __init__(self) -> None:
        self.taken: set[str] = set(_KEYWORDS | _FIXED)

    def make(self, prefix: str, *parts: str) -> str:
        body = "__".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts)
        base = f"{prefix}{body}" if prefix else body
        if not base or base[0].isdigit():
            base = "n_" + base
        name = base
        counter = 2
        while name in self.taken:
            name = f"{base}_{counter}"
            counter += 1
        self.taken.add(name)
        return name


def _c_type(low: int, high: int) -> str:
    if low >= 0 and high <= 1:
        return "bool"
    if low >= 0 and high <= 255:
        return "byte"
    if low >= -(2**15) and high < 2**15:
        return "short"
    return "int"


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class _Code:
    """A translated expression: its text, when it is defined (``None``: always), its range."""

    text: str
    ok: str | None
    low: int
    high: int
    kind: str  # int, bool, code (enum, state, text), principal, none, list
    items: tuple[_Code, ...] = ()


def _and(*parts: str | None) -> str | None:
    kept = [p for p in parts if p is not None and p != "true"]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else "(" + " && ".join(kept) + ")"


def _ok(code: _Code) -> str:
    return code.ok if code.ok is not None else "true"


@dataclass
class _Env:
    """What names mean where an expression is evaluated."""

    params: dict[str, tuple[str, Type]] = field(default_factory=dict)
    #: Params of a timeout step: their default values as Promela text.
    defaults: dict[str, tuple[str, Type]] = field(default_factory=dict)
    #: The Promela text of the actor's identity, or ``None`` outside transitions.
    actor: str | None = None
    #: Param types as the transition itself declares them (for the signature check).
    declared: dict[str, Type] = field(default_factory=dict)
    label: str = ""


class _Exporter:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.names = _Names()
        self._check_finite()
        # string codes: states first, then every other text value
        texts: list[str] = [s.name for s in spec.states]
        for variable in spec.variables:
            texts.extend(variable.type.values)
        for transition in spec.transitions:
            for param in transition.params:
                texts.extend(param.type.values)
        for node in self._trees():
            texts.extend(
                n.value for n in _walk(node) if isinstance(n, Literal) and isinstance(n.value, str)
            )
        self.codes: dict[str, int] = {}
        for text in texts:
            self.codes.setdefault(text, len(self.codes))
        self.state_names = {s.name: self.names.make("ST_", s.name) for s in spec.states}
        self.value_names: dict[str, str] = {}
        for text in self.codes:
            if text not in self.state_names:
                self.value_names[text] = self.names.make("V_", text)
        self.state_var = self.names.make("", "state")
        self.roles = [r.name for r in spec.roles]
        self.principals = [v.name for v in spec.variables if v.type.kind == "principal"]
        self.fresh = len(self.principals) + 2  # ids: 0 unset, 1 system, 2.. people
        self.var_names = {v.name: self.names.make("v_", v.name) for v in spec.variables}
        self.role_bits = {
            (p, r): self.names.make("v_", p, r) for p in self.principals for r in self.roles
        }
        self.actor_var = self.names.make("", "actor")
        self.actor_bits = {r: self.names.make("actor__", r) for r in self.roles}
        self.monitors = sorted(
            {inv.first for inv in spec.invariants if inv.kind == "precedes" and inv.first}
        )
        self.seen = {e: self.names.make("seen_", e) for e in self.monitors}
        self.signatures: dict[str, dict[str, Type]] = {}
        self.defaults: dict[str, dict[str, object]] = {}
        for transition in spec.transitions:
            if transition.event not in self.signatures:
                self.signatures[transition.event] = {p.name: p.type for p in transition.params}
                self.defaults[transition.event] = {
                    p.name: p.default for p in transition.params if not p.required
                }
        self.param_vars = {
            (event, name): self.names.make("p_", event, name)
            for event, signature in self.signatures.items()
            for name in signature
        }
        self.temps = {v.name: self.names.make("t_", v.name) for v in spec.variables}
        self.temp_bits = {
            (p, r): self.names.make("t_", p, r) for p in self.principals for r in self.roles
        }
        self.old_ids = {p: self.names.make("old_", p) for p in self.principals}
        self.next_id = self.names.make("", "next_id")
        self.inv_names = {inv.name: self.names.make("inv_", inv.name) for inv in spec.invariants}
        self.probe = self.names.make("", "probe")
        self.at_names = {s.name: self.names.make("at_", s.name) for s in spec.states}
        # role sets a fresh person may hold
        self.role_sets = [
            frozenset(subset)
            for size in range(len(self.roles) + 1)
            for subset in itertools.combinations(self.roles, size)
            if self._allowed(frozenset(subset))
        ]

    # ------------------------------------------------------------------ checks

    def _check_finite(self) -> None:
        spec = self.spec
        for variable in spec.variables:
            self._check_type(variable.type, f"variable `{variable.name}`")
        for transition in spec.transitions:
            for param in transition.params:
                self._check_type(param.type, f"{transition.label}: param `{param.name}`")

    @staticmethod
    def _check_type(declared: Type, owner: str) -> None:
        kind = declared.kind
        if kind in ("bool", "enum", "principal"):
            return
        if kind == "int":
            if declared.min is None or declared.max is None:
                raise PromelaError(
                    f"{owner} is an int without `min` and `max`, so the spec is not finite and has no Promela model"
                )
            if int(declared.min) < INT32_MIN or int(declared.max) > INT32_MAX:
                raise PromelaError(f"{owner} has a range wider than SPIN's 32-bit int")
            return
        raise PromelaError(
            f"{owner} is of type {kind}, which has no Promela model (only bounded int, bool, enum and principal)"
        )

    def _trees(self) -> Iterator[Node]:
        for transition in self.spec.transitions:
            if transition.guard is not None:
                yield transition.guard.tree
            for _, expr in transition.assign:
                yield expr.tree
        for invariant in self.spec.invariants:
            if invariant.expr is not None:
                yield invariant.expr.tree

    def _allowed(self, roles: frozenset[str]) -> bool:
        return all(len(roles & set(group)) <= 1 for group in self.spec.exclusive_roles)

    # ------------------------------------------------------------------ translation

    def code_of(self, text: str) -> str:
        return self.state_names.get(text) or self.value_names[text]

    def range_of(self, declared: Type) -> tuple[int, int]:
        kind = declared.kind
        if kind == "int":
            assert declared.min is not None and declared.max is not None
            return int(declared.min), int(declared.max)
        if kind == "bool":
            return 0, 1
        if kind == "enum":
            codes = [self.codes[v] for v in declared.values]
            return min(codes), max(codes)
        return 0, self.fresh

    def _kind(self, declared: Type) -> str:
        if declared.kind == "enum":
            return "code"
        return declared.kind

    def translate(self, node: Node, env: _Env) -> _Code:
        code = self._translate(node, env)
        if code.kind == "int" and (code.low < INT32_MIN or code.high > INT32_MAX):
            raise PromelaError(
                f"{env.label}`{unparse(node)}` can exceed SPIN's 32-bit int, so it has no faithful Promela model"
            )
        return code

    def _translate(self, node: Node, env: _Env) -> _Code:
        rec = self.translate
        if isinstance(node, Literal):
            value = node.value
            if value is None:
                return _Code("P_UNSET", None, 0, 0, "none")
            if isinstance(value, bool):
                return _Code("true" if value else "false", None, int(value), int(value), "bool")
            if isinstance(value, int):
                return _Code(f"({value})" if value < 0 else str(value), None, value, value, "int")
            if isinstance(value, str):
                code = self.codes[value]
                return _Code(self.code_of(value), None, code, code, "code")
            raise PromelaError(f"{env.label}the decimal literal in `{unparse(node)}` has no Promela model")
        if isinstance(node, Var):
            declared = self.spec.variable_map[node.name].type
            low, high = self.range_of(declared)
            return _Code(self.var_names[node.name], None, low, high, self._kind(declared))
        if isinstance(node, Param):
            return self._param(node, env)
        if isinstance(node, Actor):
            if env.actor is None:
                raise PromelaError("`actor` outside a transition has no Promela model")
            return _Code(env.actor, None, 0, self.fresh, "principal")
        if isinstance(node, StateRef):
            return _Code(self.state_var, None, 0, len(self.codes), "code")
        if isinstance(node, Unary):
            inner = rec(node.operand, env)
            if node.op == "not":
                return _Code(_not(inner.text), inner.ok, 0, 1, "bool")
            return _Code(f"(-{inner.text})", inner.ok, -inner.high, -inner.low, "int")
        if isinstance(node, Binary):
            return self._binary(node.op, rec(node.left, env), rec(node.right, env))
        if isinstance(node, BoolOp):
            parts = [rec(o, env) for o in node.operands]
            ok = parts[-1].ok
            for part in reversed(parts[:-1]):
                stop = _not(part.text) if node.op == "and" else part.text
                ok = part.ok if ok is None else _and(part.ok, f"({stop} || {ok})")
            joiner = " && " if node.op == "and" else " || "
            return _Code("(" + joiner.join(p.text for p in parts) + ")", ok, 0, 1, "bool")
        if isinstance(node, Compare):
            return self._compare(node.op, rec(node.left, env), rec(node.right, env))
        if isinstance(node, ListExpr):
            items = tuple(rec(i, env) for i in node.items)
            return _Code("", _and(*(i.ok for i in items)), 0, 0, "list", items)
        if isinstance(node, Conditional):
            cond, then, orelse = rec(node.cond, env), rec(node.then, env), rec(node.orelse, env)
            branches = None if then.ok is None and orelse.ok is None else f"({cond.text} -> {_ok(then)} : {_ok(orelse)})"
            kind = then.kind if then.kind != "none" else orelse.kind
            return _Code(
                f"({cond.text} -> {then.text} : {orelse.text})",
                _and(cond.ok, branches),
                min(then.low, orelse.low),
                max(then.high, orelse.high),
                kind,
            )
        if isinstance(node, Call):
            if node.func == "len" and not isinstance(node.args[0], ListExpr):
                return self._text_length(node.args[0], env)
            return self._call(node.func, [rec(a, env) for a in node.args])
        raise PromelaError(f"{env.label}`{unparse(node)}` has no Promela model")

    def _text_length(self, node: Node, env: _Env) -> _Code:
        """``len`` of text: literal text, or a choice between texts (str variables are refused)."""
        if isinstance(node, Literal) and isinstance(node.value, str):
            size = len(node.value)
            return _Code(str(size), None, size, size, "int")
        if isinstance(node, Conditional):
            cond = self.translate(node.cond, env)
            then, orelse = self._text_length(node.then, env), self._text_length(node.orelse, env)
            return _Code(
                f"({cond.text} -> {then.text} : {orelse.text})",
                _and(cond.ok),
                min(then.low, orelse.low),
                max(then.high, orelse.high),
                "int",
            )
        raise PromelaError(f"{env.label}`len({unparse(node)})` has no Promela model")

    def _param(self, node: Param, env: _Env) -> _Code:
        if env.defaults or env.actor == "P_SYSTEM":
            found = env.defaults.get(node.name)
        else:
            found = env.params.get(node.name)
        own = env.declared.get(node.name)
        if found is None:
            # Not in the event's signature (the first transition on the event): evaluating it
            # raises at run time, so the expression is never defined.
            kind = self._kind(own) if own is not None else "int"
            return _Code("0", "false", 0, 0, kind)
        text, declared = found
        if own is not None and self._kind(own) != self._kind(declared):
            raise PromelaError(
                f"{env.label}`params.{node.name}` is declared {own.describe()} here but "
                f"{declared.describe()} by the event's first transition, so its value has no single Promela type"
            )
        low, high = self.range_of(declared)
        return _Code(text, None, low, high, self._kind(declared))

    @staticmethod
    def _binary(op: str, a: _Code, b: _Code) -> _Code:
        ok = _and(a.ok, b.ok)
        if op in ("+", "-", "*"):
            if op == "+":
                low, high = a.low + b.low, a.high + b.high
            elif op == "-":
                low, high = a.low - b.high, a.high - b.low
            else:
                corners = [a.low * b.low, a.low * b.high, a.high * b.low, a.high * b.high]
                low, high = min(corners), max(corners)
            return _Code(f"({a.text} {op} {b.text})", ok, low, high, "int")
        ok = _and(ok, f"({b.text} != 0)")
        # C truncates towards zero; Python floors. They differ when the remainder is not
        # zero and the operands have opposite signs.
        differs = (
            f"({a.text} % {b.text} != 0 && (({a.text} < 0 && {b.text} > 0) || ({a.text} > 0 && {b.text} < 0)))"
        )
        big = max(abs(a.low), abs(a.high)) + 1
        if op == "//":
            text = f"({differs} -> ({a.text} / {b.text} - 1) : ({a.text} / {b.text}))"
            return _Code(text, ok, -big, big, "int")
        bound = max(abs(b.low), abs(b.high))
        text = f"({differs} -> ({a.text} % {b.text} + {b.text}) : ({a.text} % {b.text}))"
        return _Code(text, ok, -bound, bound, "int")

    def _equal(self, a: _Code, b: _Code) -> str:
        if a.kind == "list" or b.kind == "list":
            left = a.items if a.kind == "list" else (a,)
            right = b.items if b.kind == "list" else (b,)
            forward = [self._member(x, right) for x in left]
            backward = [self._member(y, left) for y in right]
            parts = forward + backward
            return "(" + " && ".join(parts) + ")" if parts else "true"
        return f"({a.text} == {b.text})"

    def _member(self, a: _Code, items: Sequence[_Code]) -> str:
        if not items:
            return "false"
        return "(" + " || ".join(self._equal(a, i) for i in items) + ")"

    def _compare(self, op: str, a: _Code, b: _Code) -> _Code:
        ok = _and(a.ok, b.ok)
        if op in ("in", "not in"):
            if b.kind != "list":
                raise PromelaError("`in` over a set has no Promela model")
            term = self._member(a, b.items)
            return _Code(term if op == "in" else _not(term), ok, 0, 1, "bool")
        if op in ("==", "!="):
            eq = self._equal(a, b)
            return _Code(eq if op == "==" else _not(eq), ok, 0, 1, "bool")
        return _Code(f"({a.text} {op} {b.text})", ok, 0, 1, "bool")

    def _call(self, func: str, args: list[_Code]) -> _Code:
        if func == "implies":
            first, second = args
            ok = _and(first.ok, None if second.ok is None else f"({_not(first.text)} || {second.ok})")
            return _Code(f"({_not(first.text)} || {second.text})", ok, 0, 1, "bool")
        ok = _and(*(a.ok for a in args))
        if func == "len":
            (only,) = args
            terms = []
            for i, item in enumerate(only.items):
                earlier = [self._equal(item, other) for other in only.items[:i]]
                terms.append(f"(({' || '.join(earlier)}) -> 0 : 1)" if earlier else "1")
            text = "(" + " + ".join(terms) + ")" if terms else "0"
            return _Code(text, ok, min(1, len(terms)), len(terms), "int")
        if func == "abs":
            (only,) = args
            high = max(abs(only.low), abs(only.high))
            low = 0 if only.low <= 0 <= only.high else min(abs(only.low), abs(only.high))
            return _Code(f"({only.text} >= 0 -> {only.text} : (-{only.text}))", ok, low, high, "int")
        result = args[0]
        for term in args[1:]:
            sign = "<" if func == "min" else ">"
            text = f"({term.text} {sign} {result.text} -> {term.text} : {result.text})"
            if func == "min":
                low, high = min(term.low, result.low), min(term.high, result.high)
            else:
                low, high = max(term.low, result.low), max(term.high, result.high)
            result = _Code(text, None, low, high, "int")
        return _Code(result.text, ok, result.low, result.high, "int")

    # ------------------------------------------------------------------ rendering

    def render(self) -> str:
        out = _Writer()
        spec = self.spec
        out.line(f"/* railguard: Promela model of `{_comment(spec.name)}` ({spec.content_hash}).")
        out.line(" * Generated by `railguard export --format promela`; do not edit.")
        out.line(" * Check: spin -a model.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan -m1000000 -c0")
        out.line(" * A violated property prints `assertion violated inv_<name>`; with -c0 every one is listed.")
        out.line(" * Probe: spin -DPROBE=at_<state> -a model.pml finds a run to the state; any expression")
        out.line(" * works too, quoted twice for the shell spin starts: spin '-DPROBE=\"(v_x > 3)\"' -a model.pml */")
        out.line()
        out.line("/* state names and enum values */")
        for text, code in self.codes.items():
            if text in self.state_names:
                out.line(f"#define {self.state_names[text]} {code}")
        for text, code in self.codes.items():
            if text in self.value_names:
                out.line(f"#define {self.value_names[text]} {code}\t/* {_comment(repr(text))} */")
        out.line("#define P_UNSET 0\t/* principal ids: unset, the system, then people 2.. */")
        out.line("#define P_SYSTEM 1")
        out.line(f"#define P_FRESH {self.fresh}\t/* an actor who is none of the stored people */")
        for state, name in self.at_names.items():
            out.line(f"#define {name} ({self.state_var} == {self.state_names[state]})")
        out.line()
        self._declarations(out)
        out.line()
        self._inlines(out)
        out.line()
        out.line(f"active proctype {self.names.make('', 'workflow')}() {{")
        with out.indent():
            self._initial(out)
            out.line("end:")
            out.line("do")
            for move in self._moves():
                move(out)
            out.line("od")
        out.line("}")
        return out.text()

    def _declarations(self, out: _Writer) -> None:
        spec = self.spec
        state_type = _c_type(0, len(self.codes))
        initial = self.state_names[spec.initial_state.name]
        out.line("/* the configuration */")
        out.line(f"{state_type} {self.state_var} = {initial};")
        for variable in spec.variables:
            declared = variable.type
            low, high = self._choice_range(declared) if variable.context else self.range_of(declared)
            ctype = _c_type(low, high) if declared.kind != "principal" else "byte"
            name = self.var_names[variable.name]
            if variable.context or declared.kind == "principal":
                value = "P_UNSET" if declared.kind == "principal" else str(low)
            else:
                value = self.literal(variable.initial, declared)
            note = "\t/* context: chosen at start */" if variable.context else ""
            out.line(f"{ctype} {name} = {value};{note}")
            if declared.kind == "principal":
                for role in self.roles:
                    out.line(f"bool {self.role_bits[(variable.name, role)]};")
        for event in self.monitors:
            out.line(f"bool {self.seen[event]};\t/* `{_comment(event)}` has fired */")
        out.line("/* the inputs of a step; zero between steps */")
        out.line(f"byte {self.actor_var};")
        for role in self.roles:
            out.line(f"bool {self.actor_bits[role]};")
        for (event, name), var in self.param_vars.items():
            low, high = self._choice_range(self.signatures[event][name])
            out.line(f"{_c_type(low, high)} {var};")
        out.line("/* scratch space of a step, not part of the state vector */")
        for variable in spec.variables:
            out.line(f"hidden int {self.temps[variable.name]};")
        for bit in self.temp_bits.values():
            out.line(f"hidden byte {bit};")
        for old in self.old_ids.values():
            out.line(f"hidden byte {old};")
        if self.principals:
            out.line(f"hidden byte {self.next_id};")
        for name in self.inv_names.values():
            out.line(f"hidden byte {name};")
        out.line("#ifdef PROBE")
        out.line(f"hidden byte {self.probe};")
        out.line("#endif")

    def literal(self, value: object, declared: Type) -> str:
        if declared.kind == "principal" or value is None:
            return "P_UNSET"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return f"({value})" if value < 0 else str(value)
        assert isinstance(value, str)
        return self.code_of(value)

    def _choice_range(self, declared: Type) -> tuple[int, int]:
        low, high = self.range_of(declared)
        if declared.kind == "int" and high - low + 1 > SMALL_DOMAIN:
            bits = (high - low).bit_length()
            return low, low + 2**bits - 1
        return low, high

    def _inlines(self, out: _Writer) -> None:
        spec = self.spec
        out.line("inline check_invariants() {")
        with out.indent():
            for inv in spec.invariants:
                if inv.expr is None:
                    continue
                code = self.translate(inv.expr.tree, _Env(label=f"invariant `{inv.name}`: "))
                holds = code.text if inv.kind == "always" else _not(code.text)
                cond = _and(code.ok, holds) or "true"
                out.line(f"/* {inv.kind}: {_comment(inv.expr.text)} */")
                out.line(f"{self.inv_names[inv.name]} = {cond};")
                out.line(f"assert({self.inv_names[inv.name]});")
            out.line("#ifdef PROBE")
            out.line(f"{self.probe} = !(PROBE);")
            out.line(f"assert({self.probe});")
            out.line("#endif")
            out.line("skip")
        out.line("}")
        if self.principals:
            out.line()
            out.line("/* renumber people in order of first occurrence: one state per configuration */")
            out.line("inline canonical() {")
            with out.indent():
                for p in self.principals:
                    out.line(f"{self.old_ids[p]} = {self.var_names[p]};")
                out.line(f"{self.next_id} = 2;")
                for index in range(len(self.principals)):
                    self._renumber(out, index)
                out.line("skip")
            out.line("}")

    def _renumber(self, out: _Writer, index: int) -> None:
        p = self.principals[index]
        var, old = self.var_names[p], self.old_ids[p]
        out.line("if")
        out.line(f":: {old} < 2 -> skip")
        out.line(":: else ->")
        with out.indent():
            depth = 0
            for earlier in self.principals[:index]:
                out.line("if")
                out.line(f":: {old} == {self.old_ids[earlier]} -> {var} = {self.var_names[earlier]}")
                out.line(":: else ->")
                out.push()
                depth += 1
            out.line(f"{var} = {self.next_id}; {self.next_id}++")
            for _ in range(depth):
                out.pop()
                out.line("fi")
        out.line("fi;")

    # ------------------------------------------------------------------ initial configuration

    def _initial(self, out: _Writer) -> None:
        context = [v for v in self.spec.variables if v.context]
        out.line("/* the initial configuration */")
        if not context:
            out.line("d_step { check_invariants() };")
            return
        out.line("atomic {")
        with out.indent():
            seen: list[str] = []
            for variable in context:
                name = self.var_names[variable.name]
                if variable.type.kind == "principal":
                    out.line("if")
                    out.line(f":: {name} = P_UNSET")
                    for earlier in seen:
                        copies = "; ".join(
                            f"{self.role_bits[(variable.name, r)]} = {self.role_bits[(earlier, r)]}"
                            for r in self.roles
                        )
                        out.line(f":: {name} = {self.var_names[earlier]}" + (f"; {copies}" if copies else ""))
                    for roles in self.role_sets:
                        bits = "".join(
                            f"; {self.role_bits[(variable.name, r)]} = {int(r in roles)}" for r in self.roles
                        )
                        out.line(f":: {name} = {2 + len(seen)}{bits}")
                    out.line("fi;")
                    seen.append(variable.name)
                else:
                    self._choose(out, name, variable.type)
            out.line("d_step {")
            with out.indent():
                if seen:
                    out.line("canonical();")
                out.line("check_invariants()")
            out.line("}")
        out.line("};")

    def _choose(self, out: _Writer, name: str, declared: Type) -> None:
        """Nondeterministically set ``name`` to any value of ``declared`` (at least one step)."""
        low, high = self.range_of(declared)
        if declared.kind == "enum":
            options = [self.code_of(v) for v in declared.values]
        elif declared.kind == "bool":
            options = ["false", "true"]
        elif high - low + 1 <= SMALL_DOMAIN:
            options = [str(v) if v >= 0 else f"({v})" for v in range(low, high + 1)]
        else:
            out.line(f"{name} = {low};" if low >= 0 else f"{name} = ({low});")
            for bit in range((high - low).bit_length()):
                out.line(f"if :: {name} = {name} + {2**bit} :: skip fi;")
            out.line(f"if :: {name} > {high} -> {name} = {high} :: else -> skip fi;")
            return
        out.line("if " + " ".join(f":: {name} = {o}" for o in options) + " fi;")

    # ------------------------------------------------------------------ moves

    def _moves(self) -> Iterator[_Move]:
        spec = self.spec
        for state in spec.states:
            if state.terminal is not None:
                continue
            events = dict.fromkeys(t.event for t in spec.transitions_from(state.name))
            for event in events:
                candidates = [t for t in spec.transitions_from(state.name) if t.event == event]
                move = self._person_move(state.name, event, candidates)
                if move is not None:
                    yield move
            if state.timeout is not None and state.timeout.event is not None:
                event = state.timeout.event
                candidates = [t for t in spec.transitions_from(state.name) if t.event == event]
                timeout = self._timeout_move(state.name, event, candidates)
                if timeout is not None:
                    yield timeout
        for state in spec.states:
            target = spec.error_target(state.name)
            if target is not None:
                yield self._error_move(state.name, target)

    def _error_move(self, source: str, target: str) -> _Move:
        def write(out: _Writer) -> None:
            out.line(f"/* error exit from `{_comment(source)}` to `{_comment(target)}` */")
            out.line(
                f":: d_step {{ {self.state_var} == {self.state_names[source]} -> "
                f"{self.state_var} = {self.state_names[target]}; check_invariants() }}"
            )

        return write

    def _permits(self, transition: Transition, roles: frozenset[str]) -> bool:
        if transition.permission == "public":
            return True
        return any(transition.permission in self.spec.role_map[r].permissions for r in roles)

    def _permission(self, transition: Transition) -> str | None:
        if transition.permission == "public":
            return None
        granting = [self.actor_bits[r.name] for r in self.spec.roles if transition.permission in r.permissions]
        return "(" + " || ".join(granting) + ")" if granting else "false"

    def _person_move(self, source: str, event: str, candidates: list[Transition]) -> _Move | None:
        uses_actor = any(_uses(t, Actor) for t in candidates)
        options: list[str] = []
        unguarded = False
        if uses_actor:
            # one of the stored people, with their roles ...
            for ident in range(2, len(self.principals) + 2):
                present = " || ".join(f"{self.var_names[p]} == {ident}" for p in self.principals)
                bits = "".join(
                    f"; {self.actor_bits[r]} = " + self._stored_role(ident, r) for r in self.roles
                )
                options.append(f"({present}) -> {self.actor_var} = {ident}{bits}")
            # ... or a fresh one with any allowed role set that permits some candidate
            for roles in self.role_sets:
                if any(self._permits(t, roles) for t in candidates):
                    options.append(f"{self.actor_var} = P_FRESH" + self._role_text(roles))
                    unguarded = True
        else:
            # identity unused: one role set per distinct pattern of permitted candidates
            patterns: set[tuple[bool, ...]] = set()
            for roles in self.role_sets:
                pattern = tuple(self._permits(t, roles) for t in candidates)
                if any(pattern) and pattern not in patterns:
                    patterns.add(pattern)
                    options.append("skip" + self._role_text(roles))
                    unguarded = True
        if not unguarded:
            return None  # no role set permits any candidate: the event is always refused here
        signature = self.signatures[event]
        used = sorted(
            {n.name for t in candidates for n in _nodes(t, Param) if isinstance(n, Param) and n.name in signature}
        )
        env = _Env(
            params={name: (self.param_vars[(event, name)], signature[name]) for name in signature},
            actor=self.actor_var,
        )

        def write(out: _Writer) -> None:
            labels = ", ".join(str(t.index) for t in candidates)
            out.line(f"/* `{_comment(event)}` from `{_comment(source)}` (transition {labels}) */")
            out.line(f":: atomic {{ {self.state_var} == {self.state_names[source]} ->")
            with out.indent(2):
                out.line("if")
                for option in options:
                    out.line(f":: {option}")
                out.line("fi;")
                for name in used:
                    self._choose(out, self.param_vars[(event, name)], signature[name])
                out.line("d_step {")
                with out.indent():
                    self._select(out, candidates, env, timeout=False)
                    resets = [f"{self.actor_var} = 0", *(f"{self.actor_bits[r]} = 0" for r in self.roles)]
                    resets.extend(f"{self.param_vars[(event, n)]} = 0" for n in used)
                    out.line("; ".join(resets))
                out.line("}")
            out.line("  }")

        return write

    def _timeout_move(self, source: str, event: str, candidates: list[Transition]) -> _Move | None:
        signature = self.signatures[event]
        if any(name not in self.defaults[event] for name in signature):
            return None  # the event's signature has a required param: the system cannot fire it
        defaults = {
            name: (self.literal(value, signature[name]), signature[name])
            for name, value in self.defaults[event].items()
        }
        env = _Env(defaults=defaults, actor="P_SYSTEM")

        def write(out: _Writer) -> None:
            out.line(f"/* timeout of `{_comment(source)}`: the system fires `{_comment(event)}` */")
            out.line(f":: d_step {{ {self.state_var} == {self.state_names[source]} ->")
            with out.indent(2):
                self._select(out, candidates, env, timeout=True)
                out.line("skip")
            out.line("  }")

        return write

    def _stored_role(self, ident: int, role: str) -> str:
        text = "0"
        for p in reversed(self.principals):
            text = f"({self.var_names[p]} == {ident} -> {self.role_bits[(p, role)]} : {text})"
        return text

    def _role_text(self, roles: frozenset[str]) -> str:
        return "".join(f"; {self.actor_bits[r]} = {int(r in roles)}" for r in self.roles)

    def _select(self, out: _Writer, candidates: list[Transition], env: _Env, *, timeout: bool) -> None:
        """The first permitted candidate whose guard holds fires; a failing guard refuses."""
        depth = 0
        for transition in candidates:
            tenv = _Env(
                params=env.params,
                defaults=env.defaults,
                actor=env.actor,
                declared={p.name: p.type for p in transition.params},
                label=f"{transition.label}: ",
            )
            permit = None if timeout else self._permission(transition)
            out.line(f"/* {transition.label}" + (f": {_comment(transition.guard.text)}" if transition.guard else "") + " */")
            out.line("if")
            if transition.guard is None:
                out.line(f":: {permit or 'true'} ->")
            else:
                guard = self.translate(transition.guard.tree, tenv)
                if guard.ok is not None:
                    out.line(f":: {_and(permit, _not(guard.ok))} -> skip\t/* guard-error: refused */")
                out.line(f":: {_and(permit, guard.ok, guard.text) or 'true'} ->")
            with out.indent():
                self._apply(out, transition, tenv)
            out.line(":: else ->")
            out.push()
            depth += 1
        out.line("skip\t/* guard-false or permission-denied: refused */")
        for level in range(depth):
            out.pop()
            out.line("fi;" if level == depth - 1 else "fi")

    def _apply(self, out: _Writer, transition: Transition, env: _Env) -> None:
        assigned = [(name, self.translate(expr.tree, env)) for name, expr in transition.assign]
        ok = _and(*(code.ok for _, code in assigned))
        closers = 0
        if ok is not None:
            out.line("if")
            out.line(f":: {_not(ok)} -> skip\t/* assign-error: refused */")
            out.line(":: else ->")
            out.push()
            closers += 1
        for name, code in assigned:
            out.line(f"{self.temps[name]} = {code.text};")
        principal_assigned = False
        for name, _ in assigned:
            if name in self.principals:
                principal_assigned = True
                for role in self.roles:
                    out.line(f"{self.temp_bits[(name, role)]} = {self._role_of(self.temps[name], role, env)};")
        inside = []
        for name, _ in assigned:
            declared = self.spec.variable_map[name].type
            temp = self.temps[name]
            if declared.kind == "int":
                low, high = self.range_of(declared)
                inside.append(f"({low} <= {temp} && {temp} <= {high})")
            elif declared.kind == "enum":
                inside.append("(" + " || ".join(f"{temp} == {self.code_of(v)}" for v in declared.values) + ")")
        domain = _and(*inside)
        if domain is not None:
            out.line("if")
            out.line(f":: {domain} ->")
            out.push()
            closers += 1
        for inv in self.spec.invariants:
            if inv.kind == "precedes" and inv.then == transition.event and inv.first is not None:
                out.line(f"{self.inv_names[inv.name]} = {self.seen[inv.first]};\t/* precedes: `{_comment(inv.first)}` before `{_comment(inv.then)}` */")
                out.line(f"assert({self.inv_names[inv.name]});")
        for name, _ in assigned:
            out.line(f"{self.var_names[name]} = {self.temps[name]};")
            if name in self.principals:
                for role in self.roles:
                    out.line(f"{self.role_bits[(name, role)]} = {self.temp_bits[(name, role)]};")
        if principal_assigned:
            out.line("canonical();")
        out.line(f"{self.state_var} = {self.state_names[transition.target]};")
        if transition.event in self.seen:
            out.line(f"{self.seen[transition.event]} = true;")
        out.line("check_invariants()")
        if domain is not None:
            out.pop()
            out.line(":: else -> skip\t/* domain: refused */")
            out.line("fi")
        if ok is not None:
            out.pop()
            out.line("fi")

    def _role_of(self, identity: str, role: str, env: _Env) -> str:
        """The role bit of whoever holds ``identity``: the actor or a stored person."""
        text = "0"
        for p in reversed(self.principals):
            text = f"({identity} == {self.var_names[p]} -> {self.role_bits[(p, role)]} : {text})"
        if env.actor == self.actor_var:
            text = f"({identity} == {self.actor_var} -> {self.actor_bits[role]} : {text})"
        return f"({identity} < 2 -> 0 : {text})"


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in children(node):
        yield from _walk(child)


def _nodes(transition: Transition, kind: type[Node]) -> Iterator[Node]:
    trees = [transition.guard.tree] if transition.guard is not None else []
    trees.extend(expr.tree for _, expr in transition.assign)
    for tree in trees:
        yield from (n for n in _walk(tree) if isinstance(n, kind))


def _uses(transition: Transition, kind: type[Node]) -> bool:
    return next(_nodes(transition, kind), None) is not None


def _not(text: str) -> str:
    return f"!({text})"


def _comment(text: str) -> str:
    return text.replace("*/", "* /").replace("\n", " ")


class _Writer:
    """Lines of Promela with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def line(self, text: str = "") -> None:
        # preprocessor directives stay in the first column
        raw = not text or text.startswith("#")
        self.lines.append(text if raw else "    " * self.level + text)

    def push(self, by: int = 1) -> None:
        self.level += by

    def pop(self, by: int = 1) -> None:
        self.level -= by

    def indent(self, by: int = 1) -> _Indent:
        return _Indent(self, by)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class _Indent:
    def __init__(self, writer: _Writer, by: int) -> None:
        self.writer = writer
        self.by = by

    def __enter__(self) -> None:
        self.writer.push(self.by)

    def __exit__(self, *exc: object) -> None:
        self.writer.pop(self.by)


_Move: TypeAlias = Callable[[_Writer], None]
