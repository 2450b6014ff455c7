"""A spec as a symbolic transition system in Z3.

The state of the system is the current state's code, every variable (a principal variable
as an identity plus one Bool per role, a set of enum values as one Bool per member), and one
monitor Bool per event that some ``precedes`` property waits for. A step's inputs are the
move taken, the actor's identity and roles, and the event's params.

Moves are: every (transition, source) pair; the system firing a timeout event; and the error
exit of every non-terminal state, which the verifier treats as possible at any time. The
condition of a transition move follows :mod:`railguard.spec.semantics` exactly: permission,
params in their domains, the first permitted candidate whose guard holds, assignments that
evaluate and land inside their domains.

Principals are data-independent: identities are only compared for equality, so an Int
identity plus role bits, constrained so that equal identities have equal roles, stands for
*every* assignment of roles to principals (``exclusive_roles`` restricts which role sets a
principal may hold).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

import z3

from railguard.spec import Parameter, Spec, Transition
from railguard.spec.expr import Literal as LiteralNode
from railguard.spec.expr import Node, children
from railguard.spec.types import Type

from .z3expr import (
    SYSTEM_ID,
    TRUE,
    UNSET,
    Codes,
    Sym,
    Unsupported,
    as_string,
    compile_z3,
    declared_bounds,
    literal_sym,
)

__all__ = ["Move", "System", "Unsupported"]

State = dict[str, Any]
Inputs = dict[str, Any]


@dataclass(frozen=True)
class Move:
    """One way to take a step: a transition from one of its sources, a timeout, or an error exit."""

    index: int
    kind: Literal["transition", "timeout", "error"]
    source: str
    target: str
    transition: Transition | None = None

    @property
    def event(self) -> str:
        return self.transition.event if self.transition is not None else "error"


def _sort(declared: Type) -> z3.SortRef:
    kind = declared.kind
    if kind in ("int", "enum", "principal"):
        return z3.IntSort()
    if kind == "decimal":
        return z3.RealSort()
    if kind == "bool":
        return z3.BoolSort()
    if kind == "str":
        return z3.StringSort()
    raise Unsupported(f"no scalar sort for {kind}")


def _set_keys(declared: Type) -> list[str]:
    assert declared.of is not None
    if declared.of.kind == "enum":
        return list(declared.of.values)
    if declared.of.kind == "bool":
        return ["True", "False"]
    raise Unsupported(f"sets of {declared.of.kind} have no Z3 encoding yet")


def _flat(parts: tuple[Any, ...]) -> list[z3.BoolRef]:
    if len(parts) == 1 and isinstance(parts[0], list | tuple):
        return list(parts[0])
    return list(parts)


def _nary(make: Any, parts: list[z3.BoolRef]) -> z3.BoolRef:
    ctx = parts[0].ctx
    args = (z3.Ast * len(parts))(*(p.as_ast() for p in parts))
    return z3.BoolRef(make(ctx.ref(), len(parts), args), ctx)


def conj(*parts: Any) -> z3.BoolRef:
    """``z3.And`` of Bool terms without its per-argument coercion (a tenth of the cost)."""
    flat = _flat(parts)
    if not flat:
        return z3.BoolVal(True)
    return flat[0] if len(flat) == 1 else _nary(z3.Z3_mk_and, flat)


def disj(*parts: Any) -> z3.BoolRef:
    """``z3.Or`` of Bool terms, like :func:`conj`."""
    flat = _flat(parts)
    if not flat:
        return z3.BoolVal(False)
    return flat[0] if len(flat) == 1 else _nary(z3.Z3_mk_or, flat)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in children(node):
        yield from _walk(child)


class System:
    """The symbolic transition system of ``spec``; raises :class:`Unsupported` if it has none."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        names: list[str] = [s.name for s in spec.states]
        for variable in spec.variables:
            names.extend(self._enum_values(variable.type))
        for transition in spec.transitions:
            for param in transition.params:
                names.extend(self._enum_values(param.type))
        for expr in self._expressions():
            names.extend(n.value for n in _walk(expr) if isinstance(n, LiteralNode) and isinstance(n.value, str))
        self.codes = Codes(names)
        self.roles = [r.name for r in spec.roles]
        self.principals = [v.name for v in spec.variables if v.type.kind == "principal"]
        self.monitors = sorted({inv.first for inv in spec.invariants if inv.kind == "precedes" and inv.first})
        self.moves: list[Move] = []
        for transition in spec.transitions:
            for source in transition.sources:
                self.moves.append(Move(len(self.moves), "transition", source, transition.target, transition))
        for state in spec.states:
            if state.timeout is not None and state.timeout.event is not None:
                for transition in spec.transitions_from(state.name):
                    if transition.event == state.timeout.event:
                        self.moves.append(Move(len(self.moves), "timeout", state.name, transition.target, transition))
        for state in spec.states:
            target = spec.error_target(state.name)
            if target is not None:
                self.moves.append(Move(len(self.moves), "error", state.name, target))
        #: The moves of each transition (by index), and the transitions from each state.
        self.moves_of: dict[int, list[Move]] = {}
        for move in self.moves:
            if move.transition is not None:
                self.moves_of.setdefault(move.transition.index, []).append(move)
        self.transitions_from: dict[str, list[Transition]] = {}
        for transition in spec.transitions:
            for source in transition.sources:
                self.transitions_from.setdefault(source, []).append(transition)
        # Terms over the same state and input vectors are built once: the goals, the
        # transition relation and the local checks all ask for the same guards and values.
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._tags: dict[int, tuple[dict[str, Any], str]] = {}
        self.event_params: dict[str, dict[str, Type]] = {}
        signatures: dict[str, tuple[Parameter, ...]] = {}
        for transition in spec.transitions:
            self.event_params.setdefault(transition.event, {p.name: p.type for p in transition.params})
            # The runtime checks params against the first transition on the event; a later one
            # whose guard reads other params has no faithful encoding here.
            first = signatures.setdefault(transition.event, transition.params)
            if transition.params != first:
                raise Unsupported(f"transitions on event `{transition.event}` declare different params")
        # Fail early on anything without an encoding.
        self.state("probe")

    @staticmethod
    def _enum_values(declared: Type) -> list[str]:
        if declared.kind == "enum":
            return list(declared.values)
        if declared.kind == "set" and declared.of is not None and declared.of.kind == "enum":
            return list(declared.of.values)
        return []

    def _expressions(self) -> Iterator[Node]:
        for transition in self.spec.transitions:
            if transition.guard is not None:
                yield transition.guard.tree
            for _, expr in transition.assign:
                yield expr.tree
        for invariant in self.spec.invariants:
            if invariant.expr is not None:
                yield invariant.expr.tree

    # ------------------------------------------------------------------ vectors

    def state(self, tag: str) -> State:
        """Fresh constants for one state of the system (named with ``tag``)."""
        s: State = {"@state": z3.Int(f"{tag}.@state")}
        for variable in self.spec.variables:
            declared = variable.type
            if declared.kind == "set":
                for key in _set_keys(declared):
                    s[f"{variable.name}#{key}"] = z3.Bool(f"{tag}.{variable.name}#{key}")
            else:
                s[variable.name] = z3.Const(f"{tag}.{variable.name}", _sort(declared))
            if declared.kind == "principal":
                for role in self.roles:
                    s[f"{variable.name}@{role}"] = z3.Bool(f"{tag}.{variable.name}@{role}")
        for event in self.monitors:
            s[f"@seen:{event}"] = z3.Bool(f"{tag}.@seen:{event}")
        return s

    def inputs(self, tag: str) -> Inputs:
        """Fresh constants for one step's inputs."""
        i: Inputs = {"@move": z3.Int(f"{tag}.@move"), "@actor": z3.Int(f"{tag}.@actor")}
        for role in self.roles:
            i[f"@actor@{role}"] = z3.Bool(f"{tag}.@actor@{role}")
        for event, params in self.event_params.items():
            for name, declared in params.items():
                if declared.kind == "set":
                    for key in _set_keys(declared):
                        i[f"@p:{event}:{name}#{key}"] = z3.Bool(f"{tag}.@p:{event}:{name}#{key}")
                else:
                    i[f"@p:{event}:{name}"] = z3.Const(f"{tag}.@p:{event}:{name}", _sort(declared))
        return i

    @staticmethod
    def _tag(vector: dict[str, Any]) -> str:
        """The name prefix of a vector's constants: vectors with one tag hold the same terms."""
        first = next(iter(vector.values()))
        return str(first.decl().name()).split(".", 1)[0]

    def _memo(self, key: tuple[Any, ...], vectors: tuple[dict[str, Any], ...], make: Any) -> Any:
        """``make()`` once per key and vector tags (a vector's tag is looked up once: the
        table keeps the vector alive, so its id is never reused)."""
        tags = []
        for vector in vectors:
            known = self._tags.get(id(vector))
            if known is None:
                known = self._tags[id(vector)] = (vector, self._tag(vector))
            tags.append(known[1])
        full = (*key, *tags)
        made = self._cache.get(full)
        if made is None:
            made = self._cache[full] = make()
        return made

    @staticmethod
    def flat(vector: dict[str, Any]) -> list[Any]:
        return [vector[k] for k in sorted(vector)]

    # ------------------------------------------------------------------ symbolic views

    def var_syms(self, s: State) -> dict[str, Sym]:
        out: dict[str, Sym] = {}
        for variable in self.spec.variables:
            declared = variable.type
            if declared.kind == "set":
                keys = _set_keys(declared)
                assert declared.of is not None
                out[variable.name] = Sym("set", {k: s[f"{variable.name}#{k}"] for k in keys}, TRUE, declared.of.kind, tuple(keys))
            else:
                out[variable.name] = Sym(declared.kind, s[variable.name], TRUE, bounds=declared_bounds(declared))
        return out

    def param_syms(self, event: str, i: Inputs) -> dict[str, Sym]:
        out: dict[str, Sym] = {}
        for name, declared in self.event_params.get(event, {}).items():
            if declared.kind == "set":
                keys = _set_keys(declared)
                assert declared.of is not None
                out[name] = Sym("set", {k: i[f"@p:{event}:{name}#{k}"] for k in keys}, TRUE, declared.of.kind, tuple(keys))
            else:
                out[name] = Sym(declared.kind, i[f"@p:{event}:{name}"], TRUE, bounds=declared_bounds(declared))
        return out

    def default_param_syms(self, transition: Transition) -> dict[str, Sym]:
        return {p.name: literal_sym(p.default, p.type, self.codes) for p in transition.params}

    def compile(self, node: Node, s: State, params: dict[str, Sym], actor: Sym | None) -> Sym:
        return compile_z3(node, self.var_syms(s), params, actor, s["@state"], self.codes)

    # ------------------------------------------------------------------ domains

    def value_in(self, declared: Type, sym: Sym) -> z3.BoolRef:
        """Whether a symbolic value lies in ``declared``'s domain."""
        kind = declared.kind
        term = sym.term
        parts: list[z3.BoolRef] = []
        if kind == "int":
            if declared.min is not None:
                parts.append(term >= int(declared.min))
            if declared.max is not None:
                parts.append(term <= int(declared.max))
        elif kind == "decimal":
            real = z3.ToReal(term) if sym.kind == "int" else term
            if declared.min is not None:
                parts.append(real >= z3.RealVal(Fraction(Decimal(declared.min))))
            if declared.max is not None:
                parts.append(real <= z3.RealVal(Fraction(Decimal(declared.max))))
            if declared.places is not None:
                parts.append(z3.IsInt(real * (10**declared.places)))
        elif kind == "enum":
            if sym.kind == "strlit":
                return z3.BoolVal(term in declared.values)
            parts.append(disj([term == self.codes[v] for v in declared.values]))
        elif kind == "str":
            text = as_string(sym, self.codes)
            if declared.max_length is not None:
                parts.append(z3.Length(text) <= declared.max_length)
        elif kind == "principal":
            parts.append(term >= SYSTEM_ID)
        elif kind == "set" and declared.max_size is not None:
            bits = list((sym.term if sym.kind == "set" else self._list_bits(sym, _set_keys(declared))).values())
            parts.append(z3.Sum([z3.If(b, 1, 0) for b in bits]) <= declared.max_size if bits else TRUE)
        return conj(parts) if parts else TRUE

    def domain(self, s: State) -> z3.BoolRef:
        """Every variable in its domain, the state code valid, principal role bits consistent."""
        syms = self.var_syms(s)
        parts = [disj([s["@state"] == self.codes[st.name] for st in self.spec.states])]
        parts.extend(self.value_in(v.type, syms[v.name]) for v in self.spec.variables)
        for p in self.principals:
            parts.append(z3.Implies(s[p] == UNSET, conj([z3.Not(s[f"{p}@{r}"]) for r in self.roles]) if self.roles else TRUE))
            parts.extend(self._exclusive([s[f"{p}@{r}"] for r in self.roles]))
        for a_index, a in enumerate(self.principals):
            for b in self.principals[a_index + 1 :]:
                same = conj([s[f"{a}@{r}"] == s[f"{b}@{r}"] for r in self.roles]) if self.roles else TRUE
                parts.append(z3.Implies(s[a] == s[b], same))
        return conj(parts)

    def _exclusive(self, bits: list[z3.BoolRef]) -> list[z3.BoolRef]:
        by_role = dict(zip(self.roles, bits, strict=True))
        out = []
        for group in self.spec.exclusive_roles:
            members = [by_role[r] for r in group if r in by_role]
            if len(members) > 1:
                out.append(z3.AtMost(*members, 1))
        return out

    def init(self, s: State) -> z3.BoolRef:
        """The initial states: the initial state, initial values; context variables free."""
        parts = [s["@state"] == self.codes[self.spec.initial_state.name], self.domain(s)]
        for variable in self.spec.variables:
            if variable.context:
                if variable.type.kind == "principal":
                    parts.append(s[variable.name] >= UNSET)
                continue
            if variable.type.kind == "principal":
                parts.append(s[variable.name] == UNSET)
                continue
            value = literal_sym(variable.initial, variable.type, self.codes)
            if variable.type.kind == "set":
                parts.extend(s[f"{variable.name}#{k}"] == bit for k, bit in value.term.items())
            else:
                parts.append(s[variable.name] == self._coerce(variable.type, value))
        parts.extend(z3.Not(s[f"@seen:{e}"]) for e in self.monitors)
        return conj(parts)

    def _coerce(self, declared: Type, sym: Sym) -> Any:
        if declared.kind == "decimal" and sym.kind == "int":
            return z3.ToReal(sym.term)
        if declared.kind == "enum" and sym.kind == "strlit":
            return z3.IntVal(self.codes[sym.term])
        if declared.kind == "str" and sym.kind in ("strlit", "enum"):
            return as_string(sym, self.codes)
        if declared.kind == "principal" and sym.kind == "none":
            return z3.IntVal(UNSET)
        return sym.term

    # ------------------------------------------------------------------ moves

    def actor(self, i: Inputs, move: Move) -> Sym:
        if move.kind == "timeout":
            return Sym("principal", z3.IntVal(SYSTEM_ID), TRUE)
        return Sym("principal", i["@actor"], TRUE)

    def permission(self, transition: Transition, i: Inputs) -> z3.BoolRef:
        if transition.permission == "public":
            return TRUE
        return self._memo(("permission", transition.permission), (i,), lambda: self._permission(transition, i))

    def _permission(self, transition: Transition, i: Inputs) -> z3.BoolRef:
        granting = [i[f"@actor@{r.name}"] for r in self.spec.roles if transition.permission in r.permissions]
        return disj(granting) if granting else z3.BoolVal(False)

    def actor_valid(self, s: State, i: Inputs) -> z3.BoolRef:
        """The actor is a person (not unset, not the system) whose roles are consistent."""
        return self._memo(("actor",), (s, i), lambda: self._actor_valid(s, i))

    def _actor_valid(self, s: State, i: Inputs) -> z3.BoolRef:
        parts = [i["@actor"] >= 1]
        for p in self.principals:
            same = conj([i[f"@actor@{r}"] == s[f"{p}@{r}"] for r in self.roles]) if self.roles else TRUE
            parts.append(z3.Implies(i["@actor"] == s[p], same))
        parts.extend(self._exclusive([i[f"@actor@{r}"] for r in self.roles]))
        return conj(parts)

    def params_valid(self, event: str, i: Inputs) -> z3.BoolRef:
        return self._memo(("params", event), (i,), lambda: self._params_valid(event, i))

    def _params_valid(self, event: str, i: Inputs) -> z3.BoolRef:
        syms = self.param_syms(event, i)
        parts = [self.value_in(declared, syms[name]) for name, declared in self.event_params.get(event, {}).items()]
        return conj(parts) if parts else TRUE

    def _params(self, move: Move, i: Inputs) -> dict[str, Sym]:
        assert move.transition is not None
        if move.kind == "timeout":
            return self.default_param_syms(move.transition)
        return self.param_syms(move.transition.event, i)

    def guard(self, transition: Transition, s: State, params: dict[str, Sym], actor: Sym) -> tuple[z3.BoolRef, z3.BoolRef]:
        """(holds, defined) of the transition's guard."""
        if transition.guard is None:
            return TRUE, TRUE
        sym = self.compile(transition.guard.tree, s, params, actor)
        return sym.term, sym.ok

    def _move_guard(self, transition: Transition, move: Move, s: State, i: Inputs) -> tuple[z3.BoolRef, z3.BoolRef]:
        return self._memo(  # type: ignore[no-any-return]
            ("guard", transition.index, move.kind), (s, i), lambda: self.guard(transition, s, self._params(move, i), self.actor(i, move))
        )

    def selected(self, move: Move, s: State, i: Inputs) -> z3.BoolRef:
        """The move's transition is the one the runtime picks, and its assignments evaluate.

        Domain constraints on the new values are *not* included (see :meth:`new_values_ok`)."""
        return self._memo(("selected", move.index), (s, i), lambda: self._selected(move, s, i))

    def _selected(self, move: Move, s: State, i: Inputs) -> z3.BoolRef:
        transition = move.transition
        assert transition is not None
        parts: list[z3.BoolRef] = [s["@state"] == self.codes[move.source]]
        if move.kind == "transition":
            parts.extend([self.actor_valid(s, i), self.params_valid(transition.event, i), self.permission(transition, i)])
        for earlier in self.transitions_from.get(move.source, ()):
            if earlier.index >= transition.index:
                break
            if earlier.event != transition.event:
                continue
            holds, defined = self._move_guard(earlier, move, s, i)
            passed_over = conj(defined, z3.Not(holds))
            if move.kind == "transition":
                parts.append(z3.Implies(self.permission(earlier, i), passed_over))
            else:
                parts.append(passed_over)
        holds, defined = self._move_guard(transition, move, s, i)
        parts.extend([defined, holds])
        for sym in self.new_values(move, s, i).values():
            parts.append(sym.ok)
        return conj(parts)

    def new_values(self, move: Move, s: State, i: Inputs) -> dict[str, Sym]:
        """The symbolic values the move's assignments produce (assigned variables only)."""
        if move.transition is None:
            return {}
        transition = move.transition

        def make() -> dict[str, Sym]:
            actor = self.actor(i, move)
            params = self._params(move, i)
            return {name: self.compile(expr.tree, s, params, actor) for name, expr in transition.assign}

        return self._memo(("new", transition.index, move.kind), (s, i), make)  # type: ignore[no-any-return]

    def new_values_ok(self, move: Move, s: State, i: Inputs, only: str | None = None) -> z3.BoolRef:
        """The assigned values lie in their domains (one variable when ``only`` is given)."""
        parts = []
        for name, sym in self.new_values(move, s, i).items():
            if only is not None and name != only:
                continue
            parts.append(self.value_in(self.spec.variable_map[name].type, sym))
        return conj(parts) if parts else TRUE

    def condition(self, move: Move, s: State, i: Inputs) -> z3.BoolRef:
        """The move can be taken from ``s`` with inputs ``i``."""
        if move.kind == "error":
            return s["@state"] == self.codes[move.source]
        return conj(self.selected(move, s, i), self.new_values_ok(move, s, i))

    def effect(self, move: Move, s: State, i: Inputs, s2: State) -> z3.BoolRef:
        """``s2`` is the state after taking the move from ``s`` (its condition assumed)."""
        parts = [s2["@state"] == self.codes[move.target]]
        new = self.new_values(move, s, i)
        actor = self.actor(i, move) if move.transition is not None else None
        for variable in self.spec.variables:
            name = variable.name
            declared = variable.type
            if name not in new:
                if declared.kind == "set":
                    parts.extend(s2[f"{name}#{k}"] == s[f"{name}#{k}"] for k in _set_keys(declared))
                else:
                    parts.append(s2[name] == s[name])
                if declared.kind == "principal":
                    parts.extend(s2[f"{name}@{r}"] == s[f"{name}@{r}"] for r in self.roles)
                continue
            sym = new[name]
            if declared.kind == "set":
                keys = _set_keys(declared)
                bits = sym.term if sym.kind == "set" else self._list_bits(sym, keys)
                parts.extend(s2[f"{name}#{k}"] == bits.get(k, z3.BoolVal(False)) for k in keys)
                continue
            value = self._coerce(declared, sym)
            parts.append(s2[name] == value)
            if declared.kind == "principal":
                for role in self.roles:
                    parts.append(s2[f"{name}@{role}"] == self._role_of(value, role, s, i, actor))
        for event in self.monitors:
            seen = s[f"@seen:{event}"]
            parts.append(s2[f"@seen:{event}"] == (TRUE if move.event == event and move.kind != "error" else seen))
        return conj(parts)

    def _list_bits(self, sym: Sym, keys: list[str]) -> dict[str, z3.BoolRef]:
        from .z3expr import sym_eq

        out = {}
        for key in keys:
            probe = Sym("strlit", key, TRUE) if key not in ("True", "False") else Sym("bool", z3.BoolVal(key == "True"), TRUE)
            out[key] = disj([sym_eq(item, probe, self.codes) for item in sym.term]) if sym.term else z3.BoolVal(False)
        return out

    def _role_of(self, identity: Any, role: str, s: State, i: Inputs, actor: Sym | None) -> z3.BoolRef:
        """The role bit of whoever ``identity`` is: the actor or a stored principal."""
        result: z3.BoolRef = z3.BoolVal(False)
        for p in reversed(self.principals):
            result = z3.If(identity == s[p], s[f"{p}@{role}"], result)
        if actor is not None and not z3.eq(actor.term, z3.IntVal(SYSTEM_ID)):
            result = z3.If(identity == actor.term, i[f"@actor@{role}"], result)
        return z3.If(disj(identity == UNSET, identity == SYSTEM_ID), z3.BoolVal(False), result)

    def step(self, s: State, i: Inputs, s2: State) -> z3.BoolRef:
        """The transition relation: some move is taken from ``s`` to ``s2``."""
        options = [
            conj(i["@move"] == move.index, self.condition(move, s, i), self.effect(move, s, i, s2))
            for move in self.moves
        ]
        return conj(disj(options) if options else z3.BoolVal(False), self.domain(s2))

    def fires(self, transition: Transition, s: State, i: Inputs, *, check_domain: bool = True) -> z3.BoolRef:
        """Some move of ``transition`` (ordinary or timeout) is taken from ``s``."""
        options = []
        for move in self.moves_of.get(transition.index, ()):
            if move.transition is transition:
                cond = self.condition(move, s, i) if check_domain else self.selected(move, s, i)
                options.append(conj(i["@move"] == move.index, cond))
        return disj(options) if options else z3.BoolVal(False)

    def in_state(self, state: str, s: State) -> z3.BoolRef:
        return s["@state"] == self.codes[state]

    def invariant(self, node: Node, s: State) -> Sym:
        return self.compile(node, s, {}, None)

