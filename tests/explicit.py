"""An explicit-state model checker for finite specs, written for the tests and independent of
:mod:`railguard.verifier`: it only uses the spec model, the compiled Python evaluator and the
reference step semantics (:func:`railguard.spec.semantics.fire`).

A configuration is the current state, the variable values, the roles of every principal a
variable stores, and the set of ``precedes`` events already seen. Principal identities are
only ever compared for equality (DESIGN §3), so configurations are kept canonical: stored
identities are renamed ``p0, p1, ...`` in order of the variables that hold them, and the actor
of a step is either a stored principal (same identity, same roles) or one fresh principal
with any role set that ``exclusive_roles`` allows. Role sets that grant the same
permissions behave the same, so one role set per permission set is tried.

Steps: every event with a transition from the current state, for every actor and every
combination of param values inside their declared domains; the state's timeout event fired
by the system; and the error exit of every non-terminal state. A breadth-first search runs
to the fixed point and records what the symbolic verifier decides:

- the reachable states;
- the transitions that can fire: selected by the semantics with assignments that evaluate,
  whether or not the new values lie in their domains;
- domain escapes: a selected transition whose assignment leaves its variable's domain;
- nondeterminism: two transitions on one event from one state, both permitted and both
  guards true for the same actor and params;
- violated invariants: ``always``/``never`` on reachable configurations (an expression that
  cannot be evaluated violates both), and ``precedes`` when ``then`` fires before ``first``.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from railguard.spec import EvaluationError, Spec, Transition, Type
from railguard.spec.semantics import SYSTEM, Fired, Refusal, check_params, fire, permitted
from railguard.spec.types import Value

__all__ = [
    "Config",
    "Exploration",
    "Monitor",
    "Selection",
    "TooLarge",
    "canonical",
    "explore",
    "remember",
    "select",
]

#: Stop exploring (and fail loudly) past this many configurations.
MAX_CONFIGS = 200_000
#: A param or context domain larger than this is not enumerated.
MAX_DOMAIN = 2_000


class TooLarge(Exception):
    """The spec is outside what the explicit search enumerates (infinite or huge domains)."""


@dataclass(frozen=True)
class Config:
    """One configuration: ``values`` in the order of ``spec.variables``; principal values are
    canonical ids ``p0, p1, ...`` (or ``None``, or ``"system"``), and ``roles[n]`` is the role
    set of ``p{n}``; ``seen`` holds the monitored events that already happened."""

    state: str
    values: tuple[Value, ...]
    roles: tuple[frozenset[str], ...]
    seen: frozenset[str]

    def value_map(self, spec: Spec) -> dict[str, Value]:
        return {v.name: value for v, value in zip(spec.variables, self.values, strict=True)}

    def role_map(self) -> dict[str, frozenset[str]]:
        return {f"p{n}": roles for n, roles in enumerate(self.roles)}


def canonical(
    spec: Spec,
    state: str,
    values: Mapping[str, Value],
    roles_of: Mapping[str, frozenset[str]],
    seen: frozenset[str],
) -> Config:
    """The canonical configuration of (``state``, ``values``) where ``roles_of`` gives the roles
    of each stored identity; ``seen`` is cut down to the monitored events."""
    rename: dict[str, str] = {}
    roles: list[frozenset[str]] = []
    out: list[Value] = []
    for variable in spec.variables:
        value = values[variable.name]
        if variable.type.kind == "principal" and value is not None and value != SYSTEM:
            assert isinstance(value, str)
            if value not in rename:
                rename[value] = f"p{len(roles)}"
                roles.append(_representative(spec, roles_of.get(value, frozenset())))
            value = rename[value]
        out.append(value)
    return Config(state, tuple(out), tuple(roles), seen & _monitored(spec))


def _monitored(spec: Spec) -> frozenset[str]:
    return frozenset(i.first for i in spec.invariants if i.kind == "precedes" and i.first)


# --------------------------------------------------------------------------- domains


def domain(declared: Type) -> list[Value]:
    """Every value of a finite, non-principal declared type."""
    kind = declared.kind
    if kind == "bool":
        return [False, True]
    if kind == "enum":
        return list(declared.values)
    if kind == "int":
        if declared.min is None or declared.max is None:
            raise TooLarge("an unbounded int")
        low, high = int(declared.min), int(declared.max)
        if high - low >= MAX_DOMAIN:
            raise TooLarge("an int range too wide to enumerate")
        return list(range(low, high + 1))
    if kind == "decimal":
        if declared.min is None or declared.max is None or declared.places is None:
            raise TooLarge("an unbounded decimal")
        step = Decimal(1).scaleb(-declared.places)
        low, high = Decimal(declared.min), Decimal(declared.max)
        count = int((high - low) / step)
        if count >= MAX_DOMAIN:
            raise TooLarge("a decimal range too wide to enumerate")
        first = (low / step).to_integral_value(rounding="ROUND_CEILING") * step
        out: list[Value] = []
        value = first
        while value <= high:
            out.append(value)
            value += step
        return out
    if kind == "set":
        if declared.of is None:
            raise TooLarge("a set without an element type")
        items = domain(declared.of)
        largest = len(items) if declared.max_size is None else min(declared.max_size, len(items))
        return [
            frozenset(chosen)  # type: ignore[misc]
            for size in range(largest + 1)
            for chosen in itertools.combinations(items, size)
        ]
    raise TooLarge(f"values of kind {kind} are not enumerated")


def _grants(spec: Spec, roles: frozenset[str]) -> frozenset[str]:
    return frozenset(p for r in roles if r in spec.role_map for p in spec.role_map[r].permissions)


_REPRESENTATIVES: dict[int, tuple[Spec, dict[frozenset[str], frozenset[str]]]] = {}


def _representatives(spec: Spec) -> dict[frozenset[str], frozenset[str]]:
    """Granted permissions -> the first role set (smallest, in declaration order) that grants
    exactly them, among the role sets ``exclusive_roles`` allows."""
    cached = _REPRESENTATIVES.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    names = [r.name for r in spec.roles]
    chosen: dict[frozenset[str], frozenset[str]] = {}
    for size in range(len(names) + 1):
        for combo in itertools.combinations(names, size):
            roles = frozenset(combo)
            if any(len(roles & set(group)) > 1 for group in spec.exclusive_roles):
                continue
            chosen.setdefault(_grants(spec, roles), roles)
    _REPRESENTATIVES[id(spec)] = (spec, chosen)
    return chosen


def _representative(spec: Spec, roles: frozenset[str]) -> frozenset[str]:
    """The role set that stands for ``roles``: permissions are all roles decide."""
    return _representatives(spec)[_grants(spec, roles)]


def _role_sets(spec: Spec) -> list[frozenset[str]]:
    """One role set per distinct set of granted permissions."""
    return list(_representatives(spec).values())


# --------------------------------------------------------------------------- one step


@dataclass(frozen=True)
class Selection:
    """What one step does, worked out independently of :func:`fire` and then checked against it.

    ``chosen`` is the transition the semantics selects (``None`` if the step is refused before
    that); ``evaluated`` is true when its assignments evaluate; ``escapes`` names the assigned
    variables whose new value leaves the domain; ``overlaps`` lists pairs of transitions
    (by index) both permitted with both guards true; ``outcome`` is :func:`fire`'s answer."""

    chosen: Transition | None
    evaluated: bool
    escapes: tuple[str, ...]
    overlaps: tuple[tuple[int, int], ...]
    outcome: Fired | Refusal


def _holds(spec: Spec, t: Transition, values: Mapping[str, Value], params: Mapping[str, Value], actor: str | None, state: str) -> bool | None:
    """The guard's value, or ``None`` if it cannot be evaluated."""
    if t.guard is None:
        return True
    try:
        return bool(spec.compiled(t.guard)(values, params, actor, state))
    except EvaluationError:
        return None


def _coerce(declared: Type, value: Value) -> Value:
    if declared.kind == "decimal" and isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if declared.kind == "set" and isinstance(value, frozenset) and declared.of is not None and declared.of.kind == "decimal":
        return frozenset(Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
    return value


def select(
    spec: Spec,
    state: str,
    values: Mapping[str, Value],
    event: str,
    actor: str | None,
    roles: frozenset[str],
    params: Mapping[str, Value],
    *,
    system: bool = False,
) -> Selection:
    """Work out one step by hand, then fire it through the reference semantics and insist
    that the two agree."""
    candidates = [t for t in spec.transitions if t.event == event and state in t.sources]
    allowed = candidates if system else [t for t in candidates if permitted(spec, t, roles)]
    outcome = fire(spec, state, values, event, actor, roles, dict(params), system=system)
    checked = check_params(spec, event, params)
    chosen: Transition | None = None
    overlaps: list[tuple[int, int]] = []
    if allowed and isinstance(checked, dict):
        truth = {t.index: _holds(spec, t, values, checked, actor, state) for t in allowed}
        if not system:
            overlaps = [
                (a.index, b.index)
                for a, b in itertools.combinations(allowed, 2)
                if truth[a.index] is True and truth[b.index] is True
            ]
        for t in allowed:
            if truth[t.index] is None:
                break
            if truth[t.index]:
                chosen = t
                break
    evaluated = False
    escapes: list[str] = []
    after: dict[str, Value] = dict(values)
    if chosen is not None:
        try:
            for name, expr in chosen.assign:
                after[name] = spec.compiled(expr)(values, checked, actor, state)
            evaluated = True
        except EvaluationError:
            evaluated = False
        if evaluated:
            for name, _ in chosen.assign:
                declared = spec.variable_map[name].type
                after[name] = _coerce(declared, after[name])
                if not declared.contains(after[name]):
                    escapes.append(name)
    # The hand-worked answer and the reference semantics must agree.
    if chosen is not None and evaluated and not escapes:
        assert isinstance(outcome, Fired), (event, state, outcome)
        assert outcome.transition is chosen
        assert outcome.target == chosen.target
        assert dict(outcome.values) == after
    else:
        assert isinstance(outcome, Refusal), (event, state, outcome)
        expected = "domain" if escapes else "assign-error" if chosen is not None else None
        if expected is not None:
            assert outcome.code == expected, (outcome, expected)
        else:
            assert outcome.code in ("not-enabled", "unknown-event", "permission-denied", "bad-params", "guard-false", "guard-error"), outcome
    return Selection(chosen, evaluated, tuple(escapes), tuple(overlaps), outcome)


# --------------------------------------------------------------------------- search


@dataclass
class Exploration:
    """Everything the search found; transitions are named by index, invariants by name."""

    spec: Spec
    configs: set[Config] = field(default_factory=set)
    initial: set[Config] = field(default_factory=set)
    states: set[str] = field(default_factory=set)
    fired: set[int] = field(default_factory=set)
    escapes: set[tuple[int, str]] = field(default_factory=set)
    overlaps: set[tuple[str, int, int]] = field(default_factory=set)
    violated: set[str] = field(default_factory=set)
    steps: int = 0
    #: The length of the shortest run that violates each violated invariant.
    violated_at: dict[str, int] = field(default_factory=dict)
    #: The length of the longest shortest run to a reachable configuration.
    depth: int = 0

    def reachable(self, state: str) -> bool:
        return state in self.states


def _initial_configs(spec: Spec) -> Iterator[Config]:
    base = spec.initial_values()
    context = [v for v in spec.variables if v.context]
    options: list[list[Any]] = []
    for variable in context:
        if variable.type.kind == "principal":
            options.append([None, *range(len(context))])
        else:
            options.append(domain(variable.type))
    role_sets = _role_sets(spec)
    for combo in itertools.product(*options):
        values = dict(base)
        identities: set[int] = set()
        for variable, choice in zip(context, combo, strict=True):
            if variable.type.kind == "principal" and choice is not None:
                identities.add(choice)
                values[variable.name] = f"c{choice}"
            else:
                values[variable.name] = choice
        for assignment in itertools.product(role_sets, repeat=len(identities)):
            roles_of = {f"c{n}": roles for n, roles in zip(sorted(identities), assignment, strict=True)}
            yield canonical(spec, spec.initial_state.name, values, roles_of, frozenset())


def _signature(spec: Spec, event: str) -> list[tuple[str, list[Value]]]:
    """The event's params (the first transition on the event declares them) and their domains."""
    first = next(t for t in spec.transitions if t.event == event)
    out = []
    for param in first.params:
        if param.type.kind == "principal":
            raise TooLarge("principal params are not enumerated")
        out.append((param.name, domain(param.type)))
    return out


def _violations(spec: Spec, config: Config) -> Iterator[str]:
    values = config.value_map(spec)
    for invariant in spec.invariants:
        if invariant.kind == "precedes" or invariant.expr is None:
            continue
        try:
            value = bool(spec.compiled(invariant.expr)(values, {}, None, config.state))
        except EvaluationError:
            yield invariant.name
            continue
        if value != (invariant.kind == "always"):
            yield invariant.name


Monitor = Callable[[frozenset[str], Transition], frozenset[str]]


def remember(seen: frozenset[str], transition: Transition) -> frozenset[str]:
    """The ``precedes`` monitor: every event that fired is remembered for the rest of the run."""
    return seen | {transition.event}


def explore(spec: Spec, max_configs: int = MAX_CONFIGS, *, monitor: Monitor = remember) -> Exploration:
    """Search every configuration of ``spec`` reachable from its initial ones (breadth first,
    so ``violated_at`` holds shortest run lengths). ``monitor`` updates the set of events seen
    after a step; tests replace it with a broken one to show the cross-check notices."""
    found = Exploration(spec)
    level: dict[Config, int] = {}
    role_sets = _role_sets(spec)
    events = {t.event for t in spec.transitions}
    signatures = {event: _signature(spec, event) for event in events}
    param_combos = {
        event: [dict(zip([n for n, _ in sig], combo, strict=True)) for combo in itertools.product(*(d for _, d in sig))]
        for event, sig in signatures.items()
    }
    precedes = [(i.name, i.first, i.then) for i in spec.invariants if i.kind == "precedes"]
    queue: deque[Config] = deque()
    for config in _initial_configs(spec):
        if config not in found.configs:
            found.configs.add(config)
            found.initial.add(config)
            level[config] = 0
            queue.append(config)

    def arrive(config: Config, depth: int) -> None:
        if config not in found.configs:
            if len(found.configs) >= max_configs:
                raise TooLarge(f"more than {max_configs} configurations")
            found.configs.add(config)
            level[config] = depth
            found.depth = max(found.depth, depth)
            queue.append(config)

    def violate(name: str, depth: int) -> None:
        found.violated.add(name)
        found.violated_at.setdefault(name, depth)

    while queue:
        config = queue.popleft()
        here = level[config]
        state = config.state
        found.states.add(state)
        for name in _violations(spec, config):
            violate(name, here)
        values = config.value_map(spec)
        stored = config.role_map()
        # the error exit
        target = spec.error_target(state)
        if target is not None:
            found.steps += 1
            arrive(Config(target, config.values, config.roles, config.seen), here + 1)
        # every step an actor (or the system, for a timeout) can take
        declared = spec.state_map[state]
        moves: list[tuple[str, str, frozenset[str], dict[str, Value], bool]] = []
        if declared.timeout is not None and declared.timeout.event is not None:
            moves.append((declared.timeout.event, SYSTEM, frozenset(), {}, True))
        fresh = f"p{len(config.roles)}"
        actors = [*stored.items(), *((fresh, roles) for roles in role_sets)]
        for event in sorted({t.event for t in spec.transitions_from(state)}):
            for actor, roles in actors:
                for params in param_combos[event]:
                    moves.append((event, actor, roles, params, False))
        for event, actor, roles, params, system in moves:
            found.steps += 1
            picked = select(spec, state, values, event, actor, roles, params, system=system)
            for a, b in picked.overlaps:
                found.overlaps.add((state, a, b))
            if picked.chosen is None or not picked.evaluated:
                continue
            # RG402 counts a transition as able to fire only when the step happens, with the
            # domain check of its assignments (a step that always escapes never fires).
            if isinstance(picked.outcome, Fired):
                found.fired.add(picked.chosen.index)
            for name in picked.escapes:
                found.escapes.add((picked.chosen.index, name))
            outcome = picked.outcome
            if not isinstance(outcome, Fired):
                continue
            for name, first, then in precedes:
                if outcome.transition.event == then and first not in config.seen:
                    violate(name, here + 1)
            roles_of = dict(stored)
            if not system:
                roles_of[actor] = roles
            seen = monitor(config.seen, outcome.transition)
            arrive(canonical(spec, outcome.target, outcome.values, roles_of, seen), here + 1)
    return found
