"""Admission: each reason code, with a completion that is admitted and the shortest; the
certificate discharging invariants; open params decided for every value."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from railguard.gate_demo import PAYOUT_SPEC
from railguard.spec import load, loads
from railguard.verifier.admission import (
    REASON_CODES,
    AdmissionError,
    Admitted,
    Configuration,
    Gate,
    Principal,
    Rejected,
    new_instance,
)
from railguard.verifier.certificate import issue, sign
from railguard.verifier.checks import verify
from railguard.verifier.keys import generate_key
from railguard.verifier.plans import OPEN, Plan, PlanStep

from .conftest import EXAMPLES
from .explicit import domain
from .gatekit import WORKER, assert_shortest, plan, tiny

#: The issuer's key: tests sign their certificates, and the gate and engine trust it.
KEY = generate_key()


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate(tiny(), allow_unverified="tests: the tiny spec breaks its invariant on purpose")


def _reject(gate: Gate, p: Plan, principal: Principal = WORKER, goal: str | None = None) -> Rejected:
    answer = gate.admit(p, principal, new_instance(gate.spec), goal=goal)
    assert isinstance(answer, Rejected), answer
    return answer


CASES: list[tuple[str, Plan, Principal, str | None, int]] = [
    ("wrong-workflow", plan("deploy", "begin"), WORKER, None, 0),
    ("unknown-event", plan("tiny", "begin", "bogus"), WORKER, None, 1),
    ("not-enabled", plan("tiny", "finish"), WORKER, None, 0),
    ("permission-denied", plan("tiny", "begin", "approve"), WORKER, None, 1),
    ("bad-params", plan("tiny", "begin", ("step", {"k": 5})), WORKER, None, 1),
    ("guard-false", plan("tiny", "begin", "finish"), WORKER, None, 1),
    ("domain", plan("tiny", "begin", ("step", {"k": 2}), ("step", {"k": 2})), WORKER, None, 2),
    ("invariant", plan("tiny", "begin", ("step", {"k": 2}), ("step", {"k": 1})), WORKER, None, 2),
    ("incomplete", plan("tiny", "begin"), WORKER, "done", 1),
]


@pytest.mark.parametrize(("code", "p", "principal", "goal", "step"), CASES, ids=[c[0] for c in CASES])
def test_each_reason_code_names_the_step_and_offers_the_shortest_completion(gate: Gate, code: str, p: Plan, principal: Principal, goal: str | None, step: int) -> None:
    answer = _reject(gate, p, principal, goal)
    assert (answer.code, answer.step) == (code, step)
    assert answer.message
    if code == "wrong-workflow":
        assert answer.completion is None
        return
    assert answer.completion is not None
    assert_shortest(gate, p.steps[:step], answer.completion, principal, new_instance(gate.spec), goal)


def test_too_large_plans_are_rejected_before_any_step_runs() -> None:
    small = Gate(tiny(), allow_unverified="tests", max_steps=3)
    answer = _reject(small, plan("tiny", "begin", ("step", {"k": 1}), ("step", {"k": 1}), "finish"))
    assert (answer.code, answer.step) == ("too-large", 3)
    assert answer.completion is not None
    assert_shortest(small, (), answer.completion, WORKER, new_instance(small.spec))


def test_every_reason_code_is_exercised() -> None:
    assert {c[0] for c in CASES} | {"too-large"} == set(REASON_CODES)


def test_a_rejection_lists_the_events_this_principal_may_fire_there(gate: Gate) -> None:
    answer = _reject(gate, plan("tiny", "begin", "approve"))
    assert [o.event for o in answer.allowed] == ["step", "finish", "abort"]
    step = next(o for o in answer.allowed if o.event == "step")
    assert step.params["properties"]["k"] == {"type": "integer", "minimum": 1, "maximum": 2}


def test_an_admitted_plan_reports_its_path_transitions_and_values(gate: Gate) -> None:
    answer = gate.admit(plan("tiny", "begin", ("step", {"k": 2}), "finish"), WORKER, new_instance(gate.spec))
    assert isinstance(answer, Admitted)
    assert answer.path == ("start", "working", "working", "done")
    assert answer.transitions == (1, 2, 4)
    assert answer.values == {"n": 2, "ok": False}
    kinds = {o.kind for o in answer.discharged()}
    assert kinds == {"permission", "params", "guard", "domain", "invariant"}


def test_a_goal_that_is_not_a_state_is_unusable(gate: Gate) -> None:
    with pytest.raises(AdmissionError):
        gate.admit(plan("tiny", "begin"), WORKER, new_instance(gate.spec), goal="nowhere")


def test_a_finished_instance_admits_no_step(gate: Gate) -> None:
    done = Configuration("done", {"n": 2, "ok": False}, active=False)
    answer = gate.admit(plan("tiny", "abort"), WORKER, done)
    assert isinstance(answer, Rejected)
    assert answer.code == "not-enabled"
    assert answer.allowed == ()


def test_a_gate_needs_a_certificate_or_a_written_reason() -> None:
    with pytest.raises(AdmissionError):
        Gate(tiny())


def test_a_certificate_that_does_not_admit_the_spec_is_refused() -> None:
    spec = tiny()
    report = verify(spec)
    assert report.failed
    with pytest.raises(AdmissionError):
        Gate(spec, issue(report))


def test_the_certificate_discharges_the_invariants_it_proves() -> None:
    spec = load(EXAMPLES / "refund.yaml")
    gate = Gate(spec, sign(issue(verify(spec)), KEY), trusted_keys=[KEY])
    assert gate.checked == ()
    alice = Principal("alice", frozenset({"support"}))
    answer = gate.admit(Plan("refund", (PlanStep("request", {"amount": 100}),)), alice, new_instance(spec))
    assert isinstance(answer, Admitted)
    assert answer.certificate is not None
    assert answer.certificate.startswith("sha256:")
    assert {o.by for o in answer.discharged() if o.kind == "invariant"} == {"certificate"}


def test_skipping_the_four_eyes_approval_is_not_admitted() -> None:
    spec = load(EXAMPLES / "refund.yaml")
    gate = Gate(spec, sign(issue(verify(spec)), KEY), trusted_keys=[KEY])
    erin = Principal("erin", frozenset({"support", "manager", "payments"}))
    answer = gate.admit(Plan("refund", (PlanStep("request", {"amount": 100}), PlanStep("approve"), PlanStep("pay"))), erin, new_instance(spec))
    assert isinstance(answer, Rejected)
    assert (answer.code, answer.step) == ("guard-false", 1)
    assert answer.completion is None  # erin cannot approve her own request, ever


def test_an_actor_cannot_be_the_system() -> None:
    gate = Gate(tiny(), allow_unverified="tests")
    answer = gate.admit(plan("tiny", "begin"), Principal("system", frozenset({"worker"})), new_instance(gate.spec))
    assert isinstance(answer, Rejected)
    assert answer.code == "permission-denied"


# ---------------------------------------------------------------------- symbolic

PAYOUT = PAYOUT_SPEC
CONTEXT = {"payees": ["acme", "jane"], "limit": 1000}
AGENT = Principal("ava", frozenset({"agent", "payments"}))


@pytest.fixture(scope="module")
def payout() -> Gate:
    return Gate(load(PAYOUT), allow_unverified="tests: admission is what is under test")


def test_an_open_param_that_every_value_satisfies_is_admitted() -> None:
    spec = load(EXAMPLES / "deploy.yaml")
    gate = Gate(spec, allow_unverified="tests")
    ci = Principal("c", frozenset({"author", "ci"}))
    answer = gate.admit(Plan("deploy", (PlanStep("submit", {"environment": OPEN}), PlanStep("report_green"))), ci, new_instance(spec))
    assert isinstance(answer, Admitted)
    assert answer.symbolic
    assert answer.values is None
    assert answer.path == ("draft", "testing", "review")
    assert any(o.by == "z3" for o in answer.discharged())


def test_an_open_amount_that_can_exceed_the_limit_is_rejected_with_a_breaking_value(payout: Gate) -> None:
    answer = payout.admit(Plan("payout", (PlanStep("propose", {"amount": OPEN, "payee": "jane"}),)), AGENT, new_instance(payout.spec, CONTEXT))
    assert isinstance(answer, Rejected)
    assert answer.code == "guard-false"
    ((step, param, value),) = answer.breaking
    assert (step, param) == (0, "amount")
    assert value > 1000


def test_an_open_payee_is_checked_against_the_context_set(payout: Gate) -> None:
    answer = payout.admit(Plan("payout", (PlanStep("propose", {"amount": 10, "payee": OPEN}),)), AGENT, new_instance(payout.spec, CONTEXT))
    assert isinstance(answer, Rejected)
    ((_, param, value),) = answer.breaking
    assert param == "payee"
    assert value not in CONTEXT["payees"]


SMALL = """
railguard: 1
name: small
roles:
  r: [p]
variables:
  x: {type: int, min: 0, max: 6, initial: 1}
  mode: {type: enum, values: [a, b, c], initial: a}
states:
  s0: {initial: true}
  s1: {}
  ok: {terminal: success}
  ko: {terminal: failure}
on_error: ko
transitions:
  - event: go
    from: s0
    to: s1
    permission: p
    params:
      k: {type: int, min: 0, max: 4}
      m: {type: enum, values: [a, b, c]}
    guard: params.k + x <= GUARD or params.m == "c"
    assign:
      x: x + params.k
      mode: params.m
  - event: end
    from: s1
    to: ok
    permission: p
    guard: x % 2 == 0 or mode == "b"
"""


@pytest.mark.parametrize("bound", [0, 3, 5, 6])
@pytest.mark.parametrize("open_k", [True, False])
@pytest.mark.parametrize("open_m", [True, False])
def test_symbolic_admission_agrees_with_enumerating_the_open_values(bound: int, open_k: bool, open_m: bool) -> None:
    spec = loads(SMALL.replace("GUARD", str(bound)))
    gate = Gate(spec, allow_unverified="tests")
    me = Principal("me", frozenset({"r"}))
    ks = domain(spec.transitions[0].params[0].type) if open_k else [2]
    ms = domain(spec.transitions[0].params[1].type) if open_m else ["a"]
    params: dict[str, Any] = {"k": OPEN if open_k else 2, "m": OPEN if open_m else "a"}
    symbolic = gate.admit(Plan("small", (PlanStep("go", params), PlanStep("end"))), me, new_instance(spec))
    every = all(
        isinstance(gate.admit(Plan("small", (PlanStep("go", {"k": k, "m": m}), PlanStep("end"))), me, new_instance(spec)), Admitted)
        for k, m in itertools.product(ks, ms)
    )
    assert isinstance(symbolic, Admitted) == every
    if isinstance(symbolic, Rejected) and symbolic.breaking:
        found = {p: v for _, p, v in symbolic.breaking}
        concrete = {"k": found.get("k", 2), "m": found.get("m", "a")}
        broken = gate.admit(Plan("small", (PlanStep("go", concrete), PlanStep("end"))), me, new_instance(spec))
        assert isinstance(broken, Rejected)


# ---------------------------------------------------------------------- encodings


def test_a_context_set_of_str_has_a_z3_encoding_and_the_payout_spec_is_proved() -> None:
    report = verify(load(PAYOUT))
    assert not report.failed
    assert {r.outcome for r in report.results} == {"proved"}


def test_len_of_a_set_of_str_is_unknown_for_a_missing_encoding_not_for_the_budget() -> None:
    from railguard.verifier.report import FileOutcome, to_text

    spec = loads(PAYOUT.read_text().replace("guard: params.payee in payees and params.amount <= limit", "guard: params.payee in payees and len(payees) <= 3"))
    report = verify(spec)
    (unknown,) = [r for r in report.results if r.outcome == "unknown"]
    assert unknown.rule.id == "RG400"
    assert "`len` of a set of str" in unknown.message
    text = to_text([FileOutcome("payout.yaml", report)])
    assert "no Z3 encoding yet" in text
    assert "--rlimit" not in text


# ---------------------------------------------------------------------- soundness

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from railguard.spec import Spec  # noqa: E402
from railguard.verifier.admission import _REFUSAL_TO_REASON  # noqa: E402
from railguard.verifier.strategies import loaded_specs  # noqa: E402


@st.composite
def _specs_and_plans(draw: st.DrawFn) -> tuple[Spec, frozenset[str], Plan]:
    spec = draw(loaded_specs(max_states=5, max_vars=3, max_transitions=8))
    roles = frozenset(draw(st.sets(st.sampled_from([r.name for r in spec.roles]))))
    events = [*spec.events, "nonsense"]
    steps = []
    for _ in range(draw(st.integers(0, 6))):
        event = draw(st.sampled_from(events))
        params: dict[str, Any] = {}
        for param in next((t.params for t in spec.transitions if t.event == event), ()):
            if param.type.kind == "principal":
                params[param.name] = draw(st.sampled_from(["me", "you"]))
            else:
                values = domain(param.type)
                params[param.name] = draw(st.sampled_from(values)) if values else None
        if params and draw(st.booleans()):
            params[next(iter(params))] = draw(st.sampled_from([True, "x", 10**6]))
        steps.append(PlanStep(event, params))
    return spec, roles, Plan(spec.name, tuple(steps))


def _engine(spec: Spec, roles: frozenset[str]) -> Any:
    from railguard.runtime import Effects, SQLiteStore, StaticDirectory
    from railguard.runtime.engine import Engine

    effects = Effects()
    for name in {n for t in spec.transitions for n in (t.effect, t.compensate) if n is not None}:
        effects.register(name, lambda call: {})
    return Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"me": sorted(roles)}), effects=effects, allow_unverified="soundness test")


def _invariant_broken(spec: Spec, state: str, values: Any) -> bool:
    from railguard.spec.errors import EvaluationError

    for inv in spec.invariants:
        if inv.expr is None:
            continue
        try:
            holds = bool(spec.compiled(inv.expr)(values, {}, None, state))
        except EvaluationError:
            return True
        if holds != (inv.kind == "always"):
            return True
    return False


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_specs_and_plans())
def test_admission_agrees_with_the_runtime_step_by_step(case: tuple[Spec, frozenset[str], Plan]) -> None:
    spec, roles, p = case
    if any(v.context and v.initial is None and v.type.kind != "principal" for v in spec.variables):
        return
    gate = Gate(spec, allow_unverified="soundness test")
    answer = gate.admit(p, Principal("me", roles), new_instance(spec))
    engine = _engine(spec, roles)
    engine.start("i", "me")
    limit = len(p.steps) if isinstance(answer, Admitted) else answer.step
    seen: set[str] = set()
    for step in p.steps[:limit]:
        result = engine.fire("i", step.event, "me", dict(step.params))
        assert result.accepted, (step, result.reason)
        seen.add(step.event)
    end = engine.get("i")
    if isinstance(answer, Admitted):
        assert end.state == answer.end
        assert dict(end.values) == dict(answer.values or {})
        return
    step = p.steps[answer.step]
    before = engine.get("i")
    result = engine.fire("i", step.event, "me", dict(step.params))
    if answer.code == "invariant":
        precedes = [inv for inv in spec.invariants if inv.kind == "precedes" and inv.then == step.event and inv.first not in seen]
        assert result.accepted
        assert precedes or _invariant_broken(spec, result.state, engine.get("i").values)
    else:
        assert not result.accepted
        assert _REFUSAL_TO_REASON[result.code or ""] == answer.code
        assert engine.get("i").state == before.state


from railguard.spec.expr import Literal as LiteralNode  # noqa: E402
from railguard.spec.expr import children  # noqa: E402
from railguard.verifier.strategies import environments, expressions, scopes  # noqa: E402


def _strings(node: Any) -> list[str]:
    found = [node.value] if isinstance(node, LiteralNode) and isinstance(node.value, str) else []
    for child in children(node):
        found += _strings(child)
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_the_z3_encoding_with_scaled_decimals_agrees_with_the_evaluator(data: st.DataObject) -> None:
    import z3
    from hypothesis import assume

    from railguard.spec.errors import EvaluationError
    from railguard.spec.evaluate import evaluate
    from railguard.verifier.z3expr import Codes, compile_z3, literal_sym

    scope = data.draw(scopes(transition=False, decimals=True, sets=True))
    assume(all(t.kind != "principal" for t in scope.variables.values()))
    kind = data.draw(st.sampled_from(["bool", "decimal"]))
    node = data.draw(expressions(scope, kind, max_depth=3))
    env = data.draw(environments(scope))
    names = [*scope.states, *_strings(node)]
    for declared in scope.variables.values():
        names += list(declared.values) + (list(declared.of.values) if declared.of is not None else [])
    codes = Codes(names)
    syms = {n: literal_sym(v, scope.variables[n], codes) for n, v in env.variables.items()}
    state = z3.IntVal(codes[env.state]) if env.state else z3.IntVal(-1)
    sym = compile_z3(node, syms, {}, None, state, codes)
    try:
        expected = evaluate(node, env.variables, {}, None, env.state)
    except EvaluationError:
        assert z3.is_false(z3.simplify(sym.ok))
        return
    assert z3.is_true(z3.simplify(sym.ok))
    if kind == "bool":
        assert z3.is_true(z3.simplify(sym.term)) == bool(expected)
        return
    value = z3.simplify(sym.term)
    if sym.kind == "int":
        assert value.as_long() == expected
    elif sym.scale is not None:
        assert Decimal(f"{value.as_long()}E-{sym.scale}") == expected
    else:
        fraction = value.as_fraction()
        assert Decimal(fraction.numerator) / Decimal(fraction.denominator) == expected



from railguard.verifier.strategies import specs  # noqa: E402

from .explicit import explore  # noqa: E402
from .test_crosscheck import BUDGET, explicit_verdicts, z3_verdicts  # noqa: E402


@pytest.mark.slow
@settings(max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs(decimals=True, max_transitions=6))
def test_z3_verdicts_with_scaled_decimals_equal_the_explicit_search(document: dict[str, Any]) -> None:
    from railguard.spec import load_data

    from .explicit import TooLarge

    spec = load_data(document)
    try:
        found = explore(spec)
    except TooLarge:
        return  # domains too wide to enumerate: nothing to compare against
    # RG402 counts only steps whose new values stay in their domains, the explicit search
    # counts every selected step: transitions with an escaping assignment are left out here.
    escaping = {f"transition {index} " for index, _ in found.escapes}

    def kept(verdicts: Any) -> Any:
        return {k: n for k, n in verdicts.items() if not (k[0] == "RG402" and any(k[1].startswith(e) for e in escaping))}

    assert kept(z3_verdicts(verify(spec, BUDGET))) == kept(explicit_verdicts(spec, found))


@st.composite
def _plans_with_an_open_param(draw: st.DrawFn) -> tuple[Spec, frozenset[str], Plan, int, str, list[Any]]:
    spec, roles, p = draw(_specs_and_plans())
    choices = [
        (i, name, domain(param.type))
        for i, step in enumerate(p.steps)
        for param in next((t.params for t in spec.transitions if t.event == step.event), ())
        for name in [param.name]
        if param.type.kind in ("int", "enum", "bool") and name in step.params
    ]
    assume(choices)
    index, name, values = draw(st.sampled_from(choices))
    steps = list(p.steps)
    steps[index] = PlanStep(steps[index].event, {**steps[index].params, name: OPEN})
    return spec, roles, Plan(p.workflow, tuple(steps)), index, name, values


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_plans_with_an_open_param())
def test_symbolic_admission_agrees_with_enumerating_generated_plans(case: tuple[Spec, frozenset[str], Plan, int, str, list[Any]]) -> None:
    spec, roles, p, index, name, values = case
    if any(v.context and v.initial is None and v.type.kind != "principal" for v in spec.variables):
        return
    gate = Gate(spec, allow_unverified="soundness test")
    me = Principal("me", roles)
    symbolic = gate.admit(p, me, new_instance(spec))

    def instance(value: Any) -> Plan:
        steps = list(p.steps)
        steps[index] = PlanStep(steps[index].event, {**steps[index].params, name: value})
        return Plan(p.workflow, tuple(steps))

    answers = [gate.admit(instance(v), me, new_instance(spec)) for v in values]
    paths = {a.path for a in answers if isinstance(a, Admitted)}
    every = all(isinstance(a, Admitted) for a in answers)
    if isinstance(symbolic, Admitted):
        # sound: every value is admitted, along the one path admission claims
        assert every
        assert paths == {symbolic.path}
    elif every and len(paths) == 1:
        # complete whenever the values share one path (a path that forks is refused on purpose)
        pytest.fail(f"every value is admitted along one path, but symbolic admission said {symbolic.code}: {symbolic.message}")
    for step, param, value in symbolic.breaking if isinstance(symbolic, Rejected) else ():
        if (step, param) == (index, name):
            assert not isinstance(gate.admit(instance(value), me, new_instance(spec)), Admitted)


# ---------------------------------------------------------------------- the fire-loop oracle

from railguard.spec.semantics import Fired, Refusal, fire, signature  # noqa: E402
from railguard.verifier.admission import MAX_MESSAGE, _screen  # noqa: E402

from .test_stepper import RICH, _params_of, exact  # noqa: E402


def _broken_by(spec: Spec, state: str, values: Any, seen: frozenset[str], event: str) -> bool:
    """Whether the configuration after a step of ``event`` breaks one of ``spec``'s
    invariants (a ``precedes`` one by ``event`` coming before its ``first``)."""
    from railguard.spec.errors import EvaluationError

    for inv in spec.invariants:
        if inv.kind == "precedes":
            if event == inv.then and inv.first not in seen:
                return True
            continue
        assert inv.expr is not None
        try:
            holds = bool(spec.compiled(inv.expr)(values, {}, None, state))
        except EvaluationError:
            return True
        if holds != (inv.kind == "always"):
            return True
    return False


def _fire_loop(spec: Spec, p: Plan, principal: Principal, start: Any) -> tuple[Any, ...]:
    """What admission must answer, from nothing but one :func:`fire` call per step and the
    invariants: ``("admitted", path, transitions, values)`` or ``("rejected", step, code,
    refusal)``."""
    state, values, seen = start.state, start.values, start.seen
    terminals = {s.name for s in spec.states if s.terminal is not None}
    path, taken = [state], []
    for index, step in enumerate(p.steps):
        if state in terminals:
            return ("rejected", index, "not-enabled", None)
        params, problem = _screen(spec, step.event, step.params)
        if problem is not None:
            return ("rejected", index, "bad-params", None)
        outcome = fire(spec, state, values, step.event, principal.id, principal.roles, params)
        if isinstance(outcome, Refusal):
            return ("rejected", index, _REFUSAL_TO_REASON[outcome.code], outcome)
        if _broken_by(spec, outcome.target, outcome.values, seen, step.event):
            return ("rejected", index, "invariant", None)
        seen = seen | {step.event}
        state, values = outcome.target, outcome.values
        path.append(state)
        taken.append(outcome.transition.index)
    return ("admitted", tuple(path), tuple(taken), values)


@st.composite
def _plans_for_the_loop(draw: st.DrawFn) -> tuple[Spec, Principal, Plan, dict[str, Any]]:
    """A spec (the stepper tests' spec of every param kind, or a generated one), a principal
    and a plan that mostly follows the machine — each step usually an event enabled where the
    steps before it lead, with params from its domains — and now and then goes wrong: a
    param of another type or shape, an object for a value, an event that is not enabled or
    does not exist."""
    from railguard.verifier.strategies import params as param_values

    rich = draw(st.booleans())
    spec = loads(RICH) if rich else draw(loaded_specs(max_states=5, max_vars=4, max_transitions=8, max_params=3, sets=True, decimals=True))
    context: dict[str, Any] = {"names": ["ann", "bo"], "nums": [1, 2, -1, 5], "flags": [True], "rates": ["1.25", 2]} if rich else {}
    names = [r.name for r in spec.roles]
    roles = frozenset(names) if draw(st.integers(0, 2)) else frozenset(draw(st.sets(st.sampled_from([*names, "ghost"]))))
    principal = Principal("alice", roles)
    if any(v.context and v.initial is None and v.type.kind != "principal" for v in spec.variables):
        return spec, principal, Plan(spec.name, ()), context  # (generated specs have no context)
    start = new_instance(spec, context)
    state, values = start.state, start.values
    seen: frozenset[str] = frozenset()
    clean = draw(st.booleans())  # keep only the steps that happen: plans that are admitted
    steps = []
    for _ in range(draw(st.integers(0, 12))):
        enabled = sorted({t.event for t in spec.transitions_from(state)})
        if enabled and (clean or draw(st.integers(0, 4))):
            event = draw(st.sampled_from(enabled))
            params = dict(draw(param_values(spec, event))) if clean or draw(st.integers(0, 3)) else draw(_params_of(spec, event, ["alice", "ann"]))
        else:
            event = draw(st.sampled_from([*spec.events, "nonsense"]))
            params = draw(_params_of(spec, event, ["alice", "ann"])) if event in spec.events else {}
        if params and draw(st.integers(0, 19)) == 0:
            params[next(iter(params))] = {"an": "object"}
        for param in signature(spec, event).values() if event in spec.events else ():
            if not param.required and draw(st.integers(0, 2)) == 0:
                params[param.name] = None  # what OpenAI's strict mode sends for "no value"
        screened, problem = _screen(spec, event, params)
        outcome = fire(spec, state, values, event, principal.id, roles, screened) if problem is None else None
        happens = isinstance(outcome, Fired) and not _broken_by(spec, outcome.target, outcome.values, seen, event)
        if clean and not happens:
            continue
        steps.append(PlanStep(event, params))
        if isinstance(outcome, Fired):
            state, values, seen = outcome.target, outcome.values, seen | {event}
    return spec, principal, Plan(spec.name, tuple(steps)), context


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_plans_for_the_loop())
def test_admission_agrees_with_a_plain_loop_of_fire_calls(case: tuple[Spec, Principal, Plan, dict[str, Any]]) -> None:
    spec, principal, p, context = case
    assume(not any(v.context and v.initial is None and v.type.kind != "principal" for v in spec.variables))
    start = new_instance(spec, context)
    answer = Gate(spec, allow_unverified="oracle test").admit(p, principal, start)
    expected = _fire_loop(spec, p, principal, start)
    if expected[0] == "admitted":
        assert isinstance(answer, Admitted), answer
        assert (answer.path, answer.transitions) == (expected[1], expected[2])
        assert exact(answer.values) == exact(expected[3])
        return
    assert isinstance(answer, Rejected)
    _, step, code, refusal = expected
    assert (answer.step, answer.code) == (step, code)
    if refusal is not None and refusal.code in ("bad-params", "guard-false", "guard-error", "assign-error", "domain"):
        # The step function's own sentence, as the runtime would refuse the step.
        text = f"step {step + 1}: {refusal.message}"
        assert answer.message == (text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…")


def test_an_admitted_plan_that_changes_no_value_does_not_hand_back_the_callers_values() -> None:
    spec = load(PAYOUT_SPEC)
    gate = Gate(spec, allow_unverified="values test")
    ava = Principal("ava", frozenset({"agent"}))
    proposed = gate.admit(Plan("payout", (PlanStep("propose", {"amount": 10, "payee": "jane"}),)), ava, new_instance(spec, {"payees": ["jane"], "limit": 100}))
    assert isinstance(proposed, Admitted)
    start = Configuration("proposed", dict(proposed.values or {}))
    answer = gate.admit(Plan("payout", (PlanStep("check_payee", {"payee": "jane"}),) * 3), ava, start)
    assert isinstance(answer, Admitted)
    assert answer.path == ("proposed",) * 4
    assert answer.values == start.values
    assert answer.values is not start.values


def test_plans_naming_events_the_spec_lacks_do_not_grow_the_gates_cache(gate: Gate) -> None:
    me = Principal("w", frozenset({"worker"}))
    start = new_instance(gate.spec)
    for i in range(50):
        answer = gate.admit(Plan("tiny", (PlanStep(f"made-up-{i}"),)), me, start)
        assert isinstance(answer, Rejected)
        assert answer.code == "unknown-event"
    assert gate.admit(Plan("tiny", (PlanStep("begin"),)), me, start).admitted
    assert ("start", "begin") in gate._deciders
    assert {event for _, event in gate._deciders} <= set(gate.spec.events)
