"""The engine: results as data, fail-closed refusals, effects and compensation, timeouts,
operators, certificates, determinism — and a fuzzer that only ever sees allowed changes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from railguard.runtime import (
    CertificateRequired,
    Engine,
    ExecutionError,
    InstanceExists,
    ManualClock,
    RetryPolicy,
    SQLiteStore,
    StaticDirectory,
    UnknownInstance,
    verify_chain,
)
from railguard.spec import Spec, load, loads
from railguard.spec.semantics import Fired, fire

from .conftest import EXAMPLES
from .fakes import PEOPLE, Ledger


def engine(spec: Spec, path: Path | str = ":memory:", ledger: Ledger | None = None, **kw: Any) -> Engine:
    ledger = ledger or Ledger()
    kw.setdefault("clock", ManualClock())
    kw.setdefault("allow_unverified", "engine tests")
    kw.setdefault("retry", RetryPolicy(attempts=2, backoff=1.0))
    return Engine(spec, SQLiteStore(path), PEOPLE, effects=ledger.effects(spec), **kw)


@pytest.fixture(scope="module")
def refund() -> Spec:
    return load(EXAMPLES / "refund.yaml")


@pytest.fixture(scope="module")
def order() -> Spec:
    return load(EXAMPLES / "order.yaml")


def test_a_refund_runs_to_paid_and_every_call_returns_its_record(refund: Spec) -> None:
    ledger = Ledger()
    e = engine(refund, ledger=ledger)
    assert e.start("r1", "sam").state == "draft"
    requested = e.fire("r1", "request", "sam", {"amount": 120})
    assert (requested.accepted, requested.state, requested.values["requested_by"]) == (True, "requested", "sam")
    assert e.fire("r1", "approve", "mia").state == "approved"
    paid = e.fire("r1", "pay", "pay")
    assert (paid.state, paid.status) == ("paid", "done")
    assert [r.kind for r in paid.records] == ["effect-call", "step"]
    assert ledger.calls == [("payments.refund", paid.records[0].payload["effect"]["key"], 1)]
    assert [r.kind for r in e.history("r1")] == ["start", "step", "step", "effect-call", "step"]
    assert verify_chain(e.store.audit()) is None


def test_a_refused_step_changes_nothing_but_is_audited(refund: Spec) -> None:
    e = engine(refund)
    e.start("r1", "sam")
    e.fire("r1", "request", "sam", {"amount": 120})
    before = e.get("r1")
    refused = e.fire("r1", "approve", "sam")
    assert (refused.accepted, refused.code) == (False, "permission-denied")
    after = e.get("r1")
    assert (after.state, dict(after.values)) == (before.state, dict(before.values))
    assert after.version == before.version + 1
    record = refused.records[-1].payload
    assert record["kind"] == "refusal"
    assert record["decision"] == {"allowed": False, "code": "permission-denied", "reason": refused.reason}


def test_self_approval_is_refused_with_the_guard_named(refund: Spec) -> None:
    e = engine(refund)
    e.start("r1", "max")
    e.fire("r1", "request", "max", {"amount": 50})
    refused = e.fire("r1", "approve", "max")
    assert refused.code == "guard-false"
    assert "actor != requested_by" in refused.reason
    assert e.get("r1").state == "requested"


@pytest.mark.parametrize(("event", "params", "code"), [
    ("request", {"amount": 0}, "bad-params"),
    ("request", {"amount": 6000}, "guard-false"),
    ("request", {"amount": 10, "note": "x"}, "bad-params"),
    ("request", {}, "bad-params"),
    ("pay", {}, "not-enabled"),
    ("teleport", {}, "unknown-event"),
])
def test_bad_steps_are_refused_with_a_reason_code(refund: Spec, event: str, params: dict[str, Any], code: str) -> None:
    e = engine(refund)
    e.start("r1", "sam")
    result = e.fire("r1", event, "sam", params)
    assert (result.accepted, result.code, result.state) == (False, code, "draft")


def test_the_system_identity_and_strangers_cannot_act(refund: Spec) -> None:
    e = engine(refund)
    e.start("r1", "sam")
    assert e.fire("r1", "request", "system", {"amount": 1}).code == "permission-denied"
    assert e.fire("r1", "request", "eve", {"amount": 1}).code == "permission-denied"


def test_a_failed_charge_releases_the_reservation_and_rests_in_failed(order: Spec) -> None:
    ledger = Ledger("payments.charge")
    e = engine(order, ledger=ledger)
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 100})
    e.fire("o1", "reserve", "bot")
    result = e.fire("o1", "charge", "bot")
    assert (result.accepted, result.code, result.state, result.status) == (False, "error-exit", "failed", "done")
    assert [(name, attempt) for name, _, attempt in ledger.calls] == [
        ("inventory.reserve", 1), ("payments.charge", 1), ("payments.charge", 2), ("inventory.release", 1),
    ]
    assert [r.kind for r in e.history("o1")][-3:] == ["effect-failed", "compensation", "error-exit"]
    assert e.clock.now().timestamp() - 1767225600 == 1.0  # one backoff of 1 s on the manual clock


def test_compensations_run_in_reverse_order_when_shipping_fails(order: Spec) -> None:
    ledger = Ledger("shipping.dispatch")
    e = engine(order, ledger=ledger)
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 100})
    e.fire("o1", "reserve", "bot")
    e.fire("o1", "charge", "bot")
    result = e.fire("o1", "ship", "bot")
    assert result.state == "failed"
    undo = [name for name, _, _ in ledger.calls if name in ("payments.refund", "inventory.release")]
    assert undo == ["payments.refund", "inventory.release"]


def test_cancelling_after_a_charge_refunds_before_resting_in_cancelled(order: Spec) -> None:
    ledger = Ledger()
    e = engine(order, ledger=ledger)
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 100})
    e.fire("o1", "reserve", "bot")
    e.fire("o1", "charge", "bot")
    result = e.fire("o1", "cancel", "cus")
    assert (result.state, result.status) == ("cancelled", "done")
    assert [name for name, _, _ in ledger.calls][-2:] == ["payments.refund", "inventory.release"]


def test_a_compensation_that_cannot_complete_leaves_the_instance_visibly_stuck(order: Spec) -> None:
    ledger = Ledger("payments.charge", "inventory.release")
    e = engine(order, ledger=ledger)
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 100})
    e.fire("o1", "reserve", "bot")
    stuck = e.fire("o1", "charge", "bot")
    assert (stuck.status, stuck.state, stuck.code) == ("stuck", "reserved", "stuck")
    assert e.get("o1").owed == ("inventory.release",)
    assert e.fire("o1", "cancel", "cus").code == "busy"
    assert e.retry_stuck("o1", "cus").code == "permission-denied"
    ledger.failing.clear()
    fixed = e.retry_stuck("o1", "ops")
    assert (fixed.state, fixed.status) == ("failed", "done")
    assert verify_chain(e.store.audit()) is None


def test_an_operator_abort_runs_compensations_and_others_may_not_abort(order: Spec) -> None:
    ledger = Ledger()
    e = engine(order, ledger=ledger)
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 100})
    e.fire("o1", "reserve", "bot")
    assert e.abort("o1", "cus", "changed my mind").code == "permission-denied"
    aborted = e.abort("o1", "ops", "fraud suspected")
    assert (aborted.state, aborted.status) == ("failed", "done")
    assert ledger.calls[-1][0] == "inventory.release"


TIMEOUT_SPEC = """
railguard: 1
name: approval
roles: {clerk: [a.submit, a.approve]}
states:
  open: {initial: true, timeout: {after: 1h, event: expire}}
  waiting: {timeout: {after: 15m}}
  done: {terminal: success}
  expired: {terminal: failure}
on_error: expired
transitions:
  - {event: submit, from: open, to: waiting, permission: a.submit}
  - {event: expire, from: open, to: expired, permission: a.approve}
  - {event: approve, from: waiting, to: done, permission: a.approve}
"""


def test_timeouts_fire_their_event_as_the_system_on_the_injected_clock() -> None:
    spec = loads(TIMEOUT_SPEC)
    clock = ManualClock()
    e = Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"c": ["clerk"]}), clock=clock, allow_unverified="test")
    e.start("a1", "c")
    clock.advance(3599)
    assert e.run_due() == []
    clock.advance(2)
    (result,) = e.run_due()
    assert (result.state, result.accepted) == ("expired", True)
    assert e.history("a1")[-1].payload["actor"] == "system"


def test_a_timeout_without_event_takes_the_error_exit_and_a_stale_timer_does_nothing() -> None:
    spec = loads(TIMEOUT_SPEC)
    clock = ManualClock()
    e = Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"c": ["clerk"]}), clock=clock, allow_unverified="test")
    e.start("a1", "c")
    e.start("a2", "c")
    e.fire("a1", "submit", "c")
    e.fire("a2", "submit", "c")
    e.fire("a2", "approve", "c")
    clock.advance(16 * 60)
    results = e.run_due()
    assert [(r.instance, r.state, r.code) for r in results] == [("a1", "expired", "error-exit")]
    assert e.get("a2").state == "done"


def test_the_engine_refuses_a_spec_without_certificate_unless_the_opt_out_is_written(refund: Spec) -> None:
    with pytest.raises(CertificateRequired, match="has no certificate"):
        Engine(refund, SQLiteStore(":memory:"), PEOPLE, effects=Ledger().effects(refund))
    with pytest.raises(CertificateRequired):
        Engine(refund, SQLiteStore(":memory:"), PEOPLE, effects=Ledger().effects(refund), allow_unverified="  ")
    e = engine(refund, allow_unverified="local experiment")
    start = e.start("r1", "sam").records[0].payload
    assert start["certificate"] == {"verified": False, "opt_out": "local experiment"}


def test_an_unbound_effect_is_refused_before_anything_runs(refund: Spec) -> None:
    with pytest.raises(ExecutionError, match=r"payments\.refund"):
        Engine(refund, SQLiteStore(":memory:"), PEOPLE, allow_unverified="test")


def test_unknown_and_duplicate_instances_are_errors(refund: Spec) -> None:
    e = engine(refund)
    with pytest.raises(UnknownInstance):
        e.fire("nope", "request", "sam")
    e.start("r1", "sam")
    with pytest.raises(InstanceExists):
        e.start("r1", "sam")


CONTEXT_SPEC = """
railguard: 1
name: transfer
roles: {client: [t.send]}
variables:
  payees: {type: set, of: {type: enum, values: [alice, bob, carol]}, context: true}
  limit: {type: decimal, min: 0, max: 1000, places: 2, context: true}
  sent: {type: decimal, min: 0, max: 1000, places: 2, initial: 0}
states:
  open: {initial: true}
  sent: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - event: send
    from: open
    to: sent
    permission: t.send
    params:
      to: {type: enum, values: [alice, bob, carol]}
      amount: {type: decimal, min: 0.01, max: 1000, places: 2}
    guard: params.to in payees and params.amount <= limit
    assign: {sent: params.amount}
"""


def test_context_variables_are_supplied_at_start_and_checked() -> None:
    spec = loads(CONTEXT_SPEC)
    e = Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"c": ["client"]}), allow_unverified="test")
    with pytest.raises(ExecutionError, match="limit"):
        e.start("t0", "c", {"payees": ["alice"]})
    with pytest.raises(ExecutionError, match="payees"):
        e.start("t0", "c", {"payees": ["mallory"], "limit": "100"})
    e.start("t1", "c", {"payees": ["alice"], "limit": "100.00"})
    assert e.fire("t1", "send", "c", {"to": "bob", "amount": "5"}).code == "guard-false"
    assert e.fire("t1", "send", "c", {"to": "alice", "amount": "500"}).code == "guard-false"
    sent = e.fire("t1", "send", "c", {"to": "alice", "amount": "99.99"})
    assert sent.state == "sent"
    assert e.get("t1").values["sent"] == Decimal("99.99")


def script(e: Engine) -> None:
    e.start("r1", "sam")
    e.fire("r1", "request", "sam", {"amount": 120})
    e.fire("r1", "approve", "sam")
    e.fire("r1", "approve", "mia")
    e.fire("r1", "pay", "pay")
    e.fire("r1", "pay", "pay")


def test_the_same_inputs_give_byte_identical_audit_payloads(tmp_path: Path, refund: Spec) -> None:
    runs = []
    for n in range(2):
        e = engine(refund, tmp_path / f"run{n}.db", clock=ManualClock())
        script(e)
        runs.append([r.payload_json() for r in e.store.audit()])
    assert runs[0] == runs[1]


def _without_at(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "at"}


def test_wall_clock_is_the_only_field_that_differs_across_clocks(tmp_path: Path, refund: Spec) -> None:
    a = engine(refund, tmp_path / "a.db", clock=ManualClock())
    b = engine(refund, tmp_path / "b.db", clock=ManualClock(ManualClock().advance(86400)))
    script(a)
    script(b)
    pa = [_without_at(r.payload) for r in a.store.audit()]
    pb = [_without_at(r.payload) for r in b.store.audit()]
    assert pa == pb


EXAMPLE_NAMES = ["refund", "order", "deploy"]
PRINCIPALS = ["sam", "mia", "max", "pay", "cus", "bot", "ops", "ann", "rev", "ci", "eve", "system", ""]


def _param_values() -> st.SearchStrategy[dict[str, Any]]:
    scalar = st.one_of(st.integers(-5, 12000), st.booleans(), st.sampled_from(["staging", "production", "x", ""]), st.none())
    return st.dictionaries(st.sampled_from(["amount", "total", "environment", "bogus"]), scalar, max_size=2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(EXAMPLE_NAMES),
    steps=st.lists(st.tuples(st.sampled_from(["request", "approve", "pay", "reject", "cancel", "place", "reserve", "charge", "ship", "submit", "report_green", "report_red", "retry", "give_up", "release", "abort", "nonsense"]), st.sampled_from(PRINCIPALS), _param_values()), max_size=12),
)
def test_fuzzed_steps_change_an_instance_only_through_allowed_transitions(name: str, steps: list[tuple[str, str, dict[str, Any]]]) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    e = engine(spec)
    e.start("i", "sam")
    for event, actor, params in steps:
        before = e.get("i")
        result = e.fire("i", event, actor, params)
        after = e.get("i")
        if result.accepted:
            expected = fire(spec, before.state, dict(before.values), event, actor, PEOPLE.roles_of(actor), params)
            assert isinstance(expected, Fired)
            assert after.state in (expected.target, spec.error_target(before.state))
        else:
            # The examples' effects all succeed here, so no refusal is an error exit.
            assert result.code != "error-exit"
            assert (after.state, dict(after.values)) == (before.state, dict(before.values))
            assert result.records[-1].payload["decision"]["allowed"] is False
        assert after.version == before.version + len(result.records)
    assert verify_chain(e.store.audit()) is None


def test_a_refused_step_does_not_cancel_the_states_timeout() -> None:
    spec = loads(TIMEOUT_SPEC)
    clock = ManualClock()
    e = Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"c": ["clerk"]}), clock=clock, allow_unverified="test")
    e.start("a1", "c")
    assert e.fire("a1", "approve", "c").code == "not-enabled"
    clock.advance(3601)
    (result,) = e.run_due()
    assert result.state == "expired"


def test_an_engine_refuses_instances_started_under_another_version_of_the_spec(tmp_path: Path, refund: Spec) -> None:
    engine(refund, tmp_path / "r.db").start("r1", "sam")
    changed = loads((EXAMPLES / "refund.yaml").read_text().replace("params.amount <= 5000", "params.amount <= 4000"))
    newer = engine(changed, tmp_path / "r.db")
    with pytest.raises(ExecutionError, match="was started under spec"):
        newer.fire("r1", "request", "sam", {"amount": 10})


SPECIALISED = """
railguard: 1
name: special
roles: {r: [go], s: [other]}
variables:
  n: {type: int, min: 0, max: 3, initial: 0}
  m: {type: int, min: 0, max: 100, initial: 0}
  d: {type: decimal, min: 0, max: 10, places: 1, initial: 0}
states:
  a: {initial: true}
  b: {}
  done: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - {event: one, from: [a, b], to: b, permission: go, guard: n < 3, assign: {n: n + 1}}
  - {event: two, from: a, to: a, permission: go, assign: {n: n + 1, m: m + 10 // n}}
  - {event: free, from: [a, b], to: a, permission: public}
  - {event: dec, from: [a, b], to: b, permission: go, assign: {d: d + 1}}
  - {event: end, from: b, to: done, permission: other, guard: m > 5 or n == 3}
"""


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["one", "two", "free", "dec", "end", "nope"]),
            st.sampled_from([frozenset(), frozenset({"r"}), frozenset({"s"}), frozenset({"r", "s"})]),
            st.sampled_from([None, {}, {"x": 1}]),
            st.booleans(),
        ),
        max_size=12,
    )
)
@settings(max_examples=60, deadline=None)
def test_the_specialised_step_and_the_general_algorithm_agree(steps: list[tuple[str, frozenset[str], dict[str, int] | None, bool]]) -> None:
    from railguard.spec.semantics import _general, _table, stepper

    spec = loads(SPECIALISED)
    state, values = spec.initial_state.name, spec.initial_values()
    table = _table(spec)
    for event, roles, params, system in steps:
        fast = stepper(spec, state, event)(values, "u", roles, params, system)
        candidates = table.steps.get((state, event))
        if candidates is not None:
            slow = _general(spec, table, state, event, candidates)(values, "u", roles, params, system)
            assert fast == slow
        if isinstance(fast, Fired):
            state, values = fast.target, dict(fast.values)


def test_a_caller_changing_a_result_does_not_change_the_instance(refund: Spec) -> None:
    e = engine(refund)
    e.start("r1", "sam")
    requested = e.fire("r1", "request", "sam", {"amount": 120})
    requested.values["amount"] = 9999  # type: ignore[index]
    assert e.fire("r1", "approve", "mia").values["amount"] == 120
    assert e.get("r1").values["amount"] == 120
