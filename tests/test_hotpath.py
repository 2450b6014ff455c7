"""The engine's fast step path keeps every guarantee: the bytes it writes are the ones written
before it (old chains and row digests still verify), each piece it puts together by hand is
byte for byte what the general encoder makes, and a row it did not write is still vouched."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from railguard.runtime import Engine, ManualClock, SQLiteStore, StaticDirectory, UnvouchedRow
from railguard.runtime.audit import AuditRecord, digest, seal_text
from railguard.runtime.codec import canonical_json
from railguard.runtime.engine import StepResult, _step_result
from railguard.runtime.integrity import fields_digest, row_digest, verify_store
from railguard.runtime.store import InstanceRow, make_row
from railguard.spec import loads

GOLDEN_SPEC = """
railguard: 1
name: golden
roles: {client: [g.send, g.note, g.tick]}
variables:
  payees: {type: set, of: {type: enum, values: [alice, bob, carol]}, context: true}
  limit: {type: decimal, min: 0, max: 1000, places: 2, context: true}
  sent: {type: decimal, min: 0, max: 1000, places: 2, initial: 0}
  n: {type: int, min: 0, max: 100, initial: 0}
  note: {type: str, max_length: 20, initial: ""}
states:
  open: {initial: true}
  sent: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - {event: tick, from: open, to: open, permission: g.tick, guard: n < 100, assign: {n: n + 1}}
  - event: note
    from: open
    to: open
    permission: g.note
    params: {text: {type: str, max_length: 20}}
    assign: {note: params.text}
  - event: send
    from: open
    to: sent
    permission: g.send
    params:
      to: {type: enum, values: [alice, bob, carol]}
      amount: {type: decimal, min: 0.01, max: 1000, places: 2}
    guard: params.to in payees and params.amount <= limit
    assign: {sent: params.amount}
"""

#: The fingerprint of the golden run below as the engine wrote it before the fast step path
#: (commit e7500cb): every payload's text, hash and row digest, and the final row's columns.
GOLDEN = "72e8a4e537d02c5b2bc9c01bb7d86a05e7dd976a027016e8bf76c035813fb9bb"


def golden_run(folder: str | Path) -> str:
    """Start, tick, a refused send, a unicode note, a refused stranger and a send, on a
    manual clock; the SHA-256 of every stored audit row and of the final instance row."""
    db = Path(folder) / "golden.db"
    engine = Engine(loads(GOLDEN_SPEC), SQLiteStore(db), StaticDirectory({"c": ["client"]}), clock=ManualClock(), allow_unverified="golden")
    engine.start("g1", "c", {"payees": ["carol", "alice"], "limit": "100.50"})
    engine.fire("g1", "tick", "c")
    engine.fire("g1", "send", "c", {"to": "bob", "amount": "5"})
    engine.fire("g1", "note", "c", {"text": "héllo \u2028 \"q\""})
    engine.fire("g1", "tick", "stranger")
    engine.fire("g1", "tick", "c")
    engine.fire("g1", "send", "c", {"to": "alice", "amount": "99.99"})
    engine.store.close()
    conn = sqlite3.connect(db)
    try:
        audit = conn.execute("SELECT instance, seq, payload, prev_hash, hash, gseq FROM audit ORDER BY gseq").fetchall()
        row = conn.execute("SELECT * FROM instances").fetchone()
    finally:
        conn.close()
    return hashlib.sha256(json.dumps([audit, row], ensure_ascii=False).encode()).hexdigest()


def test_the_engine_writes_the_very_bytes_it_wrote_before_the_fast_path(tmp_path: Path) -> None:
    assert golden_run(tmp_path) == GOLDEN


def test_the_golden_run_verifies_as_a_whole_store(tmp_path: Path) -> None:
    golden_run(tmp_path)
    with SQLiteStore(tmp_path / "golden.db", readonly=True) as store:
        report = verify_store(store, [loads(GOLDEN_SPEC)])
    assert (report.ok, report.records, report.instances) == (True, 7, 1)


def _reference_digest(row: InstanceRow) -> str:
    """The row digest as issue 14 defined it: the canonical JSON of the whole object."""
    body = {
        "id": row.id, "workflow": row.workflow, "spec_hash": row.spec_hash, "state": row.state, "values": row.values,
        "version": row.version, "status": row.status, "context": row.context, "pending": row.pending, "compensations": row.compensations,
    }
    return "sha256:" + hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=6)
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)
ROWS = st.builds(
    InstanceRow,
    id=st.text(max_size=8),
    workflow=st.text(max_size=8),
    spec_hash=st.text(max_size=8),
    state=st.text(max_size=8),
    values=st.dictionaries(st.text(max_size=4), JSONISH, max_size=4),
    version=st.integers(min_value=0),
    status=st.sampled_from(["active", "done", "stuck", "effect-pending", "compensating"]),
    audit_head=st.just("0" * 64),
    context=st.dictionaries(st.text(max_size=4), JSONISH, max_size=2),
    pending=st.none() | st.dictionaries(st.text(max_size=4), JSONISH, max_size=2),
    compensations=st.lists(st.dictionaries(st.text(max_size=4), JSONISH, max_size=2), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(ROWS)
def test_the_row_digest_put_together_by_field_is_the_digest_of_the_whole_row(row: InstanceRow) -> None:
    assert row_digest(row) == _reference_digest(row)
    assert fields_digest(
        row.id, row.workflow, row.spec_hash, row.state, row.values, row.version, row.status, row.context, row.pending, row.compensations,
        values_json=canonical_json(row.values),
    ) == _reference_digest(row)


def test_rows_and_results_made_through_their_slots_equal_the_dataclass_made_ones() -> None:
    args: dict[str, Any] = {
        "id": "i", "workflow": "w", "spec_hash": "h", "state": "s", "values": {"n": 1}, "version": 3, "status": "active",
        "audit_head": "a", "context": {}, "pending": None, "compensations": [], "created_at": 1.0, "updated_at": 2.0,
    }
    encoded = (args["values"], '{"n":1}')
    made = make_row(*args.values(), encoded)
    built = InstanceRow(**args, encoded=encoded)
    assert made == built
    assert [getattr(made, f.name) for f in fields(InstanceRow)] == [getattr(built, f.name) for f in fields(InstanceRow)]
    record = AuditRecord("i", 1, {"kind": "start"}, "0" * 64, "h")
    result = _step_result("i", True, "e", None, "", "s", {"n": 1}, 3, "active", (record,))
    assert result == StepResult("i", True, "e", None, "", "s", {"n": 1}, 3, "active", (record,))
    with pytest.raises(AttributeError):
        result.state = "t"  # type: ignore[misc]
    text = canonical_json({"instance": "i", "seq": 1, "kind": "start"})
    sealed = seal_text("i", "0" * 64, 1, text)
    assert sealed == AuditRecord("i", 1, {"instance": "i", "seq": 1, "kind": "start"}, "0" * 64, digest("0" * 64, text))
    assert (sealed.payload_json(), sealed.encoded) == (text, (sealed.payload, text))


CYCLE = """
railguard: 1
name: cycle
roles: {runner: [cycle.step]}
variables:
  n: {type: int, min: 0, initial: 0}
states:
  s0: {initial: true}
  s1: {}
  failed: {terminal: failure}
on_error: failed
transitions:
  - {event: step, from: s0, to: s1, permission: cycle.step, assign: {n: n + 1}}
  - {event: step, from: s1, to: s0, permission: cycle.step, assign: {n: n + 1}}
"""


class CountingStore(SQLiteStore):
    """A SQLite store that counts how often the engine reads an instance's log."""

    log_reads = 0

    def audit(self, instance: str | None = None) -> list[AuditRecord]:
        self.log_reads += 1
        return super().audit(instance)


def _edit(db: Path, vals: str) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE instances SET vals = ? WHERE id = 'c1'", (vals,))
    finally:
        conn.close()


def _cycling(db: Path) -> tuple[Engine, CountingStore]:
    store = CountingStore(db)
    engine = Engine(loads(CYCLE), store, StaticDirectory({"r": ["runner"]}), clock=ManualClock(), allow_unverified="hot path")
    engine.start("c1", "r")
    engine.fire("c1", "step", "r")
    return engine, store


def test_a_row_read_back_as_the_engine_wrote_it_is_vouched_without_reading_the_log(tmp_path: Path) -> None:
    engine, store = _cycling(tmp_path / "c.db")
    assert (engine.get("c1").version, engine.get("c1").values, store.log_reads) == (2, {"n": 1}, 0)


@pytest.mark.parametrize("vals", ['{"n":true}', '{"n":1.0}', '{"n":5}', '{"n":1,"m":0}'])
def test_an_edited_row_is_refused_by_the_engine_that_wrote_it_even_where_python_sees_it_equal(tmp_path: Path, vals: str) -> None:
    engine, store = _cycling(tmp_path / "c.db")
    _edit(tmp_path / "c.db", vals)
    with pytest.raises(UnvouchedRow, match="the row was edited behind the engine's back"):
        engine.get("c1")
    assert store.log_reads == 1


def test_the_first_step_after_start_needs_no_log_read_and_stays_vouched(tmp_path: Path) -> None:
    engine, store = _cycling(tmp_path / "c.db")
    engine.fire("c1", "step", "r")
    assert store.log_reads == 0
    with SQLiteStore(tmp_path / "c.db", readonly=True) as fresh:
        report = verify_store(fresh, [loads(CYCLE)])
    assert (report.ok, report.records) == (True, 3)


# ---------------------------------------------------------------------- step templates


def _dump(db: Path) -> tuple[list[Any], list[Any]]:
    conn = sqlite3.connect(db)
    try:
        return (conn.execute("SELECT * FROM audit ORDER BY gseq").fetchall(), conn.execute("SELECT * FROM instances ORDER BY rowid").fetchall())
    finally:
        conn.close()


class ShiftingDirectory:
    """A directory whose members gain and lose roles between calls (as a live one may)."""

    def __init__(self) -> None:
        self.calls = 0

    def roles_of(self, principal: str) -> frozenset[str]:
        self.calls += 1
        if principal == "stranger":
            return frozenset()
        return frozenset({"client"} | ({"auditor"} if self.calls % 3 == 0 else set()))


ACTORS = st.sampled_from(["c", "d", "stranger", "c\x00railguard-slot-1\x00", '"\x00railguard-slot-0\x00'])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), ACTORS, st.just({})),
        st.tuples(st.just("note"), ACTORS, st.fixed_dictionaries({"text": st.text(max_size=6)})),
        st.tuples(st.just("send"), ACTORS, st.fixed_dictionaries({"to": st.sampled_from(["alice", "bob"]), "amount": st.sampled_from(["5", "200"])})),
    ),
    max_size=12,
)


def _scripted(db: Path, steps: list[tuple[str, str, dict[str, Any]]], *, templates: bool) -> tuple[list[Any], list[Any]]:
    engine = Engine(loads(GOLDEN_SPEC), SQLiteStore(db), ShiftingDirectory(), clock=ManualClock(), allow_unverified="templates")
    if not templates:
        engine._templates = None
    for instance in ("a", "b"):
        engine.start(instance, "c", {"payees": ["alice"], "limit": "100"})
        for event, actor, params in steps:
            engine.fire(instance, event, actor, params)
    engine.store.close()
    return _dump(db)


@settings(max_examples=60, deadline=None)
@given(STEPS)
def test_steps_written_from_templates_are_the_bytes_the_general_encoder_writes(steps: list[tuple[str, str, dict[str, Any]]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        fast = _scripted(Path(folder) / "fast.db", steps, templates=True)
        general = _scripted(Path(folder) / "general.db", steps, templates=False)
    assert fast == general


def test_a_template_is_refused_where_its_fixed_text_holds_a_placeholder(tmp_path: Path) -> None:
    # the actor's text encodes to a slot's placeholder text ('"\u0000railguard-slot-3\u0000"')
    actor = '"\x00railguard-slot-3\x00'
    engine = Engine(loads(GOLDEN_SPEC), SQLiteStore(tmp_path / "t.db"), StaticDirectory({actor: ["client"]}), clock=ManualClock(), allow_unverified="templates")
    engine.start("a", actor, {"payees": ["alice"], "limit": "100"})
    ticked = engine.fire("a", "tick", actor)
    assert engine._templates is not None
    assert list(engine._templates.values()) == [None]
    assert (ticked.records[-1].payload["actor"], ticked.records[-1].payload["params"], ticked.values["n"]) == (actor, {}, 1)
    with SQLiteStore(tmp_path / "t.db", readonly=True) as store:
        assert verify_store(store, [loads(GOLDEN_SPEC)]).ok


KEYS = st.text(min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, JSONISH, min_size=1, max_size=6), st.data())
def test_a_filled_template_is_the_canonical_json_of_the_filled_payload(body: dict[str, Any], data: st.DataObject) -> None:
    from railguard.runtime.audit import SLOTS, Template

    keys = sorted(body)
    opened = data.draw(st.lists(st.sampled_from(keys), unique=True, min_size=1, max_size=min(len(keys), len(SLOTS))))
    values = [data.draw(JSONISH) for _ in opened]
    template = Template.of({**body, **{key: SLOTS[i] for i, key in enumerate(opened)}}, len(opened))
    assert template is not None
    assert template.fill([canonical_json(v) for v in values]) == canonical_json({**body, **dict(zip(opened, values, strict=True))})
