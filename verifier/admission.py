"""Plan admission: a model's whole plan is admitted only if it maps onto a path of the
verified machine, under the caller's permissions; otherwise it is rejected with a reason a
model can act on.

Every step is decided by the one reference step function,
:func:`railguard.spec.semantics.fire` — the function the runtime executes — from the
configuration the steps before it reached: event, permission, params (types, domains,
places, required/optional), guard, assignments and their domains. The gate asks the step
function's fast half first, its per-(state, event) :func:`~railguard.spec.semantics.decider`
(kept on the gate), which takes the steps that happen without building a ``Fired``; every
other step goes to :func:`~railguard.spec.semantics.fire`, so a rejection carries its refusal. Invariants are then
checked on the configuration after the step, unless the spec's certificate proves the
invariant for every reachable configuration (the obligation is then discharged by the
certificate, which is sound: an instance only ever rests in reachable configurations).

A param left open (:data:`~railguard.verifier.plans.OPEN`) is checked symbolically with Z3
over its declared domain: from the first open step on, the plan is admitted only if every
obligation holds for *every* value of every open param (one path for all of them); otherwise
it is rejected with concrete values that break it. A question the solver cannot decide
rejects the plan: unknown is never an admission.

A rejection names the step (0-based ``step``; messages count from 1), a reason code (see
:data:`REASON_CODES`), one sentence, the events this principal may fire at the last good
point with their param schemas, and the shortest admissible completion from there to a
success terminal (or the required goal), found by breadth-first search.
"""

from __future__ import annotations

import difflib
import itertools
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, Literal

import z3

from railguard.spec.codec import decode_value, encode_value, encode_values
from railguard.spec.errors import EvaluationError
from railguard.spec.expr import Literal as LiteralNode
from railguard.spec.expr import Node, children
from railguard.spec.model import Invariant, Parameter, Spec, Transition
from railguard.spec.semantics import (
    SYSTEM,
    Decider,
    Fired,
    Refusal,
    check_params,
    decider,
    fire,
    permitted,
)
from railguard.spec.types import Type, Value

from .errors import VerifierError
from .plans import OPEN, Plan, PlanStep, event_signature, params_schema
from .z3expr import (
    TRUE,
    Codes,
    Sym,
    Unsupported,
    compile_z3,
    declared_bounds,
    declared_scale,
    domain_constraint,
    literal_sym,
)

__all__ = [
    "MAX_STEPS",
    "REASON_CODES",
    "Admission",
    "AdmissionError",
    "Admitted",
    "Configuration",
    "EventOption",
    "Gate",
    "Obligation",
    "Principal",
    "ReasonCode",
    "Rejected",
    "allowed_events",
    "new_instance",
    "shortest_completion",
]

#: Plans with more steps than this are rejected as ``too-large`` (a :class:`Gate` may lower it).
MAX_STEPS: Final = 1_000
#: The completion search stops after this many configurations, or this many steps.
MAX_SEARCH: Final = 20_000
MAX_COMPLETION: Final = 16
#: Z3's deterministic budget per symbolic question.
SYMBOLIC_RLIMIT: Final = 5_000_000
MAX_MESSAGE: Final = 400
#: Param values that need no screening before the step function sees them.
_PLAIN: Final = frozenset({int, str, bool, Decimal})

ReasonCode = Literal[
    "wrong-workflow",
    "unknown-event",
    "not-enabled",
    "permission-denied",
    "bad-params",
    "guard-false",
    "domain",
    "invariant",
    "incomplete",
    "too-large",
]
REASON_CODES: tuple[ReasonCode, ...] = (
    "wrong-workflow",
    "unknown-event",
    "not-enabled",
    "permission-denied",
    "bad-params",
    "guard-false",
    "domain",
    "invariant",
    "incomplete",
    "too-large",
)
# The reference semantics separates a guard or assignment that cannot be evaluated; for a
# planner they mean the same as a false guard and a value outside the domain.
_REFUSAL_TO_REASON: Mapping[str, ReasonCode] = {
    "unknown-event": "unknown-event",
    "not-enabled": "not-enabled",
    "permission-denied": "permission-denied",
    "bad-params": "bad-params",
    "guard-false": "guard-false",
    "guard-error": "guard-false",
    "assign-error": "domain",
    "domain": "domain",
}


class AdmissionError(VerifierError):
    """Admission cannot run: the caller's inputs (context, start state, goal) are unusable."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: an id and the roles the directory gives it."""

    id: str
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Configuration:
    """Where a plan starts: a state, the variable values, the events already fired (for
    ``precedes`` invariants) and whether the instance still takes steps (``active``)."""

    state: str
    values: Mapping[str, Value]
    seen: frozenset[str] = frozenset()
    instance: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class EventOption:
    """An event the principal may fire at some point, with the JSON Schema of its params."""

    event: str
    params: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class Obligation:
    """One thing admission checked for a step, and what discharged it (``semantics``: the
    reference step function on concrete values; ``z3``: proved for every open value;
    ``certificate``: an invariant the certificate proves)."""

    step: int
    kind: str
    text: str
    by: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "kind": self.kind, "text": self.text, "by": self.by}


@dataclass(frozen=True, slots=True)
class Admitted:
    """An admitted plan: the state after each step (``path[0]`` is the start), the variable
    values at the end (``None`` when open params make them symbolic; :meth:`to_json` encodes
    them), the transition each step takes,
    and the certificate's fingerprint (``None`` when running unverified was opted into)."""

    plan: Plan
    path: tuple[str, ...]
    transitions: tuple[int, ...]
    values: Mapping[str, Any] | None
    certificate: str | None
    obligations: tuple[Obligation, ...] = ()
    symbolic: bool = False
    spec: Spec | None = field(default=None, compare=False, repr=False)

    admitted = True

    @property
    def end(self) -> str:
        return self.path[-1]

    invariants_by: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def discharged(self) -> tuple[Obligation, ...]:
        """Every obligation of every step (permission, params, guard, domains, invariants)."""
        if self.obligations or self.spec is None:
            return self.obligations
        return tuple(_concrete_obligations(self.spec, self.plan, self.transitions, self.invariants_by))

    def to_json(self) -> dict[str, Any]:
        return {
            "admitted": True,
            "workflow": self.plan.workflow,
            "path": list(self.path),
            "transitions": list(self.transitions),
            "end": self.end,
            "values": None if self.values is None else encode_values(self.values),
            "symbolic": self.symbolic,
            "certificate": self.certificate,
            "obligations": [o.to_json() for o in self.discharged()],
        }


_new = object.__new__
_SET_ADMITTED = tuple(Admitted.__dict__[name].__set__ for name in ("plan", "path", "transitions", "values", "certificate", "obligations", "symbolic", "spec", "invariants_by"))


def _admitted(plan: Plan, path: tuple[str, ...], transitions: tuple[int, ...], values: Mapping[str, Any], certificate: str | None, spec: Spec, by: Mapping[str, str]) -> Admitted:
    """An admitted concrete plan (no obligations listed: :meth:`Admitted.discharged` derives
    them), made through its slots: the same frozen value as ``Admitted(...)`` at a third of
    the cost of the dataclass ``__init__``, once per admitted plan."""
    made: Admitted = _new(Admitted)
    set_plan, set_path, set_transitions, set_values, set_certificate, set_obligations, set_symbolic, set_spec, set_by = _SET_ADMITTED
    set_plan(made, plan)
    set_path(made, path)
    set_transitions(made, transitions)
    set_values(made, values)
    set_certificate(made, certificate)
    set_obligations(made, ())
    set_symbolic(made, False)
    set_spec(made, spec)
    set_by(made, by)
    return made


@dataclass(frozen=True, slots=True)
class Rejected:
    """A rejected plan, structured for repair.

    ``step`` is the 0-based index of the first step that cannot be admitted (the number of
    steps for ``incomplete``); ``state`` is the state at the last good point (before that
    step); ``allowed`` the events this principal may fire there; ``completion`` the shortest
    admissible steps from there to a success terminal or the goal (``None`` if there is none
    within the search bounds); ``breaking`` the open values that break a symbolic step, as
    ``(step, param, value)``.
    """

    code: ReasonCode
    step: int
    message: str
    state: str
    event: str | None = None
    allowed: tuple[EventOption, ...] = ()
    completion: tuple[PlanStep, ...] | None = None
    breaking: tuple[tuple[int, str, Any], ...] = ()

    admitted = False

    def to_json(self) -> dict[str, Any]:
        return {
            "admitted": False,
            "code": self.code,
            "step": self.step,
            "message": self.message,
            "state": self.state,
            "event": self.event,
            "allowed": [o.to_json() for o in self.allowed],
            "completion": None if self.completion is None else [s.to_json() for s in self.completion],
            "breaking": [{"step": s, "param": p, "value": v} for s, p, v in self.breaking],
        }


Admission = Admitted | Rejected


# ---------------------------------------------------------------------- helpers


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name(text: str) -> str:
    """An id from a plan as a message shows it: short, control characters escaped."""
    shown = text if len(text) <= 48 else text[:48] + "…"
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in shown)
    shown = shown.replace("`", "'")
    return f"`{shown}`"


def new_instance(spec: Spec, context: Mapping[str, Any] | None = None) -> Configuration:
    """The configuration of a new instance started with ``context`` (JSON values of the
    ``context: true`` variables), checked as the runtime checks it."""
    values = spec.initial_values()
    given = dict(context or {})
    for variable in spec.variables:
        if not variable.context:
            continue
        if variable.name in given:
            raw = given.pop(variable.name)
            try:
                value = decode_value(variable.type, raw)
            except (ArithmeticError, TypeError, ValueError):
                value = raw
            if not variable.type.contains(value):
                raise AdmissionError(f"context variable `{variable.name}` must be {variable.type.describe()}, not {_clip(repr(raw), 80)}")
            values[variable.name] = value
        elif variable.initial is None and variable.type.kind != "principal":
            raise AdmissionError(f"context variable `{variable.name}` must be supplied when an instance starts")
    if given:
        raise AdmissionError(f"{_name(sorted(given)[0])} is not a context variable of `{spec.name}`")
    return Configuration(spec.initial_state.name, values)


def allowed_events(spec: Spec, state: str, roles: frozenset[str]) -> tuple[EventOption, ...]:
    """The events a principal holding ``roles`` may fire in ``state`` (a transition from it
    that their roles permit), with the JSON Schema of each event's params. Guards are not
    evaluated: they depend on the params."""
    seen: dict[str, EventOption] = {}
    for transition in spec.transitions_from(state):
        if transition.event not in seen and permitted(spec, transition, roles):
            seen[transition.event] = EventOption(transition.event, params_schema(event_signature(spec, transition.event)))
    return tuple(seen.values())


def _monitored(spec: Spec) -> frozenset[str]:
    return frozenset(inv.first for inv in spec.invariants if inv.kind == "precedes" and inv.first)


def _violated(spec: Spec, invariants: Sequence[Invariant], state: str, values: Mapping[str, Value], seen: frozenset[str], event: str) -> Invariant | None:
    for inv in invariants:
        if inv.kind == "precedes":
            if event == inv.then and inv.first not in seen:
                return inv
            continue
        assert inv.expr is not None
        try:
            holds = bool(spec.compiled(inv.expr)(values, {}, None, state))
        except EvaluationError:
            return inv
        if holds != (inv.kind == "always"):
            return inv
    return None


def _screen(spec: Spec, event: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Params ready for the step function: ``null`` for an optional param means its default
    (OpenAI strict mode sends it); a value that is not JSON scalar data (or a list of it) is
    refused here, before it can reach any type's membership test."""
    signature = {p.name: p for p in event_signature(spec, event)}
    out: dict[str, Any] = {}
    for name, value in params.items():
        declared = signature.get(name)
        if value is None and declared is not None and not declared.required:
            continue
        if isinstance(value, list):
            if not all(item is None or isinstance(item, bool | int | float | str | Decimal) for item in value):
                return out, f"param {_name(name)} of `{event}` must be a list of plain values"
        elif isinstance(value, dict):
            return out, f"param {_name(name)} of `{event}` must be a value, not an object"
        out[name] = value
    return out, None


# ---------------------------------------------------------------------- the gate


class Gate:
    """Admits plans for one spec. Construct once (the certificate is checked here) and call
    :meth:`admit` per plan.

    ``certificate`` must admit ``spec`` (see
    :func:`railguard.verifier.certificate.verify_certificate`); without one, ``allow_unverified``
    must give a reason, and every invariant is then checked on every step.
    """

    def __init__(
        self,
        spec: Spec,
        certificate: Any = None,
        *,
        allow_unverified: str | None = None,
        trusted_keys: Any = None,
        max_steps: int = MAX_STEPS,
        rlimit: int = SYMBOLIC_RLIMIT,
    ) -> None:
        self.spec = spec
        self.max_steps = max_steps
        self.rlimit = rlimit
        if certificate is None:
            if allow_unverified is None or not allow_unverified.strip():
                raise AdmissionError(f"spec `{spec.name}` has no certificate: give one, or opt out with a written reason")
            self.certificate: str | None = None
            proved: set[str] = set()
        else:
            from .certificate import verify_certificate
            from .keys import TrustSet

            trusted = trusted_keys if isinstance(trusted_keys, TrustSet) else TrustSet.of(trusted_keys or ())
            ok, reason = verify_certificate(spec, certificate, trusted)
            if not ok:
                raise AdmissionError(f"the certificate does not admit spec `{spec.name}`: {reason}")
            self.certificate = str(certificate.fingerprint)
            from .results import INVARIANT

            proved = {r.subject for r in certificate.results if r.rule == INVARIANT.id and r.outcome == "proved" and r.bound is None and r.waived is None}
        #: Invariants checked on every step (those the certificate does not prove).
        self.checked: tuple[Invariant, ...] = tuple(inv for inv in spec.invariants if inv.name not in proved)
        self.discharged_by = {inv.name: "certificate" if inv.name in proved else "semantics" for inv in spec.invariants}
        self.monitored = _monitored(spec)
        #: Terminal states: like the runtime, a finished instance takes no step, known or not.
        self.terminals = frozenset(s.name for s in spec.states if s.terminal is not None)
        self._track = bool(self.monitored) and any(inv.kind == "precedes" for inv in self.checked)
        self._deciders: dict[tuple[str, str], Decider] = {}
        self._events = frozenset(spec.events)

    def admit(self, plan: Plan, principal: Principal, start: Configuration, *, goal: str | None = None) -> Admission:
        """Admit or reject ``plan`` for ``principal`` from ``start`` (see the module docstring).
        ``goal``, if given, is a state the plan must end in (``incomplete`` otherwise)."""
        spec = self.spec
        if goal is not None and goal not in spec.state_map:
            raise AdmissionError(f"the goal {_name(goal)} is not a state of `{spec.name}`")
        if start.state not in spec.state_map:
            raise AdmissionError(f"the start state {_name(start.state)} is not a state of `{spec.name}`")
        if principal.id == SYSTEM or not principal.id:
            return self._reject(plan, principal, start, 0, "permission-denied", f"{_name(principal.id)} is not an authenticated principal; a plan runs as the person who asked", goal, search=False)
        if plan.workflow != spec.name:
            return self._reject(plan, principal, start, 0, "wrong-workflow", f"this plan is for workflow {_name(plan.workflow)}, but the instance runs `{spec.name}`: plan with the events of `{spec.name}`", goal)
        if plan.instance is not None and start.instance is not None and plan.instance != start.instance:
            return self._reject(plan, principal, start, 0, "wrong-workflow", f"this plan is for instance {_name(plan.instance)}, not `{start.instance}`: plan for the instance you were given", goal)
        steps = plan.steps
        if len(steps) > self.max_steps:
            return self._reject(plan, principal, start, self.max_steps, "too-large", f"the plan has {len(steps)} steps and at most {self.max_steps} are admitted at once: send a shorter plan", goal)
        if not start.active:
            return self._reject(plan, principal, start, 0, "not-enabled", f"instance `{start.instance}` takes no more steps (it rests in `{start.state}`)", goal) if steps else Admitted(plan, (start.state,), (), start.values, self.certificate, spec=spec, invariants_by=self.discharged_by)
        state, values, seen = start.state, start.values, start.seen
        path = [state]
        taken: list[int] = []
        actor, roles = principal.id, principal.roles
        checked, track, monitored, terminals = self.checked, self._track, self.monitored, self.terminals
        deciders = self._deciders
        add_state, add_transition = path.append, taken.append
        for index, step in enumerate(steps):
            if state in terminals:
                return self._reject(plan, principal, Configuration(state, values, seen, start.instance), index, "not-enabled", f"step {index + 1}: the plan has already ended in `{state}`, where the instance takes no more steps: remove the steps after it", goal, event=step.event)
            event, params = step.event, step.params
            # The step function's fast half (its decider) takes the steps that happen, params
            # of plain JSON values included; every other step goes the reference way: open
            # params to the symbolic run, params screened, then the step function itself,
            # which refuses the step (or, rarely, takes it). A decider takes only values the
            # screening lets through unchanged, so the order makes no difference.
            try:
                decide = deciders[(state, event)]
            except (KeyError, TypeError):
                decide = self._decider(state, event)
            decided = decide(values, actor, roles, params, False)
            if decided is None:
                if params and any(type(value) not in _PLAIN for value in params.values()):
                    if any(value is OPEN for value in params.values()):
                        return self._symbolic(plan, principal, Configuration(state, values, seen, start.instance), index, path, taken, goal)
                    params, problem = _screen(spec, event, params)
                    if problem is not None:
                        return self._reject(plan, principal, Configuration(state, values, seen, start.instance), index, "bad-params", f"step {index + 1}: {problem}", goal)
                outcome = fire(spec, state, values, event, actor, roles, params)
                if type(outcome) is Refusal:
                    return self._refused(plan, principal, Configuration(state, values, seen, start.instance), index, outcome, goal)
                assert isinstance(outcome, Fired)
                transition, after = outcome.transition, outcome.values
            else:
                transition, _, after = decided
            target = transition.target
            if checked:
                broken = _violated(spec, checked, target, after, seen, event)
                if broken is not None:
                    return self._reject(plan, principal, Configuration(state, values, seen, start.instance), index, "invariant", f"step {index + 1} (`{event}`) would break invariant `{broken.name}`", goal)
            if track and event in monitored:
                seen = seen | {event}
            state, values = target, after
            add_state(state)
            add_transition(transition.index)
        if goal is not None and state != goal:
            return self._reject(plan, principal, Configuration(state, values, seen, start.instance), len(steps), "incomplete", f"the plan stops in `{state}`, short of `{goal}`: add the steps of the completion", goal)
        if steps and values is start.values:
            values = dict(values)  # deciders hand back the values they did not change: not the caller's mapping
        return _admitted(plan, tuple(path), tuple(taken), values, self.certificate, spec, self.discharged_by)

    def _decider(self, state: str, event: Any) -> Decider:
        """The step function's decider for ``event`` in ``state``, kept on the gate when both
        are the spec's (so the cache holds at most one per state and event, whatever names
        plans send)."""
        made = decider(self.spec, state, event)
        if isinstance(event, str) and event in self._events:
            self._deciders[(state, event)] = made
        return made

    # ------------------------------------------------------------------ rejections

    def _refused(self, plan: Plan, principal: Principal, at: Configuration, index: int, refusal: Refusal, goal: str | None) -> Rejected:
        spec = self.spec
        code = _REFUSAL_TO_REASON[refusal.code]
        event = plan.steps[index].event
        where = f"step {index + 1}"
        if code == "unknown-event":
            close = difflib.get_close_matches(event, spec.events, n=1) if len(event) <= 64 else []
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            message = f"{where}: {_name(event)} is not an event of `{spec.name}`{hint}"
        elif code == "not-enabled":
            message = f"{where}: `{event}` cannot happen in state `{at.state}`; fire one of the allowed events first"
        elif code == "permission-denied":
            message = f"{where}: you may not fire `{event}` in state `{at.state}` ({_clip(refusal.message, 200)}); someone holding that permission must"
        else:
            message = f"{where}: {refusal.message}"
        return self._reject(plan, principal, at, index, code, message, goal, event=event)

    def _reject(self, plan: Plan, principal: Principal, at: Configuration, index: int, code: ReasonCode, message: str, goal: str | None, *, event: str | None = None, breaking: tuple[tuple[int, str, Any], ...] = (), search: bool = True) -> Rejected:
        hints = plan.steps[index].params if index < len(plan.steps) and code != "too-large" else {}
        completion = None
        if search and code != "wrong-workflow" and at.active:
            completion = shortest_completion(self.spec, at, principal, goal=goal, invariants=self.checked, hints=hints)
        allowed = allowed_events(self.spec, at.state, principal.roles) if at.active else ()
        shown = None if event is None else _clip(event, 200)
        return Rejected(code, index, _clip(message), at.state, shown, allowed, completion, breaking)

    # ------------------------------------------------------------------ symbolic

    def _symbolic(self, plan: Plan, principal: Principal, at: Configuration, first: int, path: list[str], taken: list[int], goal: str | None) -> Admission:
        run = _SymbolicRun(self, plan, principal, at)
        outcome = run.run(first)
        # Once a value is open the configuration is symbolic: a completion is searched only
        # from the last concrete point, the start of the first open step.
        if isinstance(outcome, _Failure):
            concrete = outcome.step == first
            config = at if concrete else Configuration(run.state, {}, run.seen, at.instance)
            return self._reject(plan, principal, config, outcome.step, outcome.code, outcome.message, goal, event=plan.steps[outcome.step].event, breaking=outcome.breaking, search=concrete)
        states, indexes = outcome
        full_path = (*path, *states)
        if goal is not None and full_path[-1] != goal:
            end = Configuration(full_path[-1], {}, run.seen, at.instance)
            return self._reject(plan, principal, end, len(plan.steps), "incomplete", f"the plan stops in `{full_path[-1]}`, short of `{goal}`: add the steps that reach it", goal, search=False)
        obligations = tuple(_concrete_obligations(self.spec, plan, (*taken, *indexes), self.discharged_by, stop=first)) + tuple(run.obligations)
        return Admitted(plan, full_path, (*taken, *indexes), None, self.certificate, obligations, True, spec=self.spec, invariants_by=self.discharged_by)


# ---------------------------------------------------------------------- obligations


def _concrete_obligations(spec: Spec, plan: Plan, transitions: Sequence[int], by: Mapping[str, str], stop: int | None = None) -> Iterator[Obligation]:
    for index, number in enumerate(transitions):
        if stop is not None and index >= stop:
            return
        t = spec.transitions[number - 1]
        yield Obligation(index, "permission", f"`{t.permission}` permits `{t.event}`", "semantics")
        if t.params:
            yield Obligation(index, "params", f"params of `{t.event}` match its signature", "semantics")
        if t.guard is not None:
            yield Obligation(index, "guard", f"`{t.guard.text}` holds", "semantics")
        for name, _ in t.assign:
            yield Obligation(index, "domain", f"`{name}` stays in {spec.variable_map[name].type.describe()}", "semantics")
        for inv in spec.invariants:
            yield Obligation(index, "invariant", f"`{inv.name}` holds after the step", by.get(inv.name, "semantics"))


# ---------------------------------------------------------------------- completion


def _constants(spec: Spec) -> list[Any]:
    found: list[Any] = []

    def walk(node: Node) -> None:
        if isinstance(node, LiteralNode) and node.value is not None and not isinstance(node.value, bool):
            found.append(node.value)
        for child in children(node):
            walk(child)

    for t in spec.transitions:
        if t.guard is not None:
            walk(t.guard.tree)
        for _, expr in t.assign:
            walk(expr.tree)
    return found


def _known(spec: Spec, values: Mapping[str, Value], kind: str) -> list[Any]:
    """Values of ``kind`` the instance already holds (a variable's value, a set's members)."""
    found: list[Any] = []
    for variable in spec.variables:
        value = values.get(variable.name)
        declared = variable.type
        if declared.kind == kind and value is not None:
            found.append(value)
        elif declared.kind == "set" and declared.of is not None and declared.of.kind == kind and isinstance(value, frozenset):
            found.extend(sorted(value, key=str))
    return found


def _candidates(spec: Spec, param: Parameter, actor: str, hint: Any, values: Mapping[str, Value]) -> list[Any]:
    """Values worth trying for ``param`` in a completion: the planner's own value first, the
    values the instance holds, then the domain's ends and the spec's constants near them (all
    of a small domain)."""
    declared = param.type
    out: list[Any] = []
    if hint is not None and hint is not OPEN and not isinstance(hint, dict):
        out.append(hint)
    if not param.required:
        out.append(_OMIT)
    kind = declared.kind
    out += [encode_value(v) for v in _known(spec, values, kind) if declared.contains(v)]
    if kind == "bool":
        out += [False, True]
    elif kind == "enum":
        out += list(declared.values)
    elif kind in ("int", "decimal"):
        low, high = declared.min, declared.max
        numbers: list[Any] = []
        if low is not None and high is not None and kind == "int" and int(high) - int(low) < 16:
            numbers = list(range(int(low), int(high) + 1))
        else:
            for c in _constants(spec):
                if isinstance(c, int | Decimal):
                    numbers += [c, c - 1, c + 1]
            numbers += [x for x in (low, high, 1, 0) if x is not None]
        for n in numbers:
            value = Decimal(n) if kind == "decimal" else n
            if kind == "int" and not isinstance(value, int):
                continue
            if declared.contains(value):
                out.append(str(value) if kind == "decimal" else value)
    elif kind == "str":
        out += [c for c in _constants(spec) if isinstance(c, str) and declared.contains(c)] + [""]
    elif kind == "principal":
        out.append(actor)
    else:
        out.append([])
    unique: list[Any] = []
    for value in out:
        if not any(type(value) is type(u) and value == u for u in unique):
            unique.append(value)
    return unique[:10]


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


_OMIT = _Omit()


def shortest_completion(
    spec: Spec,
    start: Configuration,
    principal: Principal,
    *,
    goal: str | None = None,
    invariants: Sequence[Invariant] | None = None,
    hints: Mapping[str, Any] | None = None,
    max_configs: int = MAX_SEARCH,
    max_depth: int = MAX_COMPLETION,
) -> tuple[PlanStep, ...] | None:
    """The shortest steps this principal may take from ``start`` to ``goal`` (or to any
    success terminal), each admissible by the reference step function and ``invariants``;
    ``()`` if ``start`` is already there; ``None`` if none is found within the bounds.

    Breadth-first over configurations; param values are drawn from :func:`_candidates`
    (the planner's own values in ``hints`` first), so the search is exact over those values.
    """
    def done(state: str) -> bool:
        return state == goal if goal is not None else spec.state_map[state].terminal == "success"

    if done(start.state):
        return ()
    checked = tuple(spec.invariants if invariants is None else invariants)
    monitored = _monitored(spec)
    hints = hints or {}
    options: dict[str, list[dict[str, Any]]] = {}
    for event in spec.events:
        signature = event_signature(spec, event)
        per_param = [[(p.name, v) for v in _candidates(spec, p, principal.id, hints.get(p.name), start.values)] for p in signature]
        combos = []
        for combo in itertools.islice(itertools.product(*per_param), 64):
            combos.append({name: value for name, value in combo if value is not _OMIT})
        options[event] = combos
    Key = tuple[str, tuple[tuple[str, str], ...], frozenset[str]]

    def key(state: str, values: Mapping[str, Value], seen: frozenset[str]) -> Key:
        return (state, tuple(sorted((k, repr(encode_value(v))) for k, v in values.items())), seen)

    parents: dict[Key, tuple[Key | None, PlanStep | None]] = {key(start.state, start.values, start.seen): (None, None)}
    queue: deque[tuple[str, Mapping[str, Value], frozenset[str], int]] = deque([(start.state, start.values, start.seen, 0)])
    while queue:
        state, values, seen, depth = queue.popleft()
        if depth >= max_depth:
            continue
        here = key(state, values, seen)
        for option in allowed_events(spec, state, principal.roles):
            for params in options[option.event]:
                outcome = fire(spec, state, values, option.event, principal.id, principal.roles, params)
                if not isinstance(outcome, Fired):
                    continue
                if checked and _violated(spec, checked, outcome.target, outcome.values, seen, option.event) is not None:
                    continue
                after_seen = seen | {option.event} if option.event in monitored else seen
                next_key = key(outcome.target, outcome.values, after_seen)
                if next_key in parents:
                    continue
                step = PlanStep(option.event, encode_values(params))
                parents[next_key] = (here, step)
                if done(outcome.target):
                    steps: list[PlanStep] = []
                    cursor: Key | None = next_key
                    while cursor is not None:
                        parent, made = parents[cursor]
                        if made is not None:
                            steps.append(made)
                        cursor = parent
                    return tuple(reversed(steps))
                if len(parents) >= max_configs:
                    return None
                if spec.state_map[outcome.target].terminal is None:
                    queue.append((outcome.target, outcome.values, after_seen, depth + 1))
    return None


# ---------------------------------------------------------------------- symbolic run


@dataclass(frozen=True, slots=True)
class _Failure:
    step: int
    code: ReasonCode
    message: str
    breaking: tuple[tuple[int, str, Any], ...] = ()


def _string_literals(spec: Spec) -> list[str]:
    return [c for c in _constants(spec) if isinstance(c, str)]


class _SymbolicRun:
    """Symbolic execution of a plan from its first open step: variables become Z3 terms over
    the open params, the control path must be the same for every value of them."""

    def __init__(self, gate: Gate, plan: Plan, principal: Principal, start: Configuration) -> None:
        self.gate = gate
        self.spec = spec = gate.spec
        self.plan = plan
        self.principal = principal
        names: list[str] = [s.name for s in spec.states] + _string_literals(spec)
        for variable in spec.variables:
            names += _enum_names(variable.type)
        for t in spec.transitions:
            for p in t.params:
                names += _enum_names(p.type)
        self.codes = Codes(names)
        self.identities: dict[str, int] = {}
        self.solver = z3.Solver()
        self.solver.set("rlimit", gate.rlimit)
        self.opens: list[tuple[int, str, Type, Any]] = []  # (step, param, type, z3 constant)
        self.state = start.state
        self.seen = start.seen
        self.env: dict[str, Sym] = {v.name: self._value(v.type, start.values[v.name]) for v in spec.variables}
        self.actor = Sym("principal", z3.IntVal(self._identity(principal.id)), TRUE)
        self.obligations: list[Obligation] = []

    def _identity(self, principal: str | None) -> int:
        if principal is None:
            return 0
        if principal not in self.identities:
            self.identities[principal] = len(self.identities) + 1
        return self.identities[principal]

    def _value(self, declared: Type, value: Value) -> Sym:
        if declared.kind == "principal":
            return Sym("principal", z3.IntVal(self._identity(value if isinstance(value, str) else None)), TRUE)
        if declared.kind == "set" and declared.of is not None and declared.of.kind == "principal":
            assert isinstance(value, frozenset)
            return Sym("list", [Sym("principal", z3.IntVal(self._identity(str(v))), TRUE) for v in sorted(value, key=str)], TRUE)
        return literal_sym(value, declared, self.codes)

    def _fresh(self, step: int, name: str, declared: Type) -> Sym:
        tag = f"s{step}.{name}"
        kind = declared.kind
        if kind in ("int", "enum", "principal"):
            const: Any = z3.Int(tag)
        elif kind == "decimal":
            const = z3.Int(tag) if declared.places is not None else z3.Real(tag)
        elif kind == "bool":
            const = z3.Bool(tag)
        elif kind == "str":
            const = z3.String(tag)
        elif kind == "set" and declared.of is not None and declared.of.kind in ("enum", "bool"):
            keys = list(declared.of.values) if declared.of.kind == "enum" else ["True", "False"]
            bits = {k: z3.Bool(f"{tag}#{k}") for k in keys}
            sym = Sym("set", bits, TRUE, declared.of.kind, tuple(keys))
            self.solver.add(domain_constraint(declared, sym, self.codes))
            self.opens.append((step, name, declared, bits))
            return sym
        else:
            raise Unsupported(f"an open param of type {declared.describe()} has no Z3 encoding")
        sym = Sym(kind, const, TRUE, bounds=declared_bounds(declared), scale=declared_scale(declared))
        self.solver.add(domain_constraint(declared, sym, self.codes))
        if kind == "principal":
            self.solver.add(const >= 1)
        self.opens.append((step, name, declared, const))
        return sym

    def _decide(self, claim: z3.BoolRef) -> tuple[str, z3.ModelRef | None]:
        """``valid`` if ``claim`` holds for every open value, ``broken`` with a model of a
        value that falsifies it, or ``unknown``."""
        self.solver.push()
        self.solver.add(z3.Not(claim))
        try:
            answer = self.solver.check()
        except z3.Z3Exception:
            answer = z3.unknown
        model = self.solver.model() if answer == z3.sat else None
        self.solver.pop()
        if answer == z3.unsat:
            return "valid", None
        if answer == z3.sat:
            return "broken", model
        return "unknown", None

    def _possible(self, claim: z3.BoolRef) -> str:
        self.solver.push()
        self.solver.add(claim)
        try:
            answer = self.solver.check()
        except z3.Z3Exception:
            answer = z3.unknown
        self.solver.pop()
        return "sat" if answer == z3.sat else "unsat" if answer == z3.unsat else "unknown"

    def _breaking(self, model: z3.ModelRef | None) -> tuple[tuple[int, str, Any], ...]:
        if model is None:
            return ()
        out = []
        names = {v: k for k, v in self.identities.items()}
        for step, name, declared, const in self.opens:
            if isinstance(const, dict):
                value: Any = sorted(k for k, bit in const.items() if z3.is_true(model.eval(bit, model_completion=True)))
            else:
                raw = model.eval(const, model_completion=True)
                value = _concrete(declared, raw, self.codes, names)
            out.append((step, name, value))
        return tuple(out)

    def _fail(self, step: int, code: ReasonCode, message: str, model: z3.ModelRef | None = None, verdict: str = "broken") -> _Failure:
        if verdict == "unknown":
            return _Failure(step, code, _clip(f"step {step + 1}: {message} could not be decided for every value of the open params, so the plan is not admitted; give concrete values"))
        breaking = self._breaking(model)
        shown = ", ".join(f"`{p}` = {json_text(v)} (step {s + 1})" for s, p, v in breaking)
        return _Failure(step, code, _clip(f"step {step + 1}: {message} fails for {shown}" if shown else f"step {step + 1}: {message}"), breaking)

    def run(self, first: int) -> _Failure | tuple[list[str], list[int]]:
        try:
            return self._run(first)
        except Unsupported as exc:
            return _Failure(first, "bad-params", _clip(f"step {first + 1}: the open params cannot be checked symbolically ({exc}); give concrete values"))

    def _run(self, first: int) -> _Failure | tuple[list[str], list[int]]:
        spec, principal = self.spec, self.principal
        states: list[str] = []
        indexes: list[int] = []
        for index in range(first, len(self.plan.steps)):
            step = self.plan.steps[index]
            event = step.event
            if self.state in self.gate.terminals:
                return _Failure(index, "not-enabled", f"step {index + 1}: the plan has already ended in `{self.state}`, where the instance takes no more steps: remove the steps after it")
            candidates = [t for t in spec.transitions_from(self.state) if t.event == event]
            if not candidates:
                if event not in spec.events:
                    return _Failure(index, "unknown-event", f"step {index + 1}: {_name(event)} is not an event of `{spec.name}`")
                return _Failure(index, "not-enabled", f"step {index + 1}: `{event}` cannot happen in state `{self.state}`; fire one of the allowed events first")
            allowed = [t for t in candidates if permitted(spec, t, principal.roles)]
            if not allowed:
                needed = ", ".join(f"`{t.permission}`" for t in candidates)
                return _Failure(index, "permission-denied", f"step {index + 1}: you may not fire `{event}` in state `{self.state}` (it needs {needed}); someone holding that permission must")
            concrete, problem = _screen(spec, event, {k: v for k, v in step.params.items() if v is not OPEN})
            if problem is not None:
                return _Failure(index, "bad-params", f"step {index + 1}: {problem}")
            signature = {p.name: p for p in event_signature(spec, event)}
            opened = [name for name, value in step.params.items() if value is OPEN]
            for name in opened:
                if name not in signature:
                    known = ", ".join(f"`{p}`" for p in signature) or "none"
                    return _Failure(index, "bad-params", f"step {index + 1}: event `{event}` has no param {_name(name)} (params: {known})")
            probe = {**concrete, **{name: _some_value(signature[name].type, principal.id) for name in opened}}
            checked = check_params(spec, event, probe)
            if isinstance(checked, Refusal):
                return _Failure(index, "bad-params", f"step {index + 1}: {checked.message}")
            params: dict[str, Sym] = {}
            for name, param in signature.items():
                if name in opened:
                    params[name] = self._fresh(index, name, param.type)
                else:
                    params[name] = self._value(param.type, checked[name])
            state_code = z3.IntVal(self.codes[self.state])
            chosen: Transition | None = None
            for t in allowed:
                if t.guard is None:
                    chosen = t
                    break
                guard = compile_z3(t.guard.tree, self.env, params, self.actor, state_code, self.codes)
                verdict, model = self._decide(guard.ok)
                if verdict != "valid":
                    return self._fail(index, "guard-false", f"the guard `{t.guard.text}` can be evaluated", model, verdict)
                verdict, model = self._decide(guard.term)
                if verdict == "valid":
                    chosen = t
                    self.obligations.append(Obligation(index, "guard", f"`{t.guard.text}` holds for every open value", "z3"))
                    break
                if verdict == "unknown":
                    return self._fail(index, "guard-false", f"the guard `{t.guard.text}`", None, verdict)
                never = self._possible(guard.term)
                if never == "unsat":
                    continue  # false for every value: the next candidate decides, as `fire` does
                if never == "unknown":
                    return self._fail(index, "guard-false", f"the guard `{t.guard.text}`", None, "unknown")
                return self._fail(index, "guard-false", f"the guard `{t.guard.text}`", model)
            if chosen is None:
                shown = "; ".join(f"`{t.guard.text}`" for t in allowed if t.guard is not None)
                return _Failure(index, "guard-false", f"step {index + 1}: `{event}` is not allowed: guard {shown} is false for every value of the open params")
            new: dict[str, Sym] = {}
            for name, expr in chosen.assign:
                sym = compile_z3(expr.tree, self.env, params, self.actor, state_code, self.codes)
                verdict, model = self._decide(sym.ok)
                if verdict != "valid":
                    return self._fail(index, "domain", f"the assignment to `{name}` can be evaluated", model, verdict)
                declared = spec.variable_map[name].type
                verdict, model = self._decide(domain_constraint(declared, sym, self.codes))
                if verdict != "valid":
                    return self._fail(index, "domain", f"`{name}` stays in {declared.describe()}", model, verdict)
                self.obligations.append(Obligation(index, "domain", f"`{name}` stays in {declared.describe()} for every open value", "z3"))
                new[name] = sym
            self.env.update(new)
            target = chosen.target
            target_code = z3.IntVal(self.codes[target])
            for inv in self.gate.checked:
                if inv.kind == "precedes":
                    if event == inv.then and inv.first not in self.seen:
                        return _Failure(index, "invariant", f"step {index + 1} (`{event}`) would break invariant `{inv.name}`")
                    continue
                assert inv.expr is not None
                sym = compile_z3(inv.expr.tree, self.env, {}, None, target_code, self.codes)
                holds = z3.And(sym.ok, sym.term) if inv.kind == "always" else z3.And(sym.ok, z3.Not(sym.term))
                verdict, model = self._decide(holds)
                if verdict != "valid":
                    return self._fail(index, "invariant", f"invariant `{inv.name}` after `{event}`", model, verdict)
                self.obligations.append(Obligation(index, "invariant", f"`{inv.name}` holds after the step for every open value", "z3"))
            if event in self.gate.monitored:
                self.seen = self.seen | {event}
            self.state = target
            states.append(target)
            indexes.append(chosen.index)
        return states, indexes


def _enum_names(declared: Type) -> list[str]:
    if declared.kind == "enum":
        return list(declared.values)
    if declared.kind == "set" and declared.of is not None and declared.of.kind == "enum":
        return list(declared.of.values)
    return []


def _some_value(declared: Type, actor: str) -> Any:
    """A member of ``declared``'s domain (to check the rest of a step's params)."""
    kind = declared.kind
    if kind == "bool":
        return False
    if kind == "enum":
        return declared.values[0]
    if kind == "str":
        return ""
    if kind == "principal":
        return actor
    if kind == "set":
        return []
    low, high = declared.min, declared.max
    base: Any = low if low is not None else high if high is not None else 0
    if kind == "int":
        return int(base)
    return str(base)


def _concrete(declared: Type, raw: Any, codes: Codes, names: Mapping[int, str]) -> Any:
    kind = declared.kind
    if kind == "int":
        return raw.as_long()
    if kind == "decimal":
        if z3.is_int_value(raw):
            return str(Decimal(f"{raw.as_long()}E-{declared.places or 0}"))
        fraction = Fraction(raw.as_fraction())
        return str(Decimal(fraction.numerator) / Decimal(fraction.denominator))
    if kind == "bool":
        return z3.is_true(raw)
    if kind == "enum":
        code = raw.as_long()
        return codes.names[code] if 0 <= code < len(codes.names) else None
    if kind == "str":
        return raw.as_string()
    if kind == "principal":
        return names.get(raw.as_long(), f"someone-else-{raw.as_long()}")
    return str(raw)


def json_text(value: Any) -> str:
    import json

    return _clip(json.dumps(value, ensure_ascii=False, default=str), 80)
