"""Model-based conformance testing: a verified spec is the oracle for the code that implements it.

A user wraps an implementation in a small adapter (:class:`Adapter`): fire an event as a
principal with params and say whether it was accepted; read the current state and variables.
Optionally ``error()`` takes the error exit and ``compensations()`` lists the compensation
handlers run so far, in order. :func:`conformance_machine` builds a hypothesis
``RuleBasedStateMachine`` that drives a fresh implementation with actions drawn from the spec
(:func:`railguard.verifier.strategies.actions`) and checks after every step that it accepted
exactly what the spec allows, refused what it forbids, and agrees on the state, the variables
and the compensations run. A disagreement raises :class:`ConformanceError`; hypothesis shrinks
it to a minimal run, which the error prints as a replayable plan and as a pytest function
(STYLE item 7). :func:`replay_plan` replays such a plan.

The oracle (:class:`Oracle`) is the reference step semantics
(:func:`railguard.spec.semantics.fire`) plus the runtime's compensation rule: an effect with a
compensation is owed once it fired; entering a failure terminal (by a transition or the error
exit) runs the owed compensations in reverse order; entering a success terminal settles them.

This module imports hypothesis: install ``railguard[testing]``.
"""

from __future__ import annotations

import json
import pprint
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from railguard.spec import Spec
from railguard.spec.codec import decode_params, decode_values, encode_value, encode_values
from railguard.spec.errors import EvaluationError
from railguard.spec.semantics import Fired, Refusal, check_params, fire, permitted
from railguard.spec.types import Value

from .errors import VerifierError
from .strategies import Action, actions, default_principals

__all__ = [
    "Adapter",
    "ConformanceError",
    "GuardOutcome",
    "Oracle",
    "Outcome",
    "check_conformance",
    "conformance_machine",
    "plan_of",
    "pytest_source",
    "replay_plan",
]

#: Actions tried once a run rests in a terminal state (all must be refused); then it ends.
FINAL_PROBES = 2


@runtime_checkable
class Adapter(Protocol):
    """What the conformance test needs of an implementation. ``fire`` returns whether the
    implementation accepted the step (a refusal must leave it unchanged); ``roles`` are the
    roles the directory gives ``actor``. Optional: ``error()`` (take the error exit) and
    ``compensations()`` (names of the compensation handlers run so far, oldest first)."""

    def fire(self, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Value]) -> bool: ...

    def state(self) -> str: ...

    def variables(self) -> Mapping[str, Any]: ...


class ConformanceError(VerifierError):
    """An implementation disagreed with its spec. ``plan`` is the run that shows it (data, see
    :func:`plan_of`); ``test`` is the same run as a pytest function; ``step`` is the 1-based
    index of the step where they disagree."""

    def __init__(self, message: str, plan: Mapping[str, Any], test: str, step: int) -> None:
        self.plan = plan
        self.test = test
        self.step = step
        self.summary = message
        rendered = json.dumps(plan, indent=2, ensure_ascii=False)
        super().__init__(f"{message}\n\nminimal run (a replayable plan):\n{rendered}\n\nas a pytest function:\n{test}")


@dataclass(frozen=True, slots=True)
class GuardOutcome:
    """A guard that a step evaluated, and its value."""

    transition: int
    value: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the oracle says one action does: ``accepted``, the refusal ``code``, the transition
    fired, the guards it evaluated on the way, and the compensations it ran."""

    accepted: bool
    code: str | None
    transition: int | None
    guards: tuple[GuardOutcome, ...] = ()
    compensated: tuple[str, ...] = ()


@dataclass
class Oracle:
    """One instance of ``spec`` as the spec says it behaves (see the module docstring)."""

    spec: Spec
    context: Mapping[str, Value] = field(default_factory=dict)
    state: str = ""
    values: dict[str, Value] = field(default_factory=dict)
    owed: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = self.spec.initial_state.name
        self.values = self.spec.initial_values()
        self.values.update(self.context)

    def guards(self, action: Action, roles: frozenset[str]) -> tuple[GuardOutcome, ...]:
        """The guards the step evaluates, in the order the semantics evaluates them (permitted
        transitions of the event from the current state, up to the first that holds)."""
        spec = self.spec
        candidates = [t for t in spec.transitions if t.event == action.event and self.state in t.sources]
        allowed = [t for t in candidates if permitted(spec, t, roles)]
        checked = check_params(spec, action.event, action.params) if allowed else None
        if not isinstance(checked, dict):
            return ()
        out: list[GuardOutcome] = []
        for transition in allowed:
            if transition.guard is None:
                break
            try:
                value = bool(spec.compiled(transition.guard)(self.values, checked, action.actor, self.state))
            except EvaluationError:
                break
            out.append(GuardOutcome(transition.index, value))
            if value:
                break
        return tuple(out)

    def apply(self, action: Action, roles: frozenset[str]) -> Outcome:
        """Take ``action`` (fired by a principal holding ``roles``) and say what happened."""
        spec = self.spec
        if action.kind == "error":
            target = spec.error_target(self.state)
            if target is None:
                return Outcome(False, "not-enabled", None)
            self.state = target
            return Outcome(True, None, None, (), self._settle(target))
        guards = self.guards(action, roles)
        outcome = fire(spec, self.state, self.values, action.event, action.actor, roles, dict(action.params))
        if isinstance(outcome, Refusal):
            return Outcome(False, outcome.code, None, guards)
        assert isinstance(outcome, Fired)
        transition = outcome.transition
        if transition.effect is not None and transition.compensate is not None:
            self.owed.append(transition.compensate)
        self.state, self.values = outcome.target, dict(outcome.values)
        return Outcome(True, None, transition.index, guards, self._settle(outcome.target))

    def _settle(self, target: str) -> tuple[str, ...]:
        terminal = self.spec.state_map[target].terminal
        ran: tuple[str, ...] = ()
        if terminal == "failure":
            ran = tuple(reversed(self.owed))
            self.compensated.extend(ran)
        if terminal is not None:
            self.owed.clear()
        return ran


# --------------------------------------------------------------------------- plans and tests


def plan_of(spec: Spec, run: Sequence[Action], principals: Mapping[str, frozenset[str]], context: Mapping[str, Value] | None = None) -> dict[str, Any]:
    """A run as a replayable test plan: the workflow, the context values, the roles of each
    principal that acts, and the steps (``event``, ``actor``, ``params``; ``error`` for the
    error exit). Values are encoded with :mod:`railguard.spec.codec`."""
    used = sorted({a.actor for a in run})
    return {
        "workflow": spec.name,
        "context": encode_values(context or {}),
        "principals": {name: sorted(principals.get(name, frozenset())) for name in used},
        "steps": [a.to_data() for a in run],
    }


def _actions_of(spec: Spec, plan: Mapping[str, Any]) -> list[Action]:
    out: list[Action] = []
    for step in plan["steps"]:
        if step["event"] == "error":
            out.append(Action("error", step.get("actor", "operator"), {}, "error"))
        else:
            out.append(Action(step["event"], step["actor"], decode_params(spec, step["event"], step.get("params", {}))))
    return out


def pytest_source(plan: Mapping[str, Any], *, spec_path: str | None = None, factory: str | None = None, name: str = "test_replays_the_minimal_run") -> str:
    """A pytest function that replays ``plan`` with :func:`replay_plan`. ``spec_path`` is the
    file the spec loads from; ``factory`` (``"module:name"``) makes the implementation's
    adapter; without it (a lambda, say) the function takes a ``make_adapter`` fixture."""
    rendered = pprint.pformat(dict(plan), indent=4, width=96, sort_dicts=False)
    lines = ["from railguard.spec import load", "from railguard.verifier.conformance import replay_plan"]
    if factory is not None:
        module, _, attribute = factory.partition(":")
        lines.append(f"from {module} import {attribute} as make_adapter")
    source = spec_path if spec_path is not None else f"{plan['workflow']}.yaml"
    lines += ["", f"PLAN = {rendered}", "", ""]
    if factory is not None:
        lines += [f"def {name}() -> None:"]
    else:
        lines += [
            "# `make_adapter` is a fixture you define (in conftest.py) returning your adapter factory.",
            f"def {name}(make_adapter) -> None:",
        ]
    lines += [f"    spec = load({source!r})", "    replay_plan(spec, make_adapter, PLAN)", ""]
    return "\n".join(lines)


def _reference(factory: Callable[[], Adapter]) -> str | None:
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", "")
    if module is None or "<" in qualname or module == "__main__":
        return None
    return f"{module}:{qualname}"


class _Checker:
    """Compares one implementation with the oracle step by step."""

    def __init__(self, spec: Spec, adapter: Adapter, principals: Mapping[str, frozenset[str]], context: Mapping[str, Value], observe: Iterable[str] | None, spec_path: str | None, factory: str | None) -> None:
        self.spec = spec
        self.adapter = adapter
        self.principals = principals
        self.context = dict(context)
        self.oracle = Oracle(spec, dict(context))
        self.observe = tuple(observe) if observe is not None else tuple(v.name for v in spec.variables)
        self.run: list[Action] = []
        self.spec_path = spec_path
        self.factory = factory
        self.observes_compensations = callable(getattr(adapter, "compensations", None))
        self.can_error = callable(getattr(adapter, "error", None))

    def fail(self, message: str) -> ConformanceError:
        plan = plan_of(self.spec, self.run, self.principals, self.context)
        return ConformanceError(message, plan, pytest_source(plan, spec_path=self.spec_path, factory=self.factory), len(self.run))

    def step(self, action: Action) -> Outcome:
        self.run.append(action)
        number = len(self.run)
        roles = self.principals.get(action.actor, frozenset())
        before = self.oracle.state
        expected = self.oracle.apply(action, roles)
        if action.kind == "error":
            if expected.accepted:
                self.adapter.error()  # type: ignore[attr-defined]
            self.check(number)
            return expected
        accepted = bool(self.adapter.fire(action.event, action.actor, roles, dict(action.params)))
        if accepted and not expected.accepted:
            raise self.fail(f"step {number}: the implementation accepted `{action.event}` by `{action.actor}` in state `{before}`, which the spec refuses ({expected.code})")
        if expected.accepted and not accepted:
            raise self.fail(f"step {number}: the implementation refused `{action.event}` by `{action.actor}` in state `{before}`, which the spec allows (transition {expected.transition})")
        self.check(number)
        return expected

    def check(self, number: int) -> None:
        oracle = self.oracle
        state = self.adapter.state()
        if state != oracle.state:
            raise self.fail(f"step {number}: the implementation is in state `{state}`, the spec in `{oracle.state}`")
        seen = decode_values(self.spec, {k: _plain(v) for k, v in self.adapter.variables().items()})
        for name in self.observe:
            want = oracle.values.get(name)
            if name not in seen:
                raise self.fail(f"step {number}: the implementation does not report variable `{name}`")
            if encode_value(seen[name]) != encode_value(want):
                raise self.fail(f"step {number}: variable `{name}` is {encode_value(seen[name])!r} in the implementation, {encode_value(want)!r} in the spec")
        if self.observes_compensations:
            ran = list(self.adapter.compensations())  # type: ignore[attr-defined]
            if ran != oracle.compensated:
                raise self.fail(f"step {number}: the implementation ran compensations {ran}, the spec owes {oracle.compensated}")


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset | list | tuple):
        return sorted(value, key=str)
    return value


def replay_plan(spec: Spec, factory: Callable[[], Adapter], plan: Mapping[str, Any], *, observe: Iterable[str] | None = None) -> list[Outcome]:
    """Replay ``plan`` (as :func:`plan_of` writes it) against a fresh implementation, checking
    every step like the conformance test; raise :class:`ConformanceError` at the first
    disagreement, else return what the spec says each step did."""
    principals = {name: frozenset(roles) for name, roles in plan.get("principals", {}).items()}
    context = decode_values(spec, plan.get("context", {}))
    checker = _Checker(spec, factory(), principals, context, observe, None, None)
    checker.check(0)
    return [checker.step(action) for action in _actions_of(spec, plan)]


def conformance_machine(
    spec: Spec,
    factory: Callable[[], Adapter],
    *,
    principals: Mapping[str, frozenset[str]] | None = None,
    context: Mapping[str, Value] | None = None,
    observe: Iterable[str] | None = None,
    errors: bool | None = None,
    spec_path: str | None = None,
    on_step: Callable[[Action, Outcome, str], None] | None = None,
) -> type[RuleBasedStateMachine]:
    """A ``RuleBasedStateMachine`` that tests the implementations ``factory`` makes against
    ``spec``. ``principals`` is the directory (default
    :func:`~railguard.verifier.strategies.default_principals`); ``observe`` limits the variables
    compared; ``errors`` draws error exits too (default: when the adapter has ``error``);
    ``on_step(action, outcome, state_before)`` is called after every step (coverage uses it)."""
    directory = dict(principals) if principals is not None else default_principals(spec)
    start = dict(context or {})
    reference = _reference(factory)
    if spec_path is None and not spec.source.startswith("<"):
        spec_path = spec.source
    watched = tuple(observe) if observe is not None else None

    class Conformance(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            adapter = factory()
            self.checker = _Checker(spec, adapter, directory, start, watched, spec_path, reference)
            self.errors = self.checker.can_error if errors is None else errors
            self.probes = 0
            self.avoid: frozenset[int] = frozenset()
            self.checker.check(0)

        @initialize(data=st.data())
        def swarm(self, data: st.DataObject) -> None:
            """Swarm testing: leave about a third of the transitions out of this run's favoured
            steps, so that long paths through the others become likely."""
            marks = data.draw(st.lists(st.integers(0, 2), min_size=len(spec.transitions), max_size=len(spec.transitions)), label="swarm")
            self.avoid = frozenset(t.index for t, mark in zip(spec.transitions, marks, strict=True) if mark == 2)

        def running(self) -> bool:
            return not spec.state_map[self.checker.oracle.state].is_terminal

        def finished(self) -> bool:
            return not self.running() and self.probes < FINAL_PROBES

        @precondition(finished)
        @rule(data=st.data())
        def probe(self, data: st.DataObject) -> None:
            """In a terminal state, a few more actions: each must be refused."""
            self.probes += 1
            self.step(data)

        def resting(self) -> bool:
            return not self.running() and self.probes >= FINAL_PROBES

        @precondition(resting)
        @rule()
        def rest(self) -> None:
            """Nothing is left to try (hypothesis needs one rule that can run)."""

        @precondition(running)
        @rule(data=st.data())
        def step(self, data: st.DataObject) -> None:
            before = self.checker.oracle.state
            action = data.draw(actions(spec, before, directory, errors=self.errors, values=self.checker.oracle.values, avoid=self.avoid), label="action")
            outcome = self.checker.step(action)
            if on_step is not None:
                on_step(action, outcome, before)

    Conformance.__name__ = f"Conformance_{spec.name.replace('-', '_').replace('.', '_')}"
    return Conformance


def check_conformance(spec: Spec, factory: Callable[[], Adapter], *, max_examples: int = 100, max_steps: int = 30, derandomize: bool = False, **options: Any) -> None:
    """Run the conformance test on ``max_examples`` runs of up to ``max_steps`` steps; raise
    :class:`ConformanceError` with the shrunk minimal run if the implementation disagrees with
    ``spec``. ``derandomize`` makes the runs the same on every call; ``options`` go to
    :func:`conformance_machine`."""
    from hypothesis import HealthCheck, Phase, settings

    machine = conformance_machine(spec, factory, **options)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=max_steps,
            deadline=None,
            database=None,
            derandomize=derandomize,
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
