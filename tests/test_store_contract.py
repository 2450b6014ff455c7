"""The store contract, run against every store: SQLite (a file per test) and PostgreSQL (a
schema per test, dropped afterwards). A store that passes is interchangeable under the engine.

PostgreSQL is expected at ``RAILGUARD_TEST_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``); without a server there the postgres cases
are skipped with the reason, never silently passed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest

from railguard.runtime import (
    ConflictError,
    EffectCall,
    Effects,
    Engine,
    InstanceExists,
    ManualClock,
    RetryPolicy,
    SQLiteStore,
    StaticDirectory,
    StoreError,
    verify_chain,
)
from railguard.runtime.audit import GENESIS, WALL_CLOCK_FIELDS, AuditRecord, chain
from railguard.runtime.postgres import DEFAULT_DSN, PostgresStore
from railguard.runtime.store import InstanceRow, NewTimer, Store, Timer
from railguard.spec import Spec, load

from .conftest import EXAMPLES

PG_DSN = os.environ.get("RAILGUARD_TEST_DSN", DEFAULT_DSN)


@cache
def postgres_missing() -> str | None:
    """Why PostgreSQL cannot be used for these tests, or None if it can."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError as exc:
        return f"psycopg is not installed: {exc}"
    params = conninfo_to_dict(PG_DSN)
    where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {where}: {str(exc).strip().splitlines()[0]}"
    return None


def needs_postgres() -> None:
    reason = postgres_missing()
    if reason is not None:
        pytest.skip(reason)


# ---------------------------------------------------------------------- backends


@dataclass
class Backend:
    """One store under test: how to open it (again), reach its tables directly, and describe
    it to another process."""

    name: str
    target: str  # the SQLite file, or the PostgreSQL schema
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        store: Store = SQLiteStore(self.target) if self.name == "sqlite" else PostgresStore(PG_DSN, schema=self.target)
        self.opened.append(store)
        return store

    def raw(self, statement: str) -> None:
        """Run one statement on a connection of its own, outside the store."""
        if self.name == "sqlite":
            db = sqlite3.connect(self.target, isolation_level=None)
            try:
                db.execute(statement)
            finally:
                db.close()
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.target)))
            conn.execute(statement.encode())

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        found = Backend("sqlite", str(tmp_path / "store.db"))
        yield found
        found.close_all()
        return
    needs_postgres()
    found = Backend("postgres", f"rg_test_{uuid.uuid4().hex[:16]}")
    try:
        yield found
    finally:
        found.close_all()
        with PostgresStore(PG_DSN, schema=found.target) as cleaner:
            cleaner.drop()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


# ---------------------------------------------------------------------- helpers

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def records_for(instance: str, payloads: list[dict[str, Any]], head: str = GENESIS, seq: int = 0) -> list[AuditRecord]:
    out = []
    for payload in payloads:
        seq += 1
        record = chain(instance, head, seq, payload)
        out.append(record)
        head = record.hash
    return out


def new_instance(store: Store, instance: str, *, timers: list[NewTimer] | None = None, **changes: Any) -> InstanceRow:
    """Create ``instance`` with one ``start`` record; return its row."""
    (record,) = records_for(instance, [{"kind": "start"}])
    fields: dict[str, Any] = {
        "id": instance,
        "workflow": "wf",
        "spec_hash": "sha256:abc",
        "state": "draft",
        "values": {},
        "version": 1,
        "status": "active",
        "audit_head": record.hash,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    row = InstanceRow(**fields)
    store.create(row, [record], timers or [])
    return row


def step(store: Store, row: InstanceRow, *payloads: dict[str, Any], timers: list[NewTimer] | None = None, cancel: tuple[str, ...] = (), **changes: Any) -> InstanceRow:
    """Commit ``payloads`` as the next records of ``row``; return the new row."""
    records = records_for(row.id, list(payloads or ({"kind": "step"},)), row.audit_head, row.version)
    new = InstanceRow(**{**_fields(row), "version": records[-1].seq, "audit_head": records[-1].hash, **changes})
    store.commit(new, row.version, records, timers or [], cancel)
    return new


def _fields(row: InstanceRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in InstanceRow.__slots__}


def timer(instance: str, due_at: float, kind: str = "timeout", version: int = 1, **payload: Any) -> NewTimer:
    return NewTimer(instance, kind, due_at, version, payload)


def claimed(timers: list[Timer]) -> list[tuple[str, str, float]]:
    return [(t.instance, t.kind, t.due_at) for t in timers]


# ---------------------------------------------------------------------- instances


def test_create_then_get_round_trips_every_field(store: Store) -> None:
    row = InstanceRow(
        id="ord-1",
        workflow="order",
        spec_hash="sha256:" + "f" * 64,
        state="placed",
        values={"total": 120, "price": "19.90", "tags": ["a", "b"], "approved_by": None, "ok": True},
        version=1,
        status="effect-pending",
        audit_head="0" * 64,
        context={"tenant": "acme", "limit": "5000.00"},
        pending={"kind": "effect", "step": 2, "key": "k" * 32, "after": {"total": 120}},
        compensations=[{"compensate": "inventory.release", "step": 2, "params": {}}],
        created_at=T0 + 0.123456,
        updated_at=T0 + 7.654321,
    )
    (record,) = records_for("ord-1", [{"kind": "start"}])
    store.create(row, [record])
    assert store.get("ord-1") == row
    assert store.instances() == ["ord-1"]
    assert store.audit("ord-1") == [record]


def test_get_of_an_unknown_instance_is_none(store: Store) -> None:
    assert store.get("nobody") is None
    assert store.audit("nobody") == []


def test_a_second_create_with_the_same_id_raises_instance_exists_and_writes_nothing(store: Store) -> None:
    first = new_instance(store, "a1", state="draft")
    with pytest.raises(InstanceExists, match="`a1` already exists"):
        new_instance(store, "a1", state="other", timers=[timer("a1", T0)])
    assert store.get("a1") == first
    assert [r.seq for r in store.audit("a1")] == [1]
    assert store.claim_due(T0 + 1, 30) == []


def test_instances_are_listed_in_creation_order(store: Store) -> None:
    for name in ["zeta", "alpha", "mid", "Beta", "ß", "10", "9"]:
        new_instance(store, name)
    assert store.instances() == ["zeta", "alpha", "mid", "Beta", "ß", "10", "9"]


# ---------------------------------------------------------------------- commit


def test_commit_with_the_expected_version_replaces_the_row_and_appends_records_and_timers(store: Store) -> None:
    row = new_instance(store, "a1", values={"n": 0})
    new = step(
        store, row, {"kind": "step", "n": 1}, {"kind": "note"},
        timers=[timer("a1", T0 + 60, version=3, state="placed")],
        state="placed", values={"n": 1}, status="active", updated_at=T0 + 5,
    )
    assert new.version == 3
    assert store.get("a1") == new
    audit = store.audit("a1")
    assert [(r.seq, r.kind) for r in audit] == [(1, "start"), (2, "step"), (3, "note")]
    assert audit[-1].hash == new.audit_head
    assert verify_chain(audit) is None
    (due,) = store.claim_due(T0 + 60, 30)
    assert (due.instance, due.kind, due.due_at, due.version, due.payload) == ("a1", "timeout", T0 + 60, 3, {"state": "placed"})


def test_commit_with_a_stale_version_raises_conflict_and_writes_nothing(store: Store) -> None:
    row = new_instance(store, "a1", timers=[timer("a1", T0 + 10, kind="resume")])
    current = step(store, row, state="placed")
    with pytest.raises(ConflictError, match="`a1` changed since version 1"):
        step(store, row, {"kind": "late"}, timers=[timer("a1", T0)], cancel=("resume",), state="stale")
    assert store.get("a1") == current
    assert [r.kind for r in store.audit("a1")] == ["start", "step"]
    # the late commit's timer was not added and its cancel was not applied
    assert claimed(store.claim_due(T0 + 10, 30)) == [("a1", "resume", T0 + 10)]


def test_commit_to_an_unknown_instance_raises_conflict_and_writes_nothing(store: Store) -> None:
    ghost = InstanceRow("ghost", "wf", "h", "s", {}, 2, "active", "0" * 64)
    with pytest.raises(ConflictError):
        store.commit(ghost, 1, records_for("ghost", [{"kind": "x"}]), [timer("ghost", T0)])
    assert store.get("ghost") is None
    assert store.audit() == []
    assert store.claim_due(T0, 30) == []


def test_commit_cancels_only_the_pending_timers_of_the_given_kinds_of_that_instance(store: Store) -> None:
    a = new_instance(store, "a", timers=[timer("a", T0 + 1, "timeout"), timer("a", T0 + 2, "resume"), timer("a", T0 + 3, "other")])
    new_instance(store, "b", timers=[timer("b", T0 + 1, "timeout"), timer("b", T0 + 2, "resume")])
    step(store, a, cancel=("timeout", "resume"), timers=[timer("a", T0 + 4, "timeout", version=2)])
    assert claimed(store.claim_due(T0 + 10, 30)) == [
        ("b", "timeout", T0 + 1),
        ("b", "resume", T0 + 2),
        ("a", "other", T0 + 3),
        ("a", "timeout", T0 + 4),  # added in the same commit that cancelled the old one
    ]


def test_concurrent_commits_from_one_version_let_exactly_one_writer_win(backend: Backend) -> None:
    row = new_instance(backend.open(), "a1")
    writers = [backend.open() for _ in range(6)]
    barrier = threading.Barrier(len(writers))
    outcomes: list[str] = []

    def write(index: int, store: Store) -> None:
        barrier.wait()
        try:
            step(store, row, {"kind": "step", "writer": index}, state=f"by-{index}")
        except ConflictError:
            outcomes.append("conflict")
        else:
            outcomes.append(f"by-{index}")

    run_threads([partial(write, i, s) for i, s in enumerate(writers)])
    winners = [o for o in outcomes if o != "conflict"]
    assert len(winners) == 1
    assert outcomes.count("conflict") == len(writers) - 1
    final = writers[0].get("a1")
    assert final is not None
    assert (final.state, final.version) == (winners[0], 2)
    audit = writers[0].audit("a1")
    assert [r.seq for r in audit] == [1, 2]
    assert f"by-{audit[1].payload['writer']}" == winners[0]


# ---------------------------------------------------------------------- audit


def test_audit_lists_one_instance_in_order_and_all_instances_in_creation_order(store: Store) -> None:
    b = new_instance(store, "b")
    a = new_instance(store, "a")
    b = step(store, b, {"kind": "b2"})
    a = step(store, a, {"kind": "a2"}, {"kind": "a3"})
    b = step(store, b, {"kind": "b3"})
    assert [(r.instance, r.seq, r.kind) for r in store.audit("a")] == [("a", 1, "start"), ("a", 2, "a2"), ("a", 3, "a3")]
    assert [(r.instance, r.seq) for r in store.audit()] == [("b", 1), ("b", 2), ("b", 3), ("a", 1), ("a", 2), ("a", 3)]
    assert verify_chain(store.audit()) is None


def test_the_database_refuses_to_update_or_delete_audit_records(backend: Backend, store: Store) -> None:
    row = new_instance(store, "a1")
    step(store, row)
    before = store.audit()
    for statement in (
        "UPDATE audit SET payload = '{}' WHERE seq = 2",
        "UPDATE audit SET hash = 'x'",
        "DELETE FROM audit WHERE seq = 2",
        "DELETE FROM audit",
        *(["TRUNCATE audit"] if backend.name == "postgres" else []),
    ):
        with pytest.raises(Exception, match="append-only"):
            backend.raw(statement)
    assert store.audit() == before
    assert verify_chain(store.audit()) is None


def test_audit_payloads_round_trip_byte_exactly_and_still_verify(store: Store) -> None:
    payload = {
        "kind": "step",
        "text": "Zürich → 東京 🚀 ﷽ e\u0301 \"quoted\" back\\slash \x00\x1f\u2028 tab\t",
        "amount": "12345678901234567890.000000001",
        "big": 2**70,
        "float": 0.1,
        "neg": -0.0,
        "nested": {"z": [1, {"y": None}], "a": []},
    }
    row = new_instance(store, "ünï-😀")
    step(store, row, payload)
    (_, record) = store.audit("ünï-😀")
    expected = records_for("ünï-😀", [{"kind": "start"}, payload])[1]
    assert record == expected
    assert record.payload_json() == expected.payload_json()
    assert verify_chain(store.audit()) is None


# ---------------------------------------------------------------------- values


def test_values_context_and_pending_json_round_trip_exactly(store: Store) -> None:
    values = {
        "amount": "0.10",  # decimals travel as strings: no float rounding, trailing zeros kept
        "total": "100000000000000000000.01",
        "count": 2**63 + 1,
        "ratio": 1e-300,
        "who": "Ωmega 🙂 ñ 中文 \u200f עברית",
        "set": ["a", "b", "c"],
        "flag": False,
        "none": None,
        "nested": {"list": [[], {}, [1, "2", None]], "empty": ""},
        "ctl": "\x00\x01\n",
    }
    context = {"tenant": "ääkkönen", "limit": "5000.00"}
    row = new_instance(store, "v1", values=values, context=context, pending={"after": values}, compensations=[{"after": values}])
    got = store.get("v1")
    assert got == row
    assert got is not None
    assert json.dumps(got.values, sort_keys=True) == json.dumps(values, sort_keys=True)
    assert isinstance(got.values["amount"], str)
    assert isinstance(got.values["count"], int)


def test_a_large_payload_and_many_records_round_trip(store: Store) -> None:
    blob = "ä" * 1_000_000 + "🙂" * 250_000
    row = new_instance(store, "big", values={"blob": blob})
    payloads = [{"kind": "step", "i": i, "data": "x" * 1000} for i in range(300)]
    new = step(store, row, {"kind": "blob", "blob": blob}, *payloads, values={"blob": blob[::-1]})
    got = store.get("big")
    assert got == new
    assert got is not None
    assert got.values["blob"] == blob[::-1]
    audit = store.audit("big")
    assert len(audit) == 302
    assert audit[1].payload["blob"] == blob
    assert verify_chain(audit) is None


# ---------------------------------------------------------------------- due work


def test_claim_due_returns_only_due_unclaimed_timers_in_due_order(store: Store) -> None:
    new_instance(store, "a", timers=[timer("a", T0 + 30), timer("a", T0 + 10, "resume", version=4, step=2), timer("a", T0 + 20)])
    new_instance(store, "b", timers=[timer("b", T0 + 10), timer("b", T0 + 31)])
    assert store.claim_due(T0 + 9.999, 60) == []
    first = store.claim_due(T0 + 30, 60, worker="w1")
    assert claimed(first) == [("a", "resume", T0 + 10), ("b", "timeout", T0 + 10), ("a", "timeout", T0 + 20), ("a", "timeout", T0 + 30)]
    assert (first[0].version, first[0].payload) == (4, {"step": 2})
    assert first[0].id < first[1].id  # ties on due_at go by creation
    assert claimed(store.claim_due(T0 + 31, 60, worker="w2")) == [("b", "timeout", T0 + 31)]
    assert store.claim_due(T0 + 31, 60, worker="w3") == []


def test_a_claimed_timer_is_not_returned_again_until_its_lease_expires(store: Store) -> None:
    new_instance(store, "a", timers=[timer("a", T0)])
    (first,) = store.claim_due(T0, 30, worker="w1")
    assert store.claim_due(T0 + 29.9, 30, worker="w2") == []
    assert store.claim_due(T0 + 30, 30, worker="w2") == []  # the lease runs to T0 + 30 inclusive
    (again,) = store.claim_due(T0 + 30.5, 30, worker="w2")  # w1 died: its claim expired
    assert again == first
    assert store.claim_due(T0 + 60, 30, worker="w3") == []  # w2's lease runs to T0 + 60.5


def test_claim_due_honours_the_limit(store: Store) -> None:
    new_instance(store, "a", timers=[timer("a", T0 + i) for i in range(7)])
    assert [t.due_at for t in store.claim_due(T0 + 100, 30, limit=3)] == [T0, T0 + 1, T0 + 2]
    assert [t.due_at for t in store.claim_due(T0 + 100, 30, limit=3)] == [T0 + 3, T0 + 4, T0 + 5]
    assert store.claim_due(T0 + 100, 30, limit=0) == []
    assert [t.due_at for t in store.claim_due(T0 + 100, 30, limit=3)] == [T0 + 6]


def test_a_finished_timer_is_never_claimed_again(store: Store) -> None:
    new_instance(store, "a", timers=[timer("a", T0), timer("a", T0 + 1)])
    done, kept = store.claim_due(T0 + 1, 30)
    store.finish_timer(done.id)
    assert store.claim_due(T0 + 10_000, 30) == [kept]
    store.finish_timer(kept.id)
    assert store.claim_due(T0 + 20_000, 30) == []


def test_two_store_objects_in_threads_never_claim_the_same_timer(backend: Backend) -> None:
    setup = backend.open()
    total = 120
    for i in range(0, total, 12):
        new_instance(setup, f"i{i}", timers=[timer(f"i{i}", T0 + j) for j in range(i, i + 12)])
    workers = [backend.open() for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    got: dict[int, list[int]] = {}

    def drain(index: int, store: Store) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := store.claim_due(T0 + total, 600, limit=3, worker=f"w{index}"):
            mine.extend(t.id for t in batch)
        got[index] = mine

    run_threads([partial(drain, i, s) for i, s in enumerate(workers)])
    every = [tid for ids in got.values() for tid in ids]
    assert len(every) == total
    assert len(set(every)) == total


CLAIM_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from railguard.runtime import SQLiteStore
    from railguard.runtime.postgres import PostgresStore
    kind, target, dsn, barrier, name, now = sys.argv[1:7]
    store = SQLiteStore(target) if kind == "sqlite" else PostgresStore(dsn, schema=target)
    Path(barrier, "ready-" + name).touch()
    while not Path(barrier, "go").exists():
        time.sleep(0.005)
    ids = []
    while batch := store.claim_due(float(now), 600.0, limit=2, worker=name):
        ids.extend(t.id for t in batch)
    store.close()
    print(json.dumps(ids))
    """
)


def test_worker_processes_never_claim_the_same_timer(backend: Backend, tmp_path: Path) -> None:
    setup = backend.open()
    total = 150
    for i in range(0, total, 10):
        new_instance(setup, f"i{i}", timers=[timer(f"i{i}", T0 + j) for j in range(i, i + 10)])
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    names = [f"p{n}" for n in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM_WORKER, backend.name, backend.target, PG_DSN, str(barrier), name, str(T0 + total)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        deadline = 60.0
        waited = 0.0
        while not all((barrier / f"ready-{name}").exists() for name in names):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            assert waited < deadline, "the worker processes did not start"
            threading.Event().wait(0.01)
            waited += 0.01
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs), [err for _, err in outputs]
    claims = [json.loads(out) for out, _ in outputs]
    every = [tid for ids in claims for tid in ids]
    assert len(every) == total
    assert len(set(every)) == total


def run_threads(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------- the engine on both stores


PEOPLE = StaticDirectory({
    "sam": ["support"], "mia": ["manager"], "pay": ["payments"], "cus": ["customer"],
    "bot": ["system"], "ops": ["operator"], "ann": ["author"], "rev": ["reviewer"], "ci": ["ci"],
})  # fmt: skip


class Crash(BaseException):
    """The worker process dies inside an effect handler."""


@dataclass
class Outside:
    """Fake external systems; ``crash``/``failing`` script what goes wrong."""

    crash: set[tuple[str, str]] = field(default_factory=set)  # (effect, instance)
    failing: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, int, bool]] = field(default_factory=list)

    def effects(self, spec: Spec) -> Effects:
        effects = Effects()
        for t in spec.transitions:
            for name in (t.effect, t.compensate):
                if name is not None:
                    effects.register(name, self.handler(name))
        return effects

    def handler(self, name: str) -> Callable[[EffectCall], Any]:
        def run(call: EffectCall) -> Any:
            self.calls.append((name, call.key, call.attempt, call.compensation))
            if (name, call.instance) in self.crash:
                self.crash.discard((name, call.instance))
                raise Crash(name)
            if name in self.failing:
                raise RuntimeError(f"{name} is down")
            return {"ok": name, "amount": "12.50", "note": "ça marche ✓"}

        return run


def scenario(open_store: Callable[[], Store], start: datetime) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]], list[tuple[str, str, int, bool]]]:
    """Drive all three examples through success, refusal, compensation and a crash resumed by
    a later worker; return the audit payloads without wall-clock fields, every instance's final
    (state, status, version), and the effect calls."""
    specs = {name: load(EXAMPLES / f"{name}.yaml") for name in ("refund", "order", "deploy")}
    clock = ManualClock(start)
    outside = Outside(crash={("payments.charge", "o2")}, failing={"shipping.dispatch"})
    store = open_store()

    def engine(name: str, worker: str = "w1") -> Engine:
        return Engine(
            specs[name], store, PEOPLE, effects=outside.effects(specs[name]), clock=clock,
            allow_unverified="contract test", retry=RetryPolicy(attempts=2, backoff=1.0), worker=worker,
        )  # fmt: skip

    refund, order, deploy = engine("refund"), engine("order"), engine("deploy")
    refund.start("r1", "sam")
    refund.fire("r1", "request", "sam", {"amount": 120})
    refund.fire("r1", "approve", "sam")  # refused: four eyes
    refund.fire("r1", "approve", "mia")
    refund.fire("r1", "pay", "pay")
    refund.fire("r1", "pay", "pay")  # refused: finished
    clock.advance(1.25)
    order.start("o1", "cus")
    order.fire("o1", "place", "cus", {"total": 4999})
    order.fire("o1", "reserve", "bot")
    order.fire("o1", "charge", "bot")  # charged, then shipping fails: compensate in reverse
    order.fire("o1", "ship", "bot")
    order.start("o2", "cus")
    order.fire("o2", "place", "cus", {"total": 10})
    order.fire("o2", "reserve", "bot")
    with pytest.raises(Crash):
        order.fire("o2", "charge", "bot")  # the process dies inside the charge
    crashed = store.get("o2")
    assert crashed is not None
    assert crashed.status == "effect-pending"
    assert engine("order", "w2").run_due() == []  # the dead worker's lease has not expired
    clock.advance(31)
    resumed = engine("order", "w2").run_due()  # another worker resumes the charge, same key
    assert [(r.instance, r.state) for r in resumed] == [("o2", "charged")]
    order.abort("o2", "ops", "customer called")
    deploy.start("d1", "ann")
    deploy.fire("d1", "submit", "ann", {"environment": "production"})
    deploy.fire("d1", "report_red", "ci")
    deploy.fire("d1", "retry", "ci")
    deploy.fire("d1", "report_green", "ci")
    deploy.fire("d1", "approve", "ann")  # refused: author cannot approve
    deploy.fire("d1", "approve", "rev")
    deploy.fire("d1", "release", "ci")
    clock.advance(3600)
    assert engine("order", "w3").run_due() == []

    audit = store.audit()
    assert verify_chain(audit) is None
    payloads = [{k: v for k, v in r.payload.items() if k not in WALL_CLOCK_FIELDS} for r in audit]
    finals = []
    for instance in store.instances():
        row = store.get(instance)
        assert row is not None
        finals.append((row.state, row.status, row.version))
    store.close()
    return payloads, finals, outside.calls


def test_the_engine_runs_the_same_scenario_identically_on_both_stores(tmp_path: Path) -> None:
    needs_postgres()
    schema = f"rg_test_{uuid.uuid4().hex[:16]}"
    try:
        on_sqlite = scenario(lambda: SQLiteStore(tmp_path / "engine.db"), datetime(2026, 1, 1, tzinfo=UTC))
        on_postgres = scenario(lambda: PostgresStore(PG_DSN, schema=schema), datetime(2031, 7, 15, 12, 34, 56, 789000, tzinfo=UTC))
    finally:
        with PostgresStore(PG_DSN, schema=schema) as cleaner:
            cleaner.drop()
    payloads, finals, calls = on_sqlite
    assert finals == [("paid", "done", 7), ("failed", "done", 11), ("failed", "done", 10), ("released", "done", 9)]
    assert {p["kind"] for p in payloads} == {"start", "step", "refusal", "effect-call", "effect-failed", "compensation", "error-exit", "abort"}
    charges = [key for name, key, _, _ in calls if name == "payments.charge"]
    assert len(charges) == 3
    assert charges[1] == charges[2]
    assert on_postgres[0] == payloads  # identical apart from the wall-clock `at`
    assert on_postgres[1:] == on_sqlite[1:]


# ---------------------------------------------------------------------- PostgreSQL specifics


def test_an_unreachable_postgres_server_is_a_one_sentence_store_error_naming_the_host() -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore("postgresql://someone:s3cret@127.0.0.1:1/db", connect_timeout=2)
    message = str(caught.value)
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:1 (database `db`): ")
    assert "\n" not in message
    assert "s3cret" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    with pytest.raises(StoreError, match="cannot parse the PostgreSQL DSN") as malformed:
        PostgresStore("host=x password=s3cret 'unterminated")
    assert "s3cret" not in str(malformed.value)


def test_a_postgres_store_reconnects_after_its_session_is_killed() -> None:
    needs_postgres()
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"rg_test_{uuid.uuid4().hex[:16]}"
    name = f"railguard-test-{uuid.uuid4().hex[:12]}"
    store = PostgresStore(make_conninfo(PG_DSN, application_name=name), schema=schema)
    try:
        new_instance(store, "a1")
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchall()
        assert killed == [(True,)]
        with pytest.raises(StoreError, match="lost the connection to PostgreSQL at"):
            store.get("a1")
        row = store.get("a1")
        assert row is not None
        assert row.id == "a1"
    finally:
        store.drop()
        store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.get("a1")


def test_postgres_stores_opened_at_once_create_the_schema_once() -> None:
    needs_postgres()
    schema = f"rg_test_{uuid.uuid4().hex[:16]}"
    stores: list[PostgresStore] = []
    lock = threading.Lock()

    def open_one() -> None:
        opened = PostgresStore(PG_DSN, schema=schema)
        with lock:
            stores.append(opened)

    try:
        run_threads([open_one] * 6)
        new_instance(stores[0], "a1")
        assert [s.instances() for s in stores] == [["a1"]] * 6
        stores[0].reset()
        assert stores[1].instances() == []
    finally:
        stores[0].drop()
        for s in stores:
            s.close()


# ---------------------------------------------------------------------- the global log (issue 14)


def test_concurrent_writers_leave_the_global_log_without_gaps_or_duplicates(backend: Backend) -> None:
    rows = [new_instance(backend.open(), f"g{k}") for k in range(4)]
    writers = [backend.open() for _ in range(4)]
    barrier = threading.Barrier(len(writers) * 2)

    def write(index: int, store: Store) -> None:
        barrier.wait()
        row = rows[index % 4]
        for _ in range(10):
            try:
                row = step(store, row, {"kind": "step", "writer": index})
            except ConflictError:  # a lost race writes nothing, so it takes no position either
                fresh = store.get(row.id)
                assert fresh is not None
                row = fresh

    run_threads([partial(write, i, writers[i % 4]) for i in range(8)])
    reader = backend.open()
    entries = reader.log_entries()
    assert [e.gseq for e in entries] == list(range(1, len(entries) + 1))
    assert len(entries) == len(reader.audit())
    assert {(e.instance, e.seq, e.hash) for e in entries} == {(r.instance, r.seq, r.hash) for r in reader.audit()}
    assert reader.unlogged() == 0


def test_a_read_only_store_creates_nothing_and_refuses_writes(backend: Backend) -> None:
    readonly: dict[str, Any] = {"readonly": True}
    with pytest.raises(StoreError, match=r"is not a railguard store|unable to open"):
        SQLiteStore(backend.target, **readonly) if backend.name == "sqlite" else PostgresStore(PG_DSN, schema=backend.target, **readonly)
    if backend.name == "sqlite":
        assert not Path(backend.target).exists() or Path(backend.target).stat().st_size == 0
    row = new_instance(backend.open(), "ro")
    store: Store = SQLiteStore(backend.target, **readonly) if backend.name == "sqlite" else PostgresStore(PG_DSN, schema=backend.target, **readonly)
    try:
        assert store.get("ro") == row
        with pytest.raises(StoreError):
            step(store, row, {"kind": "step"})
    finally:
        store.close()
