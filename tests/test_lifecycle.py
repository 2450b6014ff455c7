"""The one instance lifecycle: the engine, replay and the crash harness move an instance's
status by the same pure function, and agree on every record the engine writes."""

from __future__ import annotations

from typing import Any

import pytest

from railguard.runtime import Engine, ManualClock, RetryPolicy, SQLiteStore, replay_instance
from railguard.runtime.lifecycle import (
    CompensatePending,
    EffectPending,
    LifecycleError,
    Owed,
    Phase,
    RecordKind,
    Status,
    advance,
)
from railguard.spec import Spec, load, loads

from .conftest import EXAMPLES
from .crashkit import harness_replay_log
from .fakes import PEOPLE, Ledger

NO_ERROR_EXIT = """
railguard: 1
name: no-exit
roles: {operator: [go]}
states:
  a: {initial: true}
  b: {}
  done: {terminal: success}
transitions:
  - {event: go, from: a, to: b, permission: go, effect: svc.call}
  - {event: finish, from: b, to: done, permission: go}
"""


def engine(spec: Spec, ledger: Ledger) -> Engine:
    return Engine(
        spec, SQLiteStore(":memory:"), PEOPLE, effects=ledger.effects(spec), clock=ManualClock(),
        allow_unverified="lifecycle tests", retry=RetryPolicy(attempts=1),
    )


def agree(e: Engine, instance: str) -> tuple[str, str]:
    """The stored row, the runtime's replay and the harness's replay give the same phase."""
    row = e.store.get(instance)
    assert row is not None
    report = replay_instance(e, e.spec, instance)
    assert report.ok, report.mismatch
    harness = harness_replay_log(e.spec, e.store.audit(instance))
    owed = tuple(c["compensate"] for c in row.compensations)
    assert (report.state, report.status, report.owed) == (row.state, row.status, owed)
    assert (harness.state, harness.status, harness.owed) == (row.state, row.status, owed)
    return row.state, row.status


def test_an_effect_failing_where_there_is_no_error_exit_leaves_the_instance_stuck_everywhere_alike() -> None:
    spec = loads(NO_ERROR_EXIT)
    ledger = Ledger("svc.call")
    e = engine(spec, ledger)
    e.start("i", "ops")
    result = e.fire("i", "go", "ops")
    assert (result.status, result.code) == ("stuck", "stuck")
    kinds = [r.kind for r in e.history("i")]
    assert kinds == ["start", "effect-call", "effect-failed"]
    assert "no error exit" in e.history("i")[-1].payload["stuck"]
    assert agree(e, "i") == ("a", "stuck")


def test_an_effect_failure_with_nothing_owed_goes_to_the_failure_terminal_not_compensating() -> None:
    order = load(EXAMPLES / "order.yaml")
    e = engine(order, Ledger("inventory.reserve"))
    e.start("o", "cus")
    e.fire("o", "place", "cus", {"total": 10})
    failed = e.fire("o", "reserve", "bot")
    assert (failed.state, failed.status) == ("failed", "done")
    assert agree(e, "o") == ("failed", "done")


def test_every_example_run_agrees_between_engine_replay_and_harness() -> None:
    order = load(EXAMPLES / "order.yaml")
    e = engine(order, Ledger("shipping.dispatch"))
    e.start("o", "cus")
    for event, actor, params in (("place", "cus", {"total": 10}), ("reserve", "bot", {}), ("charge", "bot", {}), ("ship", "bot", {})):
        e.fire("o", event, actor, params)
        agree(e, "o")
    assert agree(e, "o") == ("failed", "done")


def test_statuses_and_kinds_are_the_strings_stored_before() -> None:
    assert [s.value for s in Status] == ["active", "effect-pending", "compensating", "stuck", "done"]
    assert RecordKind.EFFECT_FAILED == "effect-failed"
    assert f"{Status.EFFECT_PENDING}" == "effect-pending"


SPEC = load(EXAMPLES / "order.yaml")
OWED = Owed("inventory.release", 3, "reserve", {}, {})
CALL = EffectPending(3, "k", "inventory.reserve", {"transition": 2}, "reserved", {})


@pytest.mark.parametrize(
    ("phase", "kind", "facts", "status"),
    [
        (None, RecordKind.START, {"target": "new"}, Status.ACTIVE),
        (Phase(Status.ACTIVE, "placed"), RecordKind.EFFECT_CALL, {"pending": CALL}, Status.EFFECT_PENDING),
        (Phase(Status.EFFECT_PENDING, "placed", (), CALL), RecordKind.STEP, {"target": "reserved", "owed": OWED}, Status.ACTIVE),
        (Phase(Status.EFFECT_PENDING, "placed", (), CALL), RecordKind.EFFECT_FAILED, {}, Status.COMPENSATING),
        (Phase(Status.ACTIVE, "reserved", (OWED,)), RecordKind.ABORT, {}, Status.COMPENSATING),
        (Phase(Status.COMPENSATING, "reserved", (OWED,), CompensatePending("failed", "x")), RecordKind.STUCK, {}, Status.STUCK),
        (Phase(Status.STUCK, "reserved", (OWED,), CompensatePending("failed", "x")), RecordKind.RETRY, {}, Status.COMPENSATING),
        (Phase(Status.COMPENSATING, "reserved", (), CompensatePending("failed", "x")), RecordKind.ERROR_EXIT, {}, Status.DONE),
        (Phase(Status.DONE, "failed"), RecordKind.REFUSAL, {}, Status.DONE),
    ],
)
def test_advance_moves_the_status_as_the_lifecycle_says(phase: Phase | None, kind: RecordKind, facts: dict[str, Any], status: Status) -> None:
    assert advance(SPEC, phase, kind, **facts).status is status


@pytest.mark.parametrize(
    ("phase", "kind"),
    [
        (Phase(Status.ACTIVE, "new"), RecordKind.START),
        (Phase(Status.ACTIVE, "new"), RecordKind.EFFECT_FAILED),
        (Phase(Status.ACTIVE, "new"), RecordKind.COMPENSATION),
        (Phase(Status.DONE, "failed"), RecordKind.STEP),
        (Phase(Status.COMPENSATING, "reserved", (OWED,), CompensatePending("failed", "x")), RecordKind.ERROR_EXIT),
        (Phase(Status.COMPENSATING, "failed", (), CompensatePending("failed", "x")), RecordKind.ERROR_EXIT),
        (Phase(Status.ACTIVE, "new"), "no-such-kind"),
    ],
)
def test_advance_refuses_a_record_that_cannot_happen_now(phase: Phase, kind: str) -> None:
    with pytest.raises(LifecycleError):
        advance(SPEC, phase, kind, target="placed")
