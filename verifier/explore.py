"""Concrete exploration: cheap runs through the reference step function before any solver query.

A breadth-first search from the initial configuration(s) fires events through
:func:`railguard.spec.semantics.fire` — the function the runtime executes — for a few actors
(the principals a run already stores, and fresh ones holding each representative role set)
and a few param values per declared domain (its bounds, the literals the spec mentions and
their neighbours). Every configuration reached is a run, so one run shows every state it
passes through and every transition it fires: a chain of a thousand states needs one run, not
a thousand solver queries.

The search only ever *finds* things — a state reached, a transition fired, an assignment
leaving its domain, two transitions enabled together, an invariant broken — and each finding
is a concrete run built step by step from :func:`fire`'s own answers, so it replays by
construction (callers still replay the violations). What the search does not find is left
to the solver: it never concludes that something cannot happen. It is bounded by a number of
steps, a number of configurations kept per state and the check's deadline.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, overload

from railguard.spec import Spec, Transition
from railguard.spec.errors import EvaluationError
from railguard.spec.expr import Literal as LiteralNode
from railguard.spec.expr import Node as ExprNode
from railguard.spec.expr import children
from railguard.spec.semantics import SYSTEM, Fired, check_params, fire, permitted
from railguard.spec.types import Type, Value

from .budget import Deadline
from .counterexample import Counterexample, Step

__all__ = ["Evidence", "Run", "explore"]

#: Configurations kept (and explored further) per state.
PER_STATE = 6
#: Param combinations tried per event and actor.
MAX_COMBOS = 24
#: Candidate values tried per param or context variable.
MAX_CANDIDATES = 10
#: Literals beyond this magnitude are not used as candidate values.
MAX_MAGNITUDE = 10**18
#: How often (in steps) the deadline is looked at.
CLOCK_EVERY = 256


@dataclass(frozen=True, slots=True, eq=False)
class _Node:
    state: str
    values: Mapping[str, Value]
    seen: frozenset[str]
    #: Every principal the run has met, with the roles it acted with (``None``: never acted).
    principals: tuple[tuple[str, tuple[str, ...] | None], ...]
    parent: _Node | None
    step: Step | None
    depth: int
    context: Mapping[str, Value]


class Run(Sequence[Step]):
    """The steps from the initial configuration to a node, built only when first read (a
    report shows few of the thousands of runs a large spec's results carry)."""

    __slots__ = ("_node", "_steps")

    def __init__(self, node: _Node) -> None:
        self._node = node
        self._steps: tuple[Step, ...] | None = None

    def _all(self) -> tuple[Step, ...]:
        if self._steps is None:
            out: list[Step] = []
            node: _Node | None = self._node
            while node is not None and node.step is not None:
                out.append(node.step)
                node = node.parent
            self._steps = tuple(reversed(out))
        return self._steps

    def __len__(self) -> int:
        return self._node.depth

    @overload
    def __getitem__(self, index: int) -> Step: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Step]: ...
    def __getitem__(self, index: int | slice) -> Step | Sequence[Step]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Step]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._all() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return f"Run({self._all()!r})"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A finding: the run that shows it (``final`` is the step of a step property)."""

    counterexample: Counterexample


def _evidence(
    spec: Spec, node: _Node, base: Mapping[str, tuple[str, ...]], final: Step | None = None, extra: tuple[str, tuple[str, ...]] | None = None
) -> Evidence:
    principals = dict(base)
    principals.update((name, roles) for name, roles in node.principals if roles is not None)
    if extra is not None:
        principals[extra[0]] = extra[1]
    return Evidence(Counterexample(spec.name, node.context, Run(node), final, principals))


# ---------------------------------------------------------------------- candidate values


def _literals(spec: Spec) -> list[Any]:
    found: list[Any] = []

    def walk(node: ExprNode) -> None:
        if isinstance(node, LiteralNode):
            found.append(node.value)
        for child in children(node):
            walk(child)

    for t in spec.transitions:
        if t.guard is not None:
            walk(t.guard.tree)
        for _, expr in t.assign:
            walk(expr.tree)
    for inv in spec.invariants:
        if inv.expr is not None:
            walk(inv.expr.tree)
    return found


def _candidates(declared: Type, literals: list[Any]) -> list[Value]:
    """A few values of ``declared``'s domain worth trying: bounds, literals and neighbours."""
    kind = declared.kind
    out: list[Any] = []
    if kind == "bool":
        out = [False, True]
    elif kind == "enum":
        out = list(declared.values)
    elif kind in ("int", "decimal"):
        numbers = [n for n in literals if isinstance(n, int | Decimal) and not isinstance(n, bool)]
        raw: list[Any] = [declared.min, declared.max, 0, 1]
        unit: Any = 1
        if kind == "decimal" and declared.places is not None:
            unit = Decimal(1).scaleb(-min(declared.places, 30))
        for n in numbers:
            raw.extend((n, n + unit, n - unit))
        if declared.min is not None:
            raw.append(declared.min + unit)
        if declared.max is not None:
            raw.append(declared.max - unit)
        raw.append(-1)
        for number in raw:
            if number is None:
                continue
            try:
                if abs(number) > MAX_MAGNITUDE:
                    continue
                if kind == "int":
                    if isinstance(number, Decimal):
                        if number != number.to_integral_value():
                            continue
                        out.append(int(number))
                    else:
                        out.append(number)
                else:
                    out.append(Decimal(number))
            except (ArithmeticError, InvalidOperation, ValueError):
                continue
    elif kind == "str":
        out = ["", *(s for s in literals if isinstance(s, str) and len(s) <= 64), "x"]
    elif kind == "principal":
        out = [None]
    elif kind == "set" and declared.of is not None:
        items = _candidates(declared.of, literals)
        out = [frozenset(), frozenset(items), *(frozenset({i}) for i in items)]
    kept: list[Value] = []
    for value in out:
        if value not in kept and declared.contains(value):
            kept.append(value)
        if len(kept) >= MAX_CANDIDATES:
            break
    return kept


def _role_sets(spec: Spec) -> list[tuple[str, ...]]:
    """Role sets an actor may hold, one per set of permissions granted (exclusive roles honoured)."""
    names = [r.name for r in spec.roles]
    groups = [set(g) for g in spec.exclusive_roles]

    def allowed(chosen: Collection[str]) -> bool:
        return all(len(g & set(chosen)) <= 1 for g in groups)

    if len(names) <= 4:
        options: list[tuple[str, ...]] = [c for k in range(len(names), -1, -1) for c in itertools.combinations(names, k)]
    else:
        options = [tuple(names), *((n,) for n in names), ()]
    out: list[tuple[str, ...]] = []
    grants: set[frozenset[str]] = set()
    role_map = spec.role_map
    for option in options:
        if not allowed(option):
            continue
        granted = frozenset(p for r in option for p in role_map[r].permissions)
        if granted in grants:
            continue
        grants.add(granted)
        out.append(option)
    return out


#: Runs stop at values beyond these sizes: squaring a value each step would otherwise make
#: each step cost twice the last.
MAX_BITS = 4096
MAX_TEXT = 10_000


def _modest(values: Mapping[str, Value]) -> bool:
    for value in values.values():
        if isinstance(value, int) and value.bit_length() > MAX_BITS:
            return False
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return False
        if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) > MAX_BITS:
            return False
    return True


# ---------------------------------------------------------------------- the search


class _Search:
    def __init__(self, spec: Spec, want: set[tuple[str, ...]], steps: int, deadline: Deadline) -> None:
        self.spec = spec
        self.want = want
        self.found: dict[tuple[str, ...], Evidence] = {}
        self.steps_left = steps
        self.deadline = deadline
        self.literals = _literals(spec)
        self.role_sets = _role_sets(spec)
        #: Fresh actors are named by their role set (``user1`` always holds the first), so a
        #: run needs to remember only the people it met otherwise.
        self.base = {f"user{j + 1}": roles for j, roles in enumerate(self.role_sets)}
        self.monitored = frozenset(i.first for i in spec.invariants if i.kind == "precedes" and i.first)
        self.precedes = [(i.name, i.first or "", i.then or "") for i in spec.invariants if i.kind == "precedes"]
        self.state_invariants = [i for i in spec.invariants if i.kind != "precedes" and i.expr is not None]
        self.principal_vars = [v.name for v in spec.variables if v.type.kind == "principal"]
        self.events_from: dict[str, list[str]] = {}
        for t in spec.transitions:
            for source in t.sources:
                events = self.events_from.setdefault(source, [])
                if t.event not in events:
                    events.append(t.event)
        self.by_event_source: dict[tuple[str, str], list[Transition]] = {}
        for t in spec.transitions:
            for source in t.sources:
                self.by_event_source.setdefault((source, t.event), []).append(t)
        self.combos: dict[str, list[dict[str, Value]]] = {}
        self.principal_params: dict[str, list[str]] = {}
        for t in spec.transitions:
            if t.event in self.combos:
                continue
            pools = [_candidates(p.type, self.literals) for p in t.params if p.type.kind != "principal"]
            names = [p.name for p in t.params if p.type.kind != "principal"]
            self.combos[t.event] = [dict(zip(names, c, strict=True)) for c in itertools.islice(itertools.product(*pools), MAX_COMBOS)]
            self.principal_params[t.event] = [p.name for p in t.params if p.type.kind == "principal"]
        self.det: dict[str, list[tuple[tuple[str, ...], Transition, Transition]]] = {}
        for key in want:
            if key[0] == "det":
                t1 = spec.transitions[int(key[2]) - 1]
                t2 = spec.transitions[int(key[3]) - 1]
                self.det.setdefault(key[1], []).append((key, t1, t2))
        self.per_state: dict[str, int] = {}
        self.keys: set[tuple[Any, ...]] = set()
        self.queue: deque[_Node] = deque()

    # -------------------------------------------------------------- bookkeeping

    def wants(self, key: tuple[str, ...]) -> bool:
        return key in self.want and key not in self.found

    @property
    def done(self) -> bool:
        return len(self.found) >= len(self.want)

    def tick(self) -> bool:
        """Charge one step; false once the steps or the time are spent."""
        self.steps_left -= 1
        if self.steps_left < 0:
            return False
        return not (self.steps_left % CLOCK_EVERY == 0 and self.deadline.passed)

    def arrive(self, node: _Node) -> None:
        spec = self.spec
        if self.wants(("state", node.state)):
            self.found[("state", node.state)] = _evidence(spec, node, self.base)
        for inv in self.state_invariants:
            key = ("inv", inv.name)
            if key in self.want and key not in self.found and self._breaks(inv.kind, inv.expr, node):
                self.found[key] = _evidence(spec, node, self.base)
        config = (
            node.state,
            tuple(node.values[v.name] for v in spec.variables),
            node.seen,
            tuple(self._roles_of(node, node.values[p]) for p in self.principal_vars),
        )
        if config in self.keys:
            return
        count = self.per_state.get(node.state, 0)
        if count >= PER_STATE:
            return
        self.per_state[node.state] = count + 1
        self.keys.add(config)
        self.queue.append(node)

    def _breaks(self, kind: str, expr: Any, node: _Node) -> bool:
        try:
            value = bool(self.spec.compiled(expr)(node.values, {}, None, node.state))
        except EvaluationError:
            return True
        return value if kind == "never" else not value

    def _roles_of(self, node: _Node, name: Value) -> tuple[str, ...] | None:
        if isinstance(name, str) and name in self.base:
            return self.base[name]
        for known, roles in node.principals:
            if known == name:
                return roles
        return None

    # -------------------------------------------------------------- moves

    def initial(self) -> Iterator[_Node]:
        spec = self.spec
        base = spec.initial_values()
        context = [v for v in spec.variables if v.context]
        pools: list[list[Value]] = []
        people: set[str] = set()
        for number, variable in enumerate(context, 1):
            if variable.type.kind == "principal":
                people.add(f"ctx{number}")
                pools.append([None, f"ctx{number}"])
            else:
                pools.append(_candidates(variable.type, self.literals) or [variable.initial])
        for combo in itertools.islice(itertools.product(*pools), MAX_COMBOS):
            values = dict(base)
            chosen = dict(zip((v.name for v in context), combo, strict=True))
            values.update(chosen)
            principals: tuple[tuple[str, tuple[str, ...] | None], ...] = tuple((v, None) for v in combo if isinstance(v, str) and v in people)
            yield _Node(spec.initial_state.name, values, frozenset(), principals, None, None, 0, chosen)

    def actors(self, node: _Node) -> list[tuple[str, tuple[str, ...], bool]]:
        """(name, roles, fresh) of the actors tried from ``node``."""
        out: list[tuple[str, tuple[str, ...], bool]] = []
        stored: list[str] = []
        for p in self.principal_vars:
            name = node.values[p]
            if isinstance(name, str) and name != SYSTEM and name not in stored:
                stored.append(name)
        for name in stored:
            roles = self._roles_of(node, name)
            if roles is None:
                out.extend((name, r, True) for r in self.role_sets)
            else:
                out.append((name, roles, False))
        for name, roles in self.base.items():
            if name not in stored:
                out.append((name, roles, False))
            else:
                out.append((f"{name}.{node.depth}", roles, True))
        return out

    def param_options(self, event: str, node: _Node) -> list[dict[str, Value]]:
        principal_params = self.principal_params.get(event, [])
        combos = self.combos[event]
        if not principal_params:
            return combos
        names: list[Value] = [None, *self.base, *(n for n, _ in node.principals)]
        out = []
        for combo in combos:
            for choice in itertools.islice(itertools.product(names, repeat=len(principal_params)), 4):
                out.append({**combo, **dict(zip(principal_params, choice, strict=True))})
        return out[:MAX_COMBOS]

    def expand(self, node: _Node) -> bool:
        spec = self.spec
        state = node.state
        target = spec.error_target(state)
        if target is not None:
            if not self.tick():
                return False
            self.arrive(_Node(target, node.values, node.seen, node.principals, node, Step("error", "error", None, (), {}, target, node.values), node.depth + 1, node.context))
        declared = spec.state_map[state]
        if declared.timeout is not None and declared.timeout.event is not None:
            if not self.tick():
                return False
            self.step(node, declared.timeout.event, SYSTEM, (), {}, system=True, fresh=False)
        for event in self.events_from.get(state, ()):
            for actor, roles, fresh in self.actors(node):
                for params in self.param_options(event, node):
                    if not self.tick():
                        return False
                    self.step(node, event, actor, roles, params, system=False, fresh=fresh)
        for key, t1, t2 in self.det.get(state, ()):
            if key in self.found:
                continue
            for actor, roles, _ in self.actors(node):
                for params in self.param_options(t1.event, node):
                    if not self.tick():
                        return False
                    if self._overlap(node, t1, t2, actor, roles, params):
                        final = Step(t1.event, "transition", actor, roles, self._checked(t1.event, params), t1.target, {}, t1.index)
                        self.found[key] = _evidence(spec, node, self.base, final, (actor, roles))
                        break
                if key in self.found:
                    break
        return True

    def _checked(self, event: str, params: dict[str, Value]) -> dict[str, Value]:
        checked = check_params(self.spec, event, params)
        return checked if isinstance(checked, dict) else dict(params)

    def _holds(self, t: Transition, node: _Node, params: Mapping[str, Value], actor: str | None) -> bool | None:
        if t.guard is None:
            return True
        try:
            return bool(self.spec.compiled(t.guard)(node.values, params, actor, node.state))
        except EvaluationError:
            return None

    def _overlap(self, node: _Node, t1: Transition, t2: Transition, actor: str, roles: tuple[str, ...], params: dict[str, Value]) -> bool:
        checked = check_params(self.spec, t1.event, params)
        if not isinstance(checked, dict):
            return False
        held = frozenset(roles)
        if not (permitted(self.spec, t1, held) and permitted(self.spec, t2, held)):
            return False
        return self._holds(t1, node, checked, actor) is True and self._holds(t2, node, checked, actor) is True

    def step(self, node: _Node, event: str, actor: str, roles: tuple[str, ...], params: dict[str, Value], *, system: bool, fresh: bool) -> None:
        spec = self.spec
        held = frozenset(roles)
        outcome = fire(spec, node.state, node.values, event, actor, held, params, system=system)
        kind = "timeout" if system else "transition"
        if not isinstance(outcome, Fired):
            if outcome.code == "domain":
                self._escape(node, event, actor, roles, params, system=system, fresh=fresh)
            return
        t = outcome.transition
        step = Step(event, kind, actor, () if system else roles, dict(outcome.params), outcome.target, dict(outcome.values), t.index)
        principals = node.principals
        if fresh and not system:
            principals = (*(p for p in principals if p[0] != actor), (actor, roles))
        extra = None if system else (actor, roles)
        if self.wants(("fire", str(t.index))):
            self.found[("fire", str(t.index))] = _evidence(spec, node, self.base, step, extra)
        for name, first, then in self.precedes:
            if event == then and first not in node.seen and self.wants(("inv", name)):
                self.found[("inv", name)] = _evidence(spec, node, self.base, step, extra)
        if not _modest(outcome.values):
            return  # a value that keeps growing (`x = x * x`) is left to the solver
        seen = node.seen | {event} if event in self.monitored else node.seen
        for variable in self.principal_vars:
            value = outcome.values[variable]
            if isinstance(value, str) and value != SYSTEM and value not in self.base and all(value != p for p, _ in principals):
                principals = (*principals, (value, None))
        self.arrive(_Node(outcome.target, outcome.values, seen, principals, node, step, node.depth + 1, node.context))

    def _escape(self, node: _Node, event: str, actor: str, roles: tuple[str, ...], params: dict[str, Value], *, system: bool, fresh: bool) -> None:
        """Name the transition and variables of a step refused for leaving a domain."""
        spec = self.spec
        checked = check_params(spec, event, params)
        if not isinstance(checked, dict):
            return
        held = frozenset(roles)
        for t in self.by_event_source.get((node.state, event), ()):
            if not system and not permitted(spec, t, held):
                continue
            holds = self._holds(t, node, checked, actor)
            if holds is None:
                return
            if not holds:
                continue
            final = Step(event, "timeout" if system else "transition", actor, () if system else roles, dict(checked), t.target, {}, t.index)
            extra = None if system else (actor, roles)
            for name, expr in t.assign:
                try:
                    value = spec.compiled(expr)(node.values, checked, actor, node.state)
                except EvaluationError:
                    return
                declared = spec.variable_map[name].type
                if declared.kind == "decimal" and isinstance(value, int) and not isinstance(value, bool):
                    value = Decimal(value)
                if not declared.contains(value) and self.wants(("dom", str(t.index), name)):
                    self.found[("dom", str(t.index), name)] = _evidence(spec, node, self.base, final, extra)
            return

    def run(self) -> dict[tuple[str, ...], Evidence]:
        if self.deadline.passed:
            return self.found
        for node in self.initial():
            self.arrive(node)
        while self.queue and not self.done:
            if not self.expand(self.queue.popleft()):
                break
        return self.found


def explore(spec: Spec, want: Collection[tuple[str, ...]], steps: int, deadline: Deadline) -> dict[tuple[str, ...], Evidence]:
    """Look for the findings named by ``want`` (goal keys: ``("state", name)``,
    ``("fire", index)``, ``("dom", index, variable)``, ``("det", source, i, j)``,
    ``("inv", name)``) with at most ``steps`` concrete steps before ``deadline``; return the
    run found for each key that was found."""
    if steps <= 0 or not want:
        return {}
    return _Search(spec, set(want), steps, deadline).run()
