"""The symbolic checks: data reachability, dead transitions, determinism, domain safety,
invariants and ``precedes`` properties, each ending proved, violated or unknown.

Pipeline: a bounded search (BMC) finds short witnesses for many questions at once; the
remaining questions are decided together by Spacer (one query when all of them hold), split
one by one only when that combined query fails. A violation reported to the user always
comes with a counterexample that replayed through the Python semantics; a violation that
cannot be replayed is reported as unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any

import z3

from railguard.spec import Invariant, Spec, Transition
from railguard.spec.errors import EvaluationError
from railguard.spec.semantics import Fired, fire

from . import results as R
from .counterexample import Counterexample, ReplayError, decode, replay
from .engine import Bad, Budget, Engine, Witness
from .results import Result
from .structure import reachable_states
from .system import Inputs, State, System
from .z3expr import Unsupported

__all__ = ["Goal", "check_symbolic"]


@dataclass(frozen=True)
class Goal:
    """One question. ``want_reachable`` goals are good when ``bad`` is reachable (a state or a
    transition can be reached); the others are good when it is not (safety)."""

    key: tuple[str, ...]
    rule: R.Rule
    subject: str
    bad: Bad
    want_reachable: bool
    step_property: bool
    location_path: tuple[str | int, ...]
    aliases: tuple[str, ...] = ()
    #: Re-checks a replayed counterexample's end configuration (safety goals).
    confirm: Callable[[Spec, Counterexample], bool] | None = None
    describe: str = ""


def _goals(spec: Spec, system: System) -> list[Goal]:
    goals: list[Goal] = []
    graph_reachable = reachable_states(spec)
    for state in spec.states:
        if state.name in graph_reachable and not state.initial:
            goals.append(Goal(
                ("state", state.name), R.DATA_UNREACHABLE_STATE, state.name,
                partial(_bad_in_state, system, state.name),
                True, False, ("states", state.name),
                describe=f"state `{state.name}`",
            ))
    for t in spec.transitions:
        if not any(src in graph_reachable for src in t.sources):
            continue
        goals.append(Goal(
            ("fire", str(t.index)), R.DEAD_TRANSITION, t.label,
            partial(_bad_fires, system, t),
            True, True, ("transitions", t.index - 1), (t.event, str(t.index)),
            describe=t.label,
        ))
    for a_pos, t1 in enumerate(spec.transitions):
        for t2 in spec.transitions[a_pos + 1 :]:
            if t1.event != t2.event:
                continue
            for src in t1.sources:
                if src not in t2.sources or src not in graph_reachable:
                    continue
                goals.append(Goal(
                    ("det", src, str(t1.index), str(t2.index)), R.NONDETERMINISM,
                    f"{t1.label} and {t2.label} from `{src}`",
                    partial(_overlap, system, t1, t2, src),
                    False, True, ("transitions", t2.index - 1), (t2.event, str(t2.index)),
                    confirm=partial(_confirm_overlap, t1=t1, t2=t2),
                    describe=f"{t1.label} and {t2.label} from `{src}`",
                ))
    for t in spec.transitions:
        for name, _ in t.assign:
            goals.append(Goal(
                ("dom", str(t.index), name), R.DOMAIN_ESCAPE, f"{t.label}: `{name}`",
                partial(_escapes, system, t, name),
                False, True, ("transitions", t.index - 1, "assign", name), (t.event, str(t.index)),
                confirm=partial(_confirm_refused, t=t, code="domain"),
                describe=f"assignment to `{name}` in {t.label}",
            ))
    for position, inv in enumerate(spec.invariants):
        goals.append(_invariant_goal(spec, system, inv, position))
    return goals


def _bad_in_state(system: System, name: str, s: State, i: Inputs) -> z3.BoolRef:
    return system.in_state(name, s)


def _bad_fires(system: System, t: Transition, s: State, i: Inputs) -> z3.BoolRef:
    return system.fires(t, s, i, check_domain=False)


def _overlap(system: System, t1: Transition, t2: Transition, src: str, s: State, i: Inputs) -> z3.BoolRef:
    params = system.param_syms(t1.event, i)
    move = next(m for m in system.moves if m.transition is t1 and m.kind == "transition" and m.source == src)
    actor = system.actor(i, move)
    g1, ok1 = system.guard(t1, s, params, actor)
    g2, ok2 = system.guard(t2, s, params, actor)
    return z3.And(
        i["@move"] == move.index, system.in_state(src, s), system.actor_valid(s, i), system.params_valid(t1.event, i),
        system.permission(t1, i), system.permission(t2, i), ok1, g1, ok2, g2,
    )


def _escapes(system: System, t: Transition, name: str, s: State, i: Inputs) -> z3.BoolRef:
    options = []
    for move in system.moves:
        if move.transition is t:
            options.append(z3.And(i["@move"] == move.index, system.selected(move, s, i), z3.Not(system.new_values_ok(move, s, i, only=name))))
    return z3.Or(options) if options else z3.BoolVal(False)


def _invariant_goal(spec: Spec, system: System, inv: Invariant, position: int) -> Goal:
    path = ("invariants", position)
    if inv.kind == "precedes":
        first, then = inv.first or "", inv.then or ""
        firing = [t for t in spec.transitions if t.event == then]

        def bad_precedes(s: State, i: Inputs) -> z3.BoolRef:
            seen = s[f"@seen:{first}"]
            return z3.And(z3.Not(seen), z3.Or([system.fires(t, s, i) for t in firing]) if firing else z3.BoolVal(False))

        return Goal(
            ("inv", inv.name), R.INVARIANT, inv.name, bad_precedes, False, True, path,
            confirm=lambda spec, cex: _confirm_precedes(spec, cex, first, then),
            describe=f"`{then}` never fires before `{first}`",
        )
    assert inv.expr is not None
    tree = inv.expr.tree

    def bad_state(s: State, i: Inputs) -> z3.BoolRef:
        sym = system.invariant(tree, s)
        if inv.kind == "always":
            return z3.Not(z3.And(sym.ok, sym.term))
        return z3.Or(z3.Not(sym.ok), sym.term)

    return Goal(
        ("inv", inv.name), R.INVARIANT, inv.name, bad_state, False, False, path,
        confirm=lambda spec, cex: _confirm_state(spec, cex, inv),
        describe=f"{inv.kind} `{inv.expr.text}`",
    )


# ---------------------------------------------------------------------- confirmations


def _confirm_state(spec: Spec, cex: Counterexample, inv: Invariant) -> bool:
    end = replay(spec, cex)
    assert inv.expr is not None
    try:
        value = spec.compiled(inv.expr)(end.values, {}, None, end.state)
    except EvaluationError:
        return True
    return bool(value) if inv.kind == "never" else not value


def _final_outcome(spec: Spec, cex: Counterexample) -> tuple[Any, Any]:
    end = replay(spec, cex)
    final = cex.final
    assert final is not None
    outcome = fire(spec, end.state, end.values, final.event, final.actor, frozenset(final.roles), dict(final.params), system=final.kind == "timeout")
    return end, outcome


def _confirm_precedes(spec: Spec, cex: Counterexample, first: str, then: str) -> bool:
    end, outcome = _final_outcome(spec, cex)
    return isinstance(outcome, Fired) and outcome.transition.event == then and first not in end.seen


def _confirm_refused(spec: Spec, cex: Counterexample, t: Transition, code: str) -> bool:
    _, outcome = _final_outcome(spec, cex)
    return not isinstance(outcome, Fired) and outcome.code == code and cex.final is not None and cex.final.transition == t.index


def _confirm_overlap(spec: Spec, cex: Counterexample, t1: Transition, t2: Transition) -> bool:
    end = replay(spec, cex)
    final = cex.final
    assert final is not None
    from railguard.spec.semantics import check_params, permitted

    params = check_params(spec, t1.event, dict(final.params))
    if not isinstance(params, dict):
        return False
    roles = frozenset(final.roles)
    for t in (t1, t2):
        if not permitted(spec, t, roles):
            return False
        if t.guard is not None:
            try:
                if not spec.compiled(t.guard)(end.values, params, final.actor, end.state):
                    return False
            except EvaluationError:
                return False
    return end.state in t1.sources and end.state in t2.sources


# ---------------------------------------------------------------------- pipeline


@dataclass
class _Verdict:
    outcome: str
    message: str
    counterexample: Counterexample | None = None
    invariant: str | None = None
    bound: int | None = None


def check_symbolic(spec: Spec, budget: Budget | None = None) -> list[Result]:
    """Run every symbolic check on ``spec`` and return one result per question."""
    budget = budget or Budget()
    try:
        system = System(spec)
        goals = _goals(spec, system)
        engine = Engine(system, budget)
        # Build every formula now, so that a construct without an encoding stops here.
        for goal in goals:
            engine.term(goal.bad)
        engine.relation  # noqa: B018
        engine.initial  # noqa: B018
    except Unsupported as exc:
        return [Result(R.SYMBOLIC, spec.name, "unknown", f"the data checks cannot run: {exc}", spec.location())]
    verdicts: dict[tuple[str, ...], _Verdict] = {}
    by_key = {g.key: g for g in goals}

    bads: dict[Hashable, Bad] = {g.key: g.bad for g in goals}
    found, exhausted = engine.bmc(bads, budget.bmc_depth)
    for key, witness in found.items():
        verdicts[key] = _witnessed(spec, system, by_key[key], witness)  # type: ignore[index]
    for key in exhausted:
        verdicts[key] = _Verdict("unknown", "the solver ran out of budget in the bounded search")  # type: ignore[index]

    safety = [g for g in goals if g.key not in verdicts and not g.want_reachable]
    reach = [g for g in goals if g.key not in verdicts and g.want_reachable]
    _decide_group(spec, system, engine, safety, verdicts, budget)
    _decide_group(spec, system, engine, reach, verdicts, budget)
    results = []
    for goal in goals:
        verdict = verdicts[goal.key]
        results.append(_result(spec, goal, verdict))
    return results


def _decide_group(spec: Spec, system: System, engine: Engine, group: list[Goal], verdicts: dict[tuple[str, ...], _Verdict], budget: Budget) -> None:
    if not group:
        return
    answer = engine.spacer(*(g.bad for g in group))
    if answer.status == "safe":
        for goal in group:
            verdicts[goal.key] = _unreachable(goal, answer.invariant)
        return
    if len(group) > 1:
        for goal in group:
            _decide_group(spec, system, engine, [goal], verdicts, budget)
        return
    (goal,) = group
    if answer.status == "unknown":
        verdicts[goal.key] = _Verdict(
            "unknown",
            f"undecided: Spacer gave up ({answer.reason or 'no reason given'}); no violation within {budget.bmc_depth} steps",
            bound=budget.bmc_depth,
        )
        return
    found, _ = engine.bmc({goal.key: goal.bad}, budget.max_depth, start=budget.bmc_depth + 1)
    witness = found.get(goal.key)
    if witness is not None:
        verdicts[goal.key] = _witnessed(spec, system, goal, witness)
    elif goal.want_reachable:
        verb = "can fire" if goal.rule is R.DEAD_TRANSITION else "is reachable"
        verdicts[goal.key] = _Verdict("proved", f"{goal.describe} {verb} (proved by Spacer; the shortest run is longer than {budget.max_depth} steps)")
    else:
        verdicts[goal.key] = _Verdict(
            "unknown",
            f"Spacer shows {goal.describe} can be violated, but no counterexample within {budget.max_depth} steps was found to show it",
            bound=budget.max_depth,
        )


def _unreachable(goal: Goal, invariant: str | None) -> _Verdict:
    if goal.want_reachable:
        if goal.rule is R.DEAD_TRANSITION:
            message = f"{goal.describe} can never fire: its guard, permission or an earlier transition on the same event rules it out in every reachable configuration"
        else:
            message = f"{goal.describe} cannot be reached once guards and data are taken into account"
        return _Verdict("violated", message, invariant=invariant)
    return _Verdict("proved", f"{goal.describe} holds in every reachable configuration", invariant=invariant)


def _witnessed(spec: Spec, system: System, goal: Goal, witness: Witness) -> _Verdict:
    cex = decode(system, witness, final_step=goal.step_property)
    if goal.want_reachable:
        try:
            replay(spec, cex)
        except ReplayError as exc:
            return _Verdict("unknown", f"the witness for {goal.describe} did not replay ({exc}); please report this")
        steps = witness.depth + (1 if goal.step_property else 0)
        verb = "can fire" if goal.rule is R.DEAD_TRANSITION else "is reachable"
        return _Verdict("proved", f"{goal.describe} {verb}: a run of {steps} step{'s' if steps != 1 else ''} shows it", counterexample=cex)
    try:
        confirmed = goal.confirm(spec, cex) if goal.confirm is not None else True
    except ReplayError as exc:
        return _Verdict("unknown", f"a counterexample for {goal.describe} did not replay ({exc}); please report this")
    if not confirmed:
        return _Verdict("unknown", f"a counterexample for {goal.describe} was not confirmed by the Python evaluator; please report this")
    steps = len(cex.steps) + (1 if cex.final is not None else 0)
    return _Verdict("violated", _violation_message(goal, steps), counterexample=cex)


def _violation_message(goal: Goal, steps: int) -> str:
    run = f"a run of {steps} step{'s' if steps != 1 else ''}"
    if goal.rule is R.INVARIANT:
        return f"invariant `{goal.subject}` ({goal.describe}) is violated by {run}"
    if goal.rule is R.DOMAIN_ESCAPE:
        return f"the {goal.describe} can leave the variable's domain after {run}"
    if goal.rule is R.NONDETERMINISM:
        return f"{goal.describe} can both be enabled for the same actor and params after {run}"
    return f"{goal.describe} is violated by {run}"


def _result(spec: Spec, goal: Goal, verdict: _Verdict) -> Result:
    return Result(
        goal.rule,
        goal.subject,
        verdict.outcome,  # type: ignore[arg-type]
        verdict.message,
        spec.location(*goal.location_path),
        bound=verdict.bound,
        aliases=goal.aliases,
        counterexample=verdict.counterexample if verdict.outcome == "violated" else None,
        witness=verdict.counterexample if verdict.outcome == "proved" else None,
        invariant=verdict.invariant,
    )
