"""The engine trusts only what the audit log vouches for: every edit of an instance row behind
its back is refused before any effect runs, and named by `audit verify` (which is read-only)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from railguard.cli import main
from railguard.runtime import (
    Engine,
    ManualClock,
    RetryPolicy,
    SQLiteStore,
    StoreError,
    UnvouchedRow,
)
from railguard.runtime.audit import chain
from railguard.runtime.codec import canonical_json
from railguard.runtime.integrity import row_digest, verify_store
from railguard.spec import Spec, load, loads

from .conftest import EXAMPLES
from .fakes import PEOPLE, Ledger

CAPPED = """
railguard: 1
name: capped
roles: {support: [capped.pay]}
variables:
  cap: {type: int, min: 0, max: 1000000, context: true}
  paid: {type: int, min: 0, max: 1000000, initial: 0}
states:
  open: {initial: true}
  paid: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - event: pay
    from: open
    to: paid
    permission: capped.pay
    params: {amount: {type: int, min: 1, max: 1000000}}
    guard: params.amount <= cap
    assign: {paid: params.amount}
    effect: bank.pay
"""


@pytest.fixture(scope="module")
def refund() -> Spec:
    return load(EXAMPLES / "refund.yaml")


@pytest.fixture(scope="module")
def order() -> Spec:
    return load(EXAMPLES / "order.yaml")


def _engine(spec: Spec, db: Path, ledger: Ledger) -> Engine:
    return Engine(spec, SQLiteStore(db), PEOPLE, effects=ledger.effects(spec), clock=ManualClock(), allow_unverified="vouch tests", retry=RetryPolicy(attempts=1))


def _sql(db: Path, statement: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(statement, params)
    finally:
        conn.close()


def _approved_refund(refund: Spec, db: Path, ledger: Ledger, instance: str = "r1") -> Engine:
    engine = _engine(refund, db, ledger)
    engine.start(instance, "sam")
    engine.fire(instance, "request", "sam", {"amount": 100})
    engine.fire(instance, "approve", "mia")
    return engine


def _refused_by_a_fresh_engine(spec: Spec, db: Path, act: str, instance: str, *args: Any) -> tuple[Ledger, UnvouchedRow]:
    """``act`` on a fresh engine (it has read nothing yet) must raise UnvouchedRow and call no
    handler."""
    ledger = Ledger()
    engine = _engine(spec, db, ledger)
    with pytest.raises(UnvouchedRow) as refused:
        getattr(engine, act)(instance, *args)
    assert ledger.calls == []
    return ledger, refused.value


def _tamper(db: Path) -> tuple[str, int, str] | None:
    with SQLiteStore(db, readonly=True) as store:
        found = verify_store(store).tamper
    return None if found is None else (found.instance, found.seq, found.reason)


def test_every_record_carries_the_digest_of_the_row_after_it(refund: Spec, tmp_path: Path) -> None:
    engine = _approved_refund(refund, tmp_path / "a.db", Ledger())
    paid = engine.fire("r1", "pay", "pay")
    with SQLiteStore(tmp_path / "a.db") as store:
        row = store.get("r1")
        records = store.audit("r1")
    assert row is not None
    assert records[-1].payload["row"] == row_digest(row)
    assert [r.payload["row"] for r in paid.records][-1] == row_digest(row)
    assert all(r.payload["row"].startswith("sha256:") for r in records)
    assert _tamper(tmp_path / "a.db") is None


def test_an_inserted_row_with_no_records_is_refused_and_named(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _approved_refund(refund, db, Ledger())
    _sql(db, "INSERT INTO instances SELECT 'x', workflow, spec_hash, state, vals, version, status, audit_head, context, pending, "
         "compensations, created_at, updated_at FROM instances WHERE id = 'r1'")
    _, refused = _refused_by_a_fresh_engine(refund, db, "fire", "x", "pay", "pay")
    assert "instance `x` is not vouched for by its audit log" in str(refused)
    assert _tamper(db) == ("x", 1, "it is missing: no audit record vouches for the instance row (inserted behind the engine's back?)")


def test_an_inserted_row_at_version_zero_is_refused_too(refund: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _approved_refund(refund, db, Ledger())
    _sql(db, "INSERT INTO instances SELECT 'x', workflow, spec_hash, state, vals, 0, status, ?, context, pending, "
         "compensations, created_at, updated_at FROM instances WHERE id = 'r1'", ("0" * 64,))
    _refused_by_a_fresh_engine(refund, db, "fire", "x", "pay", "pay")
    assert _tamper(db) is not None


def _done_order(order: Spec, db: Path) -> None:
    engine = _engine(order, db, Ledger())
    engine.start("o1", "cus")
    engine.fire("o1", "place", "cus", {"total": 50})
    for event in ("reserve", "charge", "ship"):
        engine.fire("o1", event, "bot")
    assert engine.get("o1").status == "done"


def _compensating(total: int) -> tuple[str, str, str]:
    pending = canonical_json({"kind": "compensate", "target": "failed", "reason": "forged"})
    owed = canonical_json([{"compensate": "payments.refund", "step": 5, "event": "charge", "params": {}, "after": {"total": total}}])
    return "compensating", pending, owed


def test_a_done_order_edited_to_compensate_with_injected_work_is_refused_by_the_worker(order: Spec, tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    _done_order(order, db)
    status, pending, owed = _compensating(999_999)
    _sql(db, "UPDATE instances SET status = ?, pending = ?, compensations = ? WHERE id = 'o1'", (status, pending, owed))
    _sql(db, "INSERT INTO timers (instance, kind, due_at, version, payload) VALUES ('o1', 'resume', 0, 9, '{}')")
    ledger = Ledger()
    engine = _engine(order, db, ledger)
    (result,) = engine.run_due()
    assert result.code == "worker-error"
    assert "UnvouchedRow" in result.reason
    assert ledger.calls == []  # no refund of 999,999
    assert _tamper(db) == ("o1", 8, "it does not vouch for the instance row: the row was edited behind the engine's back")


@pytest.mark.parametrize(
    ("column", "value"),
    [("workflow", "refund2"), ("spec_hash", "sha256:" + "1" * 64), ("vals", '{"amount":9999,"approved_by":"mia","requested_by":"sam"}'), ("status", "active")],
)
def test_an_edited_column_is_named_by_audit_verify(refund: Spec, tmp_path: Path, column: str, value: str) -> None:
    db = tmp_path / "a.db"
    _approved_refund(refund, db, Ledger())
    _sql(db, "UPDATE instances SET status = 'stuck' WHERE id = 'r1'") if column == "status" else _sql(db, f"UPDATE instances SET {column} = ? WHERE id = 'r1'", (value,))
    found = _tamper(db)
    assert found is not None
    assert found[:2] == ("r1", 3)


def test_a_refund_spec_row_moved_onto_another_workflow_is_refused(refund: Spec, order: Spec, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    _engine(order, db, Ledger()).start("o1", "cus")
    _approved_refund(refund, db, Ledger())
    # the order instance is rewritten to be an approved refund of 10,000
    _sql(db, "UPDATE instances SET workflow = 'refund', spec_hash = ?, state = 'approved', vals = ? WHERE id = 'o1'",
         (refund.content_hash, '{"amount":10000,"approved_by":"mia","requested_by":"sam"}'))
    _refused_by_a_fresh_engine(refund, db, "fire", "o1", "pay", "pay")
    assert _tamper(db) == ("o1", 1, "it does not vouch for the instance row: the row was edited behind the engine's back")


def test_an_edited_context_is_refused_before_the_effect_runs(tmp_path: Path) -> None:
    capped = loads(CAPPED)
    db = tmp_path / "c.db"
    _engine(capped, db, Ledger()).start("c1", "sam", {"cap": 100})
    _sql(db, "UPDATE instances SET context = ?, vals = ? WHERE id = 'c1'", ('{"cap":1000000}', '{"cap":1000000,"paid":0}'))
    _refused_by_a_fresh_engine(capped, db, "fire", "c1", "pay", "sam", {"amount": 999_999})
    assert _tamper(db) == ("c1", 1, "it does not vouch for the instance row: the row was edited behind the engine's back")


def test_a_forged_appended_record_with_its_chain_recomputed_is_refused_by_replay(order: Spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "o.db"
    _done_order(order, db)
    with SQLiteStore(db) as store:
        row = store.get("o1")
        last = store.audit("o1")[-1]
    assert row is not None
    status, pending, owed = _compensating(999_999)
    from dataclasses import replace

    edited = replace(row, status=status, pending=json.loads(pending), compensations=json.loads(owed), version=row.version + 1)
    payload = {"kind": "abort", "actor": "ops", "roles": ["operator"], "reason": "forged", "state": row.state,
               "workflow": order.name, "spec_hash": order.content_hash, "at": "2026-01-01T00:00:00+00:00", "row": row_digest(edited)}
    forged = chain("o1", last.hash, last.seq + 1, payload)
    # the forger takes the next global position too, so the global log has no gap either
    _sql(db, "INSERT INTO audit SELECT ?, ?, ?, ?, ?, MAX(gseq) + 1 FROM audit", (forged.instance, forged.seq, forged.payload_json(), forged.prev_hash, forged.hash))
    _sql(db, "UPDATE instances SET status = ?, pending = ?, compensations = ?, version = ?, audit_head = ? WHERE id = 'o1'",
         (status, pending, owed, edited.version, forged.hash))
    _sql(db, "INSERT INTO timers (instance, kind, due_at, version, payload) VALUES ('o1', 'resume', 0, ?, '{}')", (edited.version,))
    assert _tamper(db) is None  # the chain and the row digest are consistent: only replay tells
    ledger = Ledger()
    (result,) = _engine(order, db, ledger).run_due()
    assert result.code == "worker-error"
    assert "not vouched for" in result.reason
    assert ledger.calls == []
    with SQLiteStore(db, readonly=True) as store:
        found = verify_store(store, [order]).tamper
    assert found is not None
    assert (found.instance, found.seq) == ("o1", last.seq + 1)
    capsys.readouterr()
    assert main(["audit", "verify", str(db), "--spec", str(EXAMPLES / "order.yaml")]) == 1
    assert "record 9" in capsys.readouterr().out


def test_audit_verify_is_read_only(refund: Spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert main(["audit", "verify", str(empty)]) == 2
    assert "is not a railguard store" in capsys.readouterr().err
    assert empty.read_bytes() == b""
    db = tmp_path / "a.db"
    _approved_refund(refund, db, Ledger()).store.close()
    _sql(db, "DROP TRIGGER audit_append_only_delete")
    before = db.read_bytes()
    assert main(["audit", "verify", str(db)]) == 0
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'audit_append_only_delete'").fetchone() == (0,)
    with SQLiteStore(db, readonly=True) as store, pytest.raises(StoreError):
        store.finish_timer(1)
