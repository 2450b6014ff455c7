"""Replay: every instance re-derived from its audit log with the reference semantics matches
the store — through effects, compensations, refusals, timeouts, aborts and operator retries —
and a tampered record is named by its position."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from railguard.runtime import (
    AuditRecord,
    Engine,
    ManualClock,
    RetryPolicy,
    SQLiteStore,
    StaticDirectory,
    UnknownInstance,
)
from railguard.runtime.replay import ReplayReport, replay_instance, replay_log
from railguard.spec import Spec, load, loads

from .conftest import EXAMPLES
from .fakes import PEOPLE, Ledger


def engine(spec: Spec, services: Ledger | None = None, store: SQLiteStore | None = None, **kw: Any) -> Engine:
    kw.setdefault("clock", ManualClock())
    kw.setdefault("allow_unverified", "replay tests")
    kw.setdefault("retry", RetryPolicy(attempts=2, backoff=1.0))
    return Engine(spec, store or SQLiteStore(":memory:"), PEOPLE, effects=(services or Ledger()).effects(spec), **kw)


@pytest.fixture(scope="module")
def refund() -> Spec:
    return load(EXAMPLES / "refund.yaml")


@pytest.fixture(scope="module")
def order() -> Spec:
    return load(EXAMPLES / "order.yaml")


def assert_replays(e: Engine, instance: str) -> ReplayReport:
    report = replay_instance(e, e.spec, instance)
    assert report.ok, report.mismatch
    stored = e.get(instance)
    assert (report.state, dict(report.values), report.status, report.version, report.owed) == (
        stored.state,
        dict(stored.values),
        stored.status,
        stored.version,
        stored.owed,
    )
    assert report.mismatch is None
    assert report.seq is None
    return report


# ---------------------------------------------------------------------- matching runs


def test_a_refund_with_refusals_replays_to_the_stored_instance(refund: Spec) -> None:
    e = engine(refund)
    e.start("r1", "sam")
    assert e.fire("r1", "request", "sam", {"amount": 0}).code == "bad-params"
    assert e.fire("r1", "request", "sam", {"amount": 9000}).code == "guard-false"
    assert e.fire("r1", "teleport", "sam").code == "unknown-event"
    assert e.fire("r1", "pay", "pay").code == "not-enabled"
    e.fire("r1", "request", "max", {"amount": 120})
    assert e.fire("r1", "approve", "sam").code == "permission-denied"
    assert e.fire("r1", "approve", "system").code == "permission-denied"
    e.fire("r1", "approve", "mia")
    e.fire("r1", "pay", "pay")
    assert e.fire("r1", "pay", "pay").code == "not-enabled"  # finished: refused by the engine
    report = assert_replays(e, "r1")
    assert (report.state, report.status, report.records) == ("paid", "done", 12)


def test_a_self_approval_refusal_replays_as_the_guard_refusing_it(refund: Spec) -> None:
    e = engine(refund)
    e.start("r1", "max")
    e.fire("r1", "request", "max", {"amount": 50})
    assert e.fire("r1", "approve", "max").code == "guard-false"
    assert assert_replays(e, "r1").state == "requested"


def test_an_order_to_shipped_replays(order: Spec) -> None:
    e = engine(order)
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 30})
    for event in ("reserve", "charge", "ship"):
        assert e.fire("o1", event, "bot").accepted
    assert assert_replays(e, "o1").state == "shipped"


def test_a_failed_charge_with_its_compensation_replays(order: Spec) -> None:
    e = engine(order, Ledger("payments.charge"))
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 30})
    e.fire("o1", "reserve", "bot")
    failed = e.fire("o1", "charge", "bot")
    assert [r.kind for r in failed.records] == ["effect-call", "effect-failed", "compensation", "error-exit"]
    assert e.fire("o1", "ship", "bot").code == "not-enabled"
    report = assert_replays(e, "o1")
    assert (report.state, report.owed) == ("failed", ())


def test_cancelling_after_the_charge_replays_both_compensations(order: Spec) -> None:
    e = engine(order)
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 30})
    e.fire("o1", "reserve", "bot")
    e.fire("o1", "charge", "bot")
    cancelled = e.fire("o1", "cancel", "cus")
    assert [r.kind for r in cancelled.records] == ["step", "compensation", "compensation", "rest"]
    assert assert_replays(e, "o1").state == "cancelled"


def test_a_stuck_instance_an_abort_and_an_operator_retry_replay(order: Spec) -> None:
    services = Ledger("payments.charge", "inventory.release")
    e = engine(order, services)
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 30})
    e.fire("o1", "reserve", "bot")
    assert e.fire("o1", "charge", "bot").status == "stuck"
    assert e.fire("o1", "cancel", "cus").code == "busy"
    report = assert_replays(e, "o1")
    assert (report.status, report.owed) == ("stuck", ("inventory.release",))
    assert e.retry_stuck("o1", "cus").code == "permission-denied"
    services.failing.clear()
    assert e.retry_stuck("o1", "ops").state == "failed"
    assert assert_replays(e, "o1").status == "done"

    e.start("o2", "cus")
    e.fire("o2", "place", "cus", {"total": 5})
    e.fire("o2", "reserve", "bot")
    assert e.abort("o2", "cus", "mine").code == "permission-denied"
    assert e.abort("o2", "ops", "fraud suspected").state == "failed"
    assert e.abort("o2", "ops", "again").code == "busy"
    assert assert_replays(e, "o2").state == "failed"


TIMED = """
railguard: 1
name: approval
roles: {clerk: [a.submit, a.approve, a.note]}
variables:
  notes: {type: int, min: 0, max: 5, initial: 0}
states:
  open: {initial: true, timeout: {after: 1h, event: expire}}
  waiting: {timeout: {after: 15m}}
  done: {terminal: success}
  expired: {terminal: failure}
on_error: expired
transitions:
  - {event: submit, from: open, to: waiting, permission: a.submit}
  - {event: expire, from: open, to: expired, permission: a.approve, guard: notes < 5}
  - {event: note, from: waiting, to: waiting, permission: a.note, assign: {notes: notes + 1}}
  - {event: approve, from: waiting, to: done, permission: a.approve}
"""


def test_timeouts_replay_and_a_refusal_does_not_disable_them() -> None:
    spec = loads(TIMED)
    clock = ManualClock()
    e = Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"c": ["clerk"]}), clock=clock, allow_unverified="test")
    e.start("a1", "c")
    assert e.fire("a1", "approve", "c").code == "not-enabled"  # a refusal changes nothing ...
    e.start("a2", "c")
    e.fire("a2", "submit", "c")
    assert e.fire("a2", "note", "c").state == "waiting"  # ... nor does a step that keeps the state
    clock.advance(3601)
    done = {r.instance: r for r in e.run_due()}
    assert (done["a1"].state, done["a1"].accepted) == ("expired", True)  # the event, as the system
    assert (done["a2"].state, done["a2"].code) == ("expired", "error-exit")  # the error exit
    assert e.history("a2")[-2].kind == "timeout"
    assert assert_replays(e, "a1").state == "expired"
    assert assert_replays(e, "a2").state == "expired"


DECIMALS = """
railguard: 1
name: transfer
roles: {client: [t.send, t.tag]}
variables:
  limit: {type: decimal, min: 0, max: 1000, places: 2, context: true}
  sent: {type: decimal, min: 0, max: 1000, places: 2, initial: 0}
  tags: {type: set, of: {type: decimal, min: 0, max: 10, places: 1}}
states:
  open: {initial: true}
  sent: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - event: tag
    from: open
    to: open
    permission: t.tag
    params: {tags: {type: set, of: {type: decimal, min: 0, max: 10, places: 1}}}
    assign: {tags: params.tags}
  - event: send
    from: open
    to: sent
    permission: t.send
    params: {amount: {type: decimal, min: 0.01, max: 1000, places: 2}}
    guard: params.amount <= limit
    assign: {sent: params.amount}
"""


def test_decimal_and_set_params_and_context_replay_exactly() -> None:
    from decimal import Decimal

    spec = loads(DECIMALS)
    e = Engine(spec, SQLiteStore(":memory:"), StaticDirectory({"c": ["client"]}), clock=ManualClock(), allow_unverified="test")
    e.start("t1", "c", {"limit": "100.00"})
    assert e.fire("t1", "tag", "c", {"tags": [Decimal("1.5"), Decimal("2")]}).accepted
    assert e.fire("t1", "tag", "c", {"tags": "1.5"}).code == "bad-params"
    assert e.fire("t1", "send", "c", {"amount": "500"}).code == "guard-false"
    assert e.fire("t1", "send", "c", {"amount": "x"}).code == "bad-params"
    assert e.fire("t1", "send", "c", {"amount": 9.5}).code == "bad-params"  # recorded as the number 9.5, refused again on replay
    assert e.fire("t1", "tag", "c", {"tags": [1.5]}).code == "bad-params"
    assert e.fire("t1", "send", "c", {"amount": Decimal("99.99")}).state == "sent"
    report = assert_replays(e, "t1")
    assert report.values["sent"] == Decimal("99.99")
    assert report.values["tags"] == frozenset({Decimal("1.5"), Decimal("2")})


EXAMPLE_EVENTS = ["request", "approve", "pay", "reject", "cancel", "place", "reserve", "charge", "ship", "nonsense"]
PRINCIPALS = ["sam", "mia", "max", "pay", "cus", "bot", "ops", "eve", "system", ""]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["refund", "order"]),
    failing=st.sets(st.sampled_from(["payments.charge", "payments.refund", "inventory.release", "shipping.dispatch"])),
    steps=st.lists(
        st.tuples(
            st.sampled_from([*EXAMPLE_EVENTS, "abort", "retry"]),
            st.sampled_from(PRINCIPALS),
            st.dictionaries(st.sampled_from(["amount", "total", "bogus"]), st.one_of(st.integers(-5, 12000), st.none(), st.text(max_size=2)), max_size=2),
        ),
        max_size=12,
    ),
)
def test_every_run_of_the_examples_replays_to_what_the_store_holds(
    name: str, failing: set[str], steps: list[tuple[str, str, dict[str, Any]]]
) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    services = Ledger(*failing)
    e = engine(spec, services)
    e.start("i", "sam")
    for event, actor, params in steps:
        if event == "abort":
            e.abort("i", actor, "fuzz")
        elif event == "retry":
            services.failing.clear()
            e.retry_stuck("i", actor)
        else:
            e.fire("i", event, actor, params)
        assert_replays(e, "i")


# ---------------------------------------------------------------------- mismatches


def _order_run() -> tuple[Engine, list[AuditRecord]]:
    e = engine(load(EXAMPLES / "order.yaml"), Ledger("payments.charge"))
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 30})
    e.fire("o1", "place", "cus", {"total": 30})
    e.fire("o1", "reserve", "bot")
    e.fire("o1", "charge", "bot")
    return e, e.history("o1")


def _with(record: AuditRecord, **changes: Any) -> AuditRecord:
    payload = json.loads(json.dumps(dict(record.payload)))
    for path, value in changes.items():
        target = payload
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return replace(record, payload=payload)


@pytest.mark.parametrize(
    ("seq", "changes", "words"),
    [
        (1, {"after__values__total": 7}, "started at"),
        (1, {"context": {"total": 3}}, "not a context variable"),
        (2, {"after__values__total": 31}, "the semantics gives"),
        (2, {"params__total": 31}, "the semantics gives"),
        (2, {"after__state": "charged"}, "the semantics gives"),
        (2, {"transition": 5}, "names transition 5"),
        (2, {"actor": "bot", "roles": ["system"]}, "refuses `place` (permission-denied"),
        (3, {"decision__code": "guard-false"}, "refuses it with `not-enabled`"),
        (3, {"event": "cancel", "params": {}}, "the semantics allows it"),
        (4, {"intended__values__total": 1}, "the semantics gives"),
        (4, {"effect__name": "payments.charge"}, "calls effect `payments.charge`"),
        (5, {"after__state": "charged"}, "the effect was called to reach"),
        (5, {"effect__key": "0" * 32}, "idempotency key"),
        (7, {"effect__step": 4}, "failure of effect"),
        (8, {"compensation__name": "payments.refund"}, "was owed next"),
        (9, {"after__state": "cancelled"}, "goes to `failed`"),
        (9, {"kind": "rest"}, "the engine writes `error-exit`"),
        (4, {"spec_hash": "sha256:" + "0" * 64}, "another version of `order`"),
        (6, {"kind": "approval"}, "not a kind of record"),
    ],
)
def test_a_tampered_payload_value_is_a_mismatch_at_that_record(seq: int, changes: dict[str, Any], words: str) -> None:
    e, records = _order_run()
    assert [r.kind for r in records] == ["start", "step", "refusal", "effect-call", "step", "effect-call", "effect-failed", "compensation", "error-exit"]
    assert replay_log(e.spec, records).ok
    tampered = [_with(r, **changes) if r.seq == seq else r for r in records]
    report = replay_log(e.spec, tampered)
    assert (report.ok, report.seq) == (False, seq), report.mismatch
    assert report.mismatch is not None
    assert f"record {seq} " in report.mismatch
    assert words in report.mismatch
    assert report.version == seq - 1  # the state as the log had it just before


def test_a_removed_or_reordered_record_is_a_mismatch_where_the_gap_is(order: Spec) -> None:
    _, records = _order_run()
    report = replay_log(order, records[:3] + records[4:])
    assert (report.ok, report.seq) == (False, 5)
    assert "expected record 4" in str(report)
    assert replay_log(order, [records[1], records[0]]).seq == 2
    assert replay_log(order, records[1:]).mismatch == "instance `o1`, record 2 (step): expected record 1 here"
    headless = replay_log(order, [replace(records[1], seq=1)])
    assert headless.mismatch == "instance `o1`, record 1 (step): the log does not begin with a `start` record"
    assert not replay_log(order, []).ok


def test_a_log_replayed_with_another_spec_is_named_at_its_first_record(refund: Spec) -> None:
    _, records = _order_run()
    report = replay_log(refund, records)
    assert (report.ok, report.seq) == (False, 1)
    assert "workflow `order`, not `refund`" in str(report)


def test_a_stored_row_that_disagrees_with_its_log_is_a_mismatch(tmp_path: Path, order: Spec) -> None:
    path = tmp_path / "o.db"
    e = engine(order, store=SQLiteStore(path))
    e.start("o1", "cus")
    e.fire("o1", "place", "cus", {"total": 30})
    assert_replays(e, "o1")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE instances SET vals = ?, state = 'shipped' WHERE id = 'o1'", (json.dumps({"total": 99999}),))
    report = replay_instance(SQLiteStore(path), order, "o1")
    assert (report.ok, report.seq) == (False, None)
    assert report.mismatch == (
        "instance `o1`: the stored instance is in state `shipped` and holds {'total': 99999}, "
        "but its log leads to state `placed` with {'total': 30}, version 2, active, owing []"
    )
    with pytest.raises(UnknownInstance):
        replay_instance(e, order, "nope")
