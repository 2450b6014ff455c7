"""The symbolic checks: data reachability, dead transitions, determinism, domain safety,
invariants and ``precedes`` properties, each ending proved, violated or unknown.

Pipeline: a bounded search (BMC) finds short witnesses for many questions at once; the
remaining questions are decided together by Spacer (one query when all of them hold), split
one by one only when that combined query fails. A violation reported to the user always
comes with a counterexample that replayed through the Python semantics; a violation that
cannot be replayed is reported as unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import Any

import z3

from railguard.spec import Invariant, Spec, Transition
from railguard.spec.errors import EvaluationError
from railguard.spec.expr import Literal as LiteralNode
from railguard.spec.expr import Var as VarNode
from railguard.spec.semantics import Fired, fire
from railguard.spec.types import Type

from . import results as R
from .budget import Budget, Deadline, OutOfTime
from .counterexample import (
    Counterexample,
    ReplayError,
    decode,
    replay_counterexample,
    replay_final_step,
)
from .explore import explore
from .prover import Bad, Prover, Witness
from .readable import readable
from .results import Result
from .structure import reachable_states
from .system import Inputs, State, System, _walk
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
    # Pairs on one event from one source, in the order of a scan over (t1, t2, source).
    by_source: dict[tuple[str, str], list[Transition]] = {}
    for t in spec.transitions:
        for src in t.sources:
            if src in graph_reachable:
                by_source.setdefault((t.event, src), []).append(t)
    pairs = sorted(
        (t1.index, t2.index, t1.sources.index(src), src)
        for (_, src), same in by_source.items()
        for a, t1 in enumerate(same)
        for t2 in same[a + 1 :]
    )
    for i1, i2, _, src in pairs:
        t1, t2 = spec.transitions[i1 - 1], spec.transitions[i2 - 1]
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
    # A transition fires only when its new values lie in their domains: the runtime refuses
    # the step otherwise, so a transition whose assignment always escapes is dead.
    return system.fires(t, s, i)


def _overlap(system: System, t1: Transition, t2: Transition, src: str, s: State, i: Inputs) -> z3.BoolRef:
    params = system.param_syms(t1.event, i)
    move = next(m for m in system.moves_of[t1.index] if m.kind == "transition" and m.source == src)
    actor = system.actor(i, move)
    g1, ok1 = system.guard(t1, s, params, actor)
    g2, ok2 = system.guard(t2, s, params, actor)
    return z3.And(
        i["@move"] == move.index, system.in_state(src, s), system.actor_valid(s, i), system.params_valid(t1.event, i),
        system.permission(t1, i), system.permission(t2, i), ok1, g1, ok2, g2,
    )


def _escapes(system: System, t: Transition, name: str, s: State, i: Inputs) -> z3.BoolRef:
    options = []
    for move in system.moves_of.get(t.index, ()):
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
    end = replay_counterexample(spec, cex)
    assert inv.expr is not None
    try:
        value = spec.compiled(inv.expr)(end.values, {}, None, end.state)
    except EvaluationError:
        return True
    return bool(value) if inv.kind == "never" else not value


def _final_outcome(spec: Spec, cex: Counterexample) -> tuple[Any, Any]:
    end = replay_counterexample(spec, cex)
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
    end = replay_counterexample(spec, cex)
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


class _Run:
    """One symbolic check of a spec: the goals, the verdicts so far, and the stages that
    decide them, cheapest first."""

    def __init__(self, spec: Spec, system: System, prover: Prover, goals: list[Goal], budget: Budget) -> None:
        self.spec = spec
        self.system = system
        self.prover = prover
        self.goals = goals
        self.budget = budget
        self.by_key = {g.key: g for g in goals}
        self.verdicts: dict[tuple[str, ...], _Verdict] = {}

    def open(self, *, reach: bool | None = None) -> list[Goal]:
        return [g for g in self.goals if g.key not in self.verdicts and (reach is None or g.want_reachable is reach)]

    # -------------------------------------------------------------- stages

    def local(self) -> None:
        """Safety questions that no configuration inside the declared domains can violate
        (every reachable configuration lies inside them): one incremental solver, no
        unrolling — one query clears them all when none is possible."""
        group = self.open(reach=False)
        if not group:
            return
        prover = self.prover
        solver = z3.Solver()
        solver.add(self.system.domain(prover.x))
        terms = {g.key: prover.term(g.bad) for g in group}
        prover._ask(solver)
        solver.push()
        solver.add(z3.Or(list(terms.values())))
        answer = solver.check()
        solver.pop()
        if answer == z3.unsat:
            for goal in group:
                self.verdicts[goal.key] = _unreachable(goal, self.domains(goal))
            return
        if len(group) == 1:
            return
        for goal in group:
            prover._ask(solver)
            solver.push()
            solver.add(terms[goal.key])
            if solver.check() == z3.unsat:
                self.verdicts[goal.key] = _unreachable(goal, self.domains(goal))
            solver.pop()

    def domains(self, goal: Goal) -> str | None:
        """For an invariant the local check proved: the declared domains, which are an
        inductive invariant implying it, in the spec's language."""
        if goal.rule is not R.INVARIANT:
            return None
        system = self.system
        named = {key: z3.Const(key.replace("@state", "state"), term.sort()) for key, term in self.prover.x.items()}
        inv = next((i for i in self.spec.invariants if i.name == goal.subject), None)
        read = {n.name for n in _walk(inv.expr.tree) if isinstance(n, VarNode)} if inv is not None and inv.expr is not None else set()
        variables = [v for v in self.spec.variables if v.name in read]
        if not read or any(v.type.kind == "principal" for v in variables):
            return readable(system, z3.simplify(system.domain(named)))
        # The invariant reads only these variables, so their declared domains imply it.
        syms = system.var_syms(named)
        return readable(system, z3.simplify(z3.And([system.value_in(v.type, syms[v.name]) for v in variables])))

    def concrete(self) -> None:
        """Runs through the reference semantics (:mod:`.explore`): each finding is a run."""
        wanted = [g.key for g in self.open()]
        # Half the time left at most: the solver must keep time for what no run shows.
        found = explore(self.spec, wanted, self.budget.explore_steps, self.prover.deadline.share(0.5))
        for key, evidence in found.items():
            goal = self.by_key[key]
            cex = evidence.counterexample
            if goal.want_reachable:
                self.verdicts[key] = _shown(goal, cex)
            else:
                self.verdicts[key] = _confirmed(self.spec, goal, cex)

    def bounded(self, group: list[Goal]) -> None:
        """Short runs from the initial states (BMC); a witness run covers every state it passes
        through and every transition it fires."""
        if not group:
            return
        found, exhausted = self.prover.bmc({g.key: g.bad for g in group}, self.budget.bmc_depth)
        for key, witness in found.items():
            goal = self.by_key[key]  # type: ignore[index]
            if goal.key not in self.verdicts:
                self.witnessed(goal, witness)
        for key in exhausted:
            if key not in self.verdicts:
                self.verdicts[key] = _Verdict("unknown", "the solver ran out of budget in the bounded search")  # type: ignore[index]

    def witnessed(self, goal: Goal, witness: Witness) -> None:
        verdict = _witnessed(self.spec, self.system, goal, witness)
        self.verdicts[goal.key] = verdict
        if verdict.outcome == "proved" and verdict.counterexample is not None:
            self.cover(verdict.counterexample)

    def cover(self, cex: Counterexample) -> None:
        """Every open reachability goal a replayed run passes through is shown by its prefix."""
        steps = tuple(cex.steps) + ((cex.final,) if cex.final is not None else ())
        for n, step in enumerate(steps):
            prefix = steps[:n]
            for key, final in ((("state", step.state), None), (("fire", str(step.transition)), step)):
                goal = self.by_key.get(key)
                if goal is None or key in self.verdicts or (final is not None and step.kind == "error"):
                    continue
                if final is None:
                    shown = Counterexample(cex.spec, cex.context, (*prefix, step), None, cex.principals)
                else:
                    if n == len(steps) - 1 and cex.final is not None:
                        continue  # the final step of the run itself: the goal it was found for
                    shown = Counterexample(cex.spec, cex.context, prefix, step, cex.principals)
                self.verdicts[key] = _shown(goal, shown)

    def unbounded(self, group: list[Goal]) -> None:
        """Spacer, for the whole group at once; a group it cannot clear is halved."""
        group = [g for g in group if g.key not in self.verdicts]
        if not group:
            return
        answer = self.prover.spacer(*(g.bad for g in group))
        if answer.status == "safe":
            for goal in group:
                self.verdicts[goal.key] = _unreachable(goal, answer.invariant)
            return
        if len(group) > 1:
            half = len(group) // 2
            self.unbounded(group[:half])
            self.unbounded(group[half:])
            return
        (goal,) = group
        budget = self.budget
        if answer.status == "unknown":
            self.verdicts[goal.key] = _Verdict(
                "unknown",
                f"undecided: Spacer gave up ({answer.reason or 'no reason given'}); no violation within {budget.bmc_depth} steps",
                bound=budget.bmc_depth,
            )
            return
        found, _ = self.prover.bmc({goal.key: goal.bad}, budget.max_depth, start=budget.bmc_depth + 1)
        witness = found.get(goal.key)
        if witness is not None:
            self.witnessed(goal, witness)
        elif goal.want_reachable:
            verb = "can fire" if goal.rule is R.DEAD_TRANSITION else "is reachable"
            self.verdicts[goal.key] = _Verdict("proved", f"{goal.describe} {verb} (proved by Spacer; the shortest run is longer than {budget.max_depth} steps)")
        else:
            self.verdicts[goal.key] = _Verdict(
                "unknown",
                f"Spacer shows {goal.describe} can be violated, but no counterexample within {budget.max_depth} steps was found to show it",
                bound=budget.max_depth,
            )

    def stages(self) -> None:
        self.prover.deadline.check()
        # The stages before the unrolling solvers run only when the budget allows a concrete
        # step at all: a budget too small for the solver decides nothing.
        if self.budget.explore_steps > 0:
            self.concrete()
            self.local()
        # Safety goals usually hold: one Spacer query may settle them all, before any BMC.
        safety = self.open(reach=False)
        if safety:
            answer = self.prover.spacer(*(g.bad for g in safety))
            if answer.status == "safe":
                for goal in safety:
                    self.verdicts[goal.key] = _unreachable(goal, answer.invariant)
        self.bounded(self.open())
        self.unbounded(self.open(reach=False))
        self.unbounded(self.open(reach=True))


def check_symbolic(spec: Spec, budget: Budget | None = None) -> list[Result]:
    """Run every symbolic check on ``spec`` and return one result per question.

    Stages, cheapest first, each asked only what the earlier ones left open: concrete runs
    through the reference semantics; safety questions no configuration inside the declared
    domains can violate (one incremental solver, no unrolling); one Spacer query for all
    remaining safety questions; bounded runs (BMC); Spacer for the rest, halving a group it
    cannot clear. Once the budget's ``seconds`` (or the enclosing :func:`~.budget.overall` budget)
    are spent, the questions still open end ``unknown``."""
    budget = budget or Budget()
    deadline = Deadline(budget.seconds)
    too_big = oversized(spec)
    if too_big is not None:
        return [Result(R.SYMBOLIC, spec.name, "unknown", f"the data checks cannot run: {too_big}", spec.location())]
    try:
        system = System(spec)
        goals = _goals(spec, system)
        prover = Prover(system, budget, deadline)
        # Compile every expression now, so that a construct without an encoding stops here;
        # the terms are cached and reused by the goals and the relation, built when needed.
        for moves in system.moves_of.values():
            system.selected(moves[0], prover.x, prover.i)
        for goal in goals:
            if goal.rule is R.INVARIANT:
                prover.term(goal.bad)
        prover.initial  # noqa: B018
    except Unsupported as exc:
        return [Result(R.SYMBOLIC, spec.name, "unknown", f"the data checks cannot run: {exc}", spec.location())]
    except (ValueError, RecursionError, MemoryError, z3.Z3Exception) as exc:
        return [Result(R.SYMBOLIC, spec.name, "unknown", f"the data checks cannot run: the spec has no encoding for the solver ({_short(exc)})", spec.location())]
    run = _Run(spec, system, prover, goals, budget)
    try:
        run.stages()
    except OutOfTime:
        pass
    except (ValueError, RecursionError, z3.Z3Exception) as exc:
        reason = _short(exc)
        for goal in run.open():
            run.verdicts[goal.key] = _Verdict("unknown", f"undecided: the solver failed ({reason})")
    for goal in run.open():
        run.verdicts[goal.key] = _Verdict("unknown", "undecided: the time budget of the check ran out before this question was decided")
    return [_result(spec, goal, run.verdicts[goal.key]) for goal in goals]


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


#: Numbers beyond these sizes are refused by the data checks (the solver and `Fraction`
#: would take unbounded time and memory on them).
MAX_DIGITS = 1000
MAX_EXPONENT = 1000


def _too_big(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value.bit_length() > MAX_DIGITS * 4
    if isinstance(value, Decimal):
        if not value.is_finite():
            return False
        sign_digits_exp = value.as_tuple()
        exponent = sign_digits_exp.exponent
        return len(sign_digits_exp.digits) > MAX_DIGITS or (isinstance(exponent, int) and abs(exponent) > MAX_EXPONENT)
    if isinstance(value, frozenset | tuple | list):
        return any(_too_big(v) for v in value)
    return False


def oversized(spec: Spec) -> str | None:
    """A sentence naming the first number in ``spec`` too large for the solver, if any."""
    def types() -> Iterator[tuple[str, Type]]:
        for v in spec.variables:
            yield f"variable `{v.name}`", v.type
        for t in spec.transitions:
            for p in t.params:
                yield f"param `{p.name}` of {t.label}", p.type

    for where, declared in types():
        for bound in (declared.min, declared.max, declared.of.min if declared.of else None, declared.of.max if declared.of else None):
            if _too_big(bound):
                return f"a bound of {where} has too many digits to encode"
        if (declared.places or 0) > MAX_EXPONENT:
            return f"the `places` of {where} has too many digits to encode"
    for v in spec.variables:
        if _too_big(v.initial):
            return f"the initial value of variable `{v.name}` has too many digits to encode"
    for t in spec.transitions:
        for p in t.params:
            if _too_big(p.default):
                return f"the default of param `{p.name}` of {t.label} has too many digits to encode"
        for where, expr in ((f"the guard of {t.label}", t.guard), *((f"the assignment to `{n}` in {t.label}", e) for n, e in t.assign)):
            if expr is not None and any(isinstance(n, LiteralNode) and _too_big(n.value) for n in _walk(expr.tree)):
                return f"a number in {where} has too many digits to encode"
    for inv in spec.invariants:
        if inv.expr is not None and any(isinstance(n, LiteralNode) and _too_big(n.value) for n in _walk(inv.expr.tree)):
            return f"a number in invariant `{inv.name}` has too many digits to encode"
    return None


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
            if cex.final is not None:
                # The last step must happen with every runtime check, domains included.
                fired = replay_final_step(spec, cex)
                cex = replace(cex, final=replace(cex.final, values=dict(fired.values)))
            else:
                replay_counterexample(spec, cex)
        except ReplayError as exc:
            return _Verdict("unknown", f"the witness for {goal.describe} did not replay ({exc}); please report this")
        return _shown(goal, cex)
    return _confirmed(spec, goal, cex)


def _shown(goal: Goal, cex: Counterexample) -> _Verdict:
    steps = len(cex.steps) + (1 if cex.final is not None else 0)
    verb = "can fire" if goal.rule is R.DEAD_TRANSITION else "is reachable"
    return _Verdict("proved", f"{goal.describe} {verb}: a run of {steps} step{'s' if steps != 1 else ''} shows it", counterexample=cex)


def _confirmed(spec: Spec, goal: Goal, cex: Counterexample) -> _Verdict:
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
