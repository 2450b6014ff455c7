"""Counterexamples: concrete runs decoded from a solver model and re-checked by the spec's
own Python evaluator before anyone sees them.

A :class:`Counterexample` prints as a replayable plan (JSON/YAML data): the context values
the instance starts with, then each step with its event, the actor and the roles that actor
holds, the params, and the state and variables after it. ``railguard render --trace`` draws
it on the diagram.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import z3

from railguard.spec import Spec
from railguard.spec.semantics import SYSTEM, Fired, fire
from railguard.spec.types import Type, Value

from .errors import VerifierError
from .prover import Witness
from .system import Move, System
from .z3expr import SYSTEM_ID, UNSET

__all__ = ["Counterexample", "ReplayError", "Step", "decode", "replay_counterexample", "replay_final_step"]


@dataclass(frozen=True)
class Step:
    """One step of a run. ``event`` is ``"error"`` for an error exit."""

    event: str
    kind: str
    actor: str | None
    roles: tuple[str, ...]
    params: Mapping[str, Value]
    state: str
    values: Mapping[str, Value]
    transition: int | None = None


@dataclass(frozen=True)
class Counterexample:
    """A run from the initial state; ``final`` is the violating step of a step property
    (it is *refused* or *fires wrongly*; its ``state``/``values`` are what it would produce)."""

    spec: str
    context: Mapping[str, Value]
    #: A tuple, or a lazily built run shared with other results (see :mod:`.explore`).
    steps: Sequence[Step]
    final: Step | None = None
    principals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_plan(self) -> dict[str, Any]:
        """The run as plain data: a test plan that replays it (actors are part of a test plan;
        a planner's plan for the gate never names its actor)."""
        steps = [_step_data(step) for step in self.steps]
        if self.final is not None:
            steps.append({**_step_data(self.final), "violation": True})
        return {
            "workflow": self.spec,
            "context": {k: _plain(v) for k, v in self.context.items()},
            "principals": {k: list(v) for k, v in self.principals.items()},
            "steps": steps,
        }


def _step_data(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = {"event": step.event}
    if step.kind != "error":
        data["actor"] = step.actor
        data["roles"] = list(step.roles)
        if step.params:
            data["params"] = {k: _plain(v) for k, v in step.params.items()}
    data["to"] = step.state
    data["values"] = {k: _plain(v) for k, v in step.values.items()}
    return data


def _plain(value: Value) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset):
        return sorted(_plain(v) for v in value)
    return value


class _Decoder:
    def __init__(self, system: System, model: z3.ModelRef) -> None:
        self.system = system
        self.model = model
        #: A name per (identity, roles): in the solver's model one Int identity may stand for
        #: different people at different steps (while nobody stores it), told apart by roles.
        self.names: dict[tuple[int, tuple[str, ...]], str] = {}
        self.count = 0

    def eval(self, term: Any) -> Any:
        return self.model.eval(term, model_completion=True)

    def roles(self, prefix: Mapping[str, Any], key: str) -> tuple[str, ...]:
        return tuple(r for r in self.system.roles if z3.is_true(self.eval(prefix[f"{key}@{r}"])))

    def principal(self, identity: int, roles: tuple[str, ...]) -> str | None:
        if identity == UNSET:
            return None
        if identity == SYSTEM_ID:
            return SYSTEM
        known = self.names.get((identity, roles))
        if known is None:
            self.count += 1
            known = self.names[(identity, roles)] = f"user{self.count}"
        return known

    def scalar(self, declared: Type, term: Any) -> Value:
        value = self.eval(term)
        kind = declared.kind
        if kind == "bool":
            return bool(z3.is_true(value))
        if kind == "int":
            return int(value.as_long())
        if kind == "decimal":
            if z3.is_int_value(value):
                return Decimal(f"{value.as_long()}E-{declared.places or 0}")
            fraction = Fraction(value.as_fraction())
            return Decimal(fraction.numerator) / Decimal(fraction.denominator)
        if kind == "enum":
            return str(self.system.codes.names[value.as_long()])
        if kind == "str":
            return str(value.as_string())
        raise ValueError(kind)

    def array_members(self, of: Any, term: Any) -> Value:
        """A finite set standing for an array-valued set in the model: the model's values of
        the member sort that the run can test (every constant of that sort, and the spec's
        literals) that the array contains. Membership tests of the run come out the same; a
        run that compares whole sets is checked by the replay every counterexample goes
        through."""
        sort = term.sort().domain()
        candidates: dict[str, Any] = {}
        for decl in self.model.decls():
            if decl.arity() == 0 and decl.range() == sort:
                value = self.eval(decl())
                candidates.setdefault(str(value), value)
        if sort == z3.StringSort():
            for name in self.system.codes.names:
                candidates.setdefault(str(z3.StringVal(name)), z3.StringVal(name))
        members = []
        for value in candidates.values():
            if z3.is_true(self.eval(z3.Select(term, value))):
                members.append(self.scalar(of, value))
        return frozenset(members)  # type: ignore[arg-type]

    def values(self, s: Mapping[str, Any]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for variable in self.system.spec.variables:
            declared = variable.type
            if declared.kind == "principal":
                identity = self.eval(s[variable.name]).as_long()
                out[variable.name] = self.principal(identity, self.roles(s, variable.name))
            elif declared.kind == "set" and declared.of is not None and declared.of.kind not in ("enum", "bool"):
                out[variable.name] = self.array_members(declared.of, s[variable.name])
            elif declared.kind == "set":
                assert declared.of is not None
                members = []
                for key in (declared.of.values if declared.of.kind == "enum" else ("True", "False")):
                    if z3.is_true(self.eval(s[f"{variable.name}#{key}"])):
                        members.append(key if declared.of.kind == "enum" else key == "True")
                out[variable.name] = frozenset(members)
            else:
                out[variable.name] = self.scalar(declared, s[variable.name])
        return out

    def step(self, s_after: Mapping[str, Any] | None, i: Mapping[str, Any], move: Move) -> Step:
        spec = self.system.spec
        if move.kind == "error":
            assert s_after is not None
            return Step("error", "error", None, (), {}, move.target, self.values(s_after))
        transition = move.transition
        assert transition is not None
        if move.kind == "timeout":
            actor: str | None = SYSTEM
            roles: tuple[str, ...] = ()
            params: dict[str, Value] = {p.name: p.default for p in transition.params}
        else:
            roles = self.roles(i, "@actor")
            identity = self.eval(i["@actor"]).as_long()
            actor = self.principal(identity, roles)
            params = {}
            for p in transition.params:
                key = f"@p:{transition.event}:{p.name}"
                if p.type.kind == "set" and p.type.of is not None and p.type.of.kind not in ("enum", "bool"):
                    params[p.name] = self.array_members(p.type.of, i[key])
                elif p.type.kind == "set":
                    assert p.type.of is not None
                    keys = p.type.of.values if p.type.of.kind == "enum" else ("True", "False")
                    params[p.name] = frozenset(
                        (k if p.type.of.kind == "enum" else k == "True") for k in keys if z3.is_true(self.eval(i[f"{key}#{k}"]))
                    )
                else:
                    params[p.name] = self.scalar(p.type, i[key])
        values = self.values(s_after) if s_after is not None else {}
        del spec
        return Step(transition.event, move.kind, actor, roles, params, move.target, values, transition.index)


def decode(system: System, witness: Witness, *, final_step: bool) -> Counterexample:
    """Turn a BMC witness into a counterexample; ``final_step`` decodes the last inputs as the
    violating step of a step property."""
    decoder = _Decoder(system, witness.model)
    spec = system.spec
    s0 = witness.states[0]
    context: dict[str, Value] = {}
    initial = decoder.values(s0)
    for variable in spec.variables:
        if variable.context:
            context[variable.name] = initial[variable.name]
    steps = []
    for k in range(witness.depth):
        move = system.moves[decoder.eval(witness.inputs[k]["@move"]).as_long()]
        steps.append(decoder.step(witness.states[k + 1], witness.inputs[k], move))
    final = None
    if final_step:
        last = witness.inputs[witness.depth]
        move = system.moves[decoder.eval(last["@move"]).as_long()]
        final = decoder.step(None, last, move)
    principals = {name: roles for (_, roles), name in decoder.names.items()}
    return Counterexample(spec.name, context, tuple(steps), final, principals)


@dataclass(frozen=True)
class Replayed:
    """The configuration a counterexample's steps reach, per the Python semantics."""

    state: str
    values: dict[str, Value]
    seen: frozenset[str]


class ReplayError(VerifierError):
    """A counterexample did not replay: the encoding and the runtime semantics disagree (a bug
    in railguard, which the checks report as ``unknown``)."""


def replay_counterexample(spec: Spec, cex: Counterexample) -> Replayed:
    """Replay every step through :func:`railguard.spec.semantics.fire`; raise
    :class:`ReplayError` unless each step happens and ends where the counterexample says."""
    state = spec.initial_state.name
    values: dict[str, Value] = spec.initial_values()
    values.update(cex.context)
    seen: set[str] = set()
    for number, step in enumerate(cex.steps, 1):
        if step.kind == "error":
            target = spec.error_target(state)
            if target is None or target != step.state:
                raise ReplayError(f"step {number}: no error exit from `{state}` to `{step.state}`")
            state = target
        else:
            outcome = fire(spec, state, values, step.event, step.actor, frozenset(step.roles), dict(step.params), system=step.kind == "timeout")
            if not isinstance(outcome, Fired):
                raise ReplayError(f"step {number} (`{step.event}`) was refused: {outcome.message}")
            if outcome.target != step.state or outcome.transition.index != step.transition:
                raise ReplayError(f"step {number} (`{step.event}`) took a different transition")
            state, values = outcome.target, dict(outcome.values)
            seen.add(step.event)
        if _normal(values) != _normal(dict(step.values)):
            raise ReplayError(f"step {number} (`{step.event}`) produced different values: {values} != {dict(step.values)}")
    return Replayed(state, values, frozenset(seen))


def _normal(values: Mapping[str, Value]) -> dict[str, Any]:
    return {k: (Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in values.items()}


def replay_final_step(spec: Spec, cex: Counterexample) -> Fired:
    """Replay ``cex`` and then its final step, which must *happen* — with every check the
    runtime makes, domains included — and take the transition it names."""
    end = replay_counterexample(spec, cex)
    final = cex.final
    if final is None:
        raise ReplayError("the run has no final step")
    outcome = fire(spec, end.state, end.values, final.event, final.actor, frozenset(final.roles), dict(final.params), system=final.kind == "timeout")
    if not isinstance(outcome, Fired):
        raise ReplayError(f"the final step (`{final.event}`) was refused: {outcome.message}")
    if outcome.transition.index != final.transition:
        raise ReplayError(f"the final step (`{final.event}`) took a different transition")
    return outcome
