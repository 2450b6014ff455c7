"""``railguard migrate run`` and :func:`railguard.runtime.migrate.migrate_instances`: live
refund instances move to a spec with a new state (SQLite and PostgreSQL), each in one
transaction with an audited ``migrated`` record; a migration that breaks an invariant is
refused with its counterexample; certificates gate both sides; replay and ``audit verify``
follow the migration; a crash mid-migration leaves every instance migrated or not."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from railguard.cli import main
from railguard.runtime import (
    CertificateRequired,
    EffectCall,
    Effects,
    Engine,
    ExecutionError,
    ManualClock,
    RetryPolicy,
    SQLiteStore,
    StaticDirectory,
    Store,
)
from railguard.runtime.audit import verify_chain
from railguard.runtime.effects import effect_key
from railguard.runtime.integrity import verify_store
from railguard.runtime.lifecycle import LifecycleError, Owed, Phase, RecordKind, Status, advance
from railguard.runtime.migrate import MigrationRefused, migrate_instances, spec_lineage
from railguard.runtime.replay import replay_instance, replay_log
from railguard.spec import Spec, load, loads
from railguard.verifier import verify
from railguard.verifier.certificate import Certificate, issue, sign
from railguard.verifier.keys import TrustSet, generate_key, write_key_pair
from railguard.verifier.migration import (
    Migration,
    MigrationCheck,
    check_migration,
    load_migration,
    loads_migration,
)

from .conftest import ROOT
from .crashkit import open_store, postgres_target

EVOLUTION = ROOT / "tests" / "evolution"
OLD_FILE, NEW_FILE = EVOLUTION / "refund.yaml", EVOLUTION / "refund_review.yaml"
GOOD, DOUBLED = EVOLUTION / "refund_to_review.migration.yaml", EVOLUTION / "refund_to_review_doubled.migration.yaml"
PEOPLE = StaticDirectory({"sue": ["support"], "max": ["manager"], "bot": ["payments"], "op": ["operator"]})


@functools.cache
def specs() -> tuple[Spec, Spec]:
    return load(OLD_FILE), load(NEW_FILE)


@functools.cache
def migration() -> Migration:
    return load_migration(GOOD, *specs())


@functools.cache
def proof() -> MigrationCheck:
    return check_migration(*specs(), migration())


CI = generate_key()
TRUST = TrustSet.of([CI])


@functools.cache
def certificate(which: int) -> Certificate:
    return sign(issue(verify(specs()[which])), CI)


class Died(BaseException):
    """The process dies inside a handler (not an Exception: the engine must not catch it)."""


def refund_effects(mode: dict[str, str]) -> Effects:
    def pay(call: EffectCall) -> dict[str, str]:
        if mode["pay"] == "die":
            raise Died
        return {"ref": call.key}

    effects = Effects()
    effects.register("payments.refund", pay, RetryPolicy(attempts=1))
    return effects


def populate(store: Store, clock: ManualClock | None = None) -> dict[str, str]:
    """Refunds of OLD in every resting state, and one in the middle of its payment; returns
    instance -> what it is."""
    mode = {"pay": "ok"}
    old = specs()[0]
    engine = Engine(old, store, PEOPLE, effects=refund_effects(mode), certificate=certificate(0), trusted_keys=TRUST, clock=clock, lease=1.0)
    engine.start("draft", "sue")
    for name, amount in (("small", 200), ("large", 4000)):
        engine.start(name, "sue")
        engine.fire(name, "request", "sue", {"amount": amount})
    engine.start("approved", "sue")
    engine.fire("approved", "request", "sue", {"amount": 1500})
    engine.fire("approved", "approve", "max")
    engine.start("paid", "sue")
    engine.fire("paid", "request", "sue", {"amount": 90})
    engine.fire("paid", "approve", "max")
    engine.fire("paid", "pay", "bot")
    engine.start("rejected", "sue")
    engine.fire("rejected", "request", "sue", {"amount": 90})
    engine.fire("rejected", "reject", "max")
    engine.start("paying", "sue")
    engine.fire("paying", "request", "sue", {"amount": 700})
    engine.fire("paying", "approve", "max")
    mode["pay"] = "die"
    with pytest.raises(Died):
        engine.fire("paying", "pay", "bot")
    return {"draft": "draft", "small": "requested", "large": "requested", "approved": "approved", "paid": "paid", "rejected": "rejected", "paying": "effect-pending"}


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"kind": "sqlite", "path": str(tmp_path / "refunds.db")}
    else:
        yield from postgres_target("migrate")


def db_args(target: dict[str, str]) -> list[str]:
    if target["kind"] == "sqlite":
        return ["--db", target["path"]]
    return ["--db", target["dsn"], "--schema", target["schema"]]


def write_certificate(tmp_path: Path, which: int) -> str:
    path = tmp_path / f"cert{which}.json"
    path.write_text(certificate(which).dumps())
    if not (tmp_path / "ci.key.pub").exists():
        write_key_pair(CI, tmp_path / "ci.key")
    return str(path)


# ---------------------------------------------------------------------- migrating live refunds


def test_a_proved_migration_moves_live_refunds_into_the_new_review_state(target: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = specs()
    store = open_store(target)
    try:
        populate(store)
        before = {i: store.get(i) for i in store.instances()}
    finally:
        store.close()
    cert = write_certificate(tmp_path, 1)
    code = main(["migrate", "run", *db_args(target), str(OLD_FILE), str(NEW_FILE), str(GOOD), "--all", "--certificate", cert, "--trust", str(Path(cert).parent / "ci.key.pub"), "--as", "ops", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # `paying` is in the middle of its payment: left behind, said plainly
    outcomes = {i["instance"]: i["outcome"] for i in out["instances"]}
    assert outcomes == {"draft": "migrated", "small": "migrated", "large": "migrated", "approved": "migrated", "paid": "finished", "rejected": "finished", "paying": "busy"}
    busy = next(i for i in out["instances"] if i["instance"] == "paying")
    assert "middle of effect `payments.refund`" in busy["reason"]
    store = open_store(target)
    try:
        rows = {i: store.get(i) for i in store.instances()}
        assert {i: (r.state, r.values.get("risk")) for i, r in rows.items() if r is not None and r.spec_hash == new.content_hash} == {
            "draft": ("draft", "low"), "small": ("review", "low"), "large": ("review", "high"), "approved": ("approved", "low"),
        }
        for left in ("paid", "rejected", "paying"):
            assert rows[left] == before[left]  # untouched, still on OLD
        record = store.audit("large")[-1]
        assert record.kind == "migrated"
        p = record.payload
        assert (p["from"]["spec_hash"], p["to"]["spec_hash"], p["spec_hash"]) == (old.content_hash, new.content_hash, new.content_hash)
        assert p["migration"]["hash"] == migration().content_hash
        assert p["migration"]["data"] == migration().to_data()
        assert p["before"] == {"state": "requested", "status": "active", "values": before["large"].values}  # type: ignore[union-attr]
        assert p["after"]["state"] == "review"
        assert p["after"]["values"]["risk"] == "high"
        assert p["by"] == "ops"
        assert p["certificate"]["verified"] is True
        assert record.prev_hash == before["large"].audit_head  # type: ignore[union-attr]  # continues the chain
        assert verify_store(store).ok
        for instance in rows:
            assert replay_instance(store, new, instance, specs=[old]).ok, instance
        engine = Engine(new, store, PEOPLE, effects=refund_effects({"pay": "ok"}), certificate=certificate(1), trusted_keys=TRUST, earlier_specs=[old])
        assert engine.fire("large", "approve", "max").state == "approved"
        assert replay_instance(store, new, "large", specs=[old]).ok
    finally:
        store.close()


def test_a_dry_run_decides_every_instance_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    store = SQLiteStore(db)
    populate(store)
    records = [r.to_json() for r in store.audit()]
    store.close()
    code = main(["migrate", "run", "--db", str(db), str(OLD_FILE), str(NEW_FILE), str(GOOD), "--all", "--allow-unverified", "preview", "--dry-run", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [(i["outcome"], i["record"]) for i in out["instances"] if i["instance"] in ("small", "paid")] == [("migrated", None), ("finished", None)]
    store = SQLiteStore(db)
    assert [r.to_json() for r in store.audit()] == records


def test_running_the_migration_again_leaves_migrated_instances_as_they_are(tmp_path: Path) -> None:
    old, new = specs()
    store = SQLiteStore(tmp_path / "r.db")
    populate(store)
    first = migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["small"])
    again = migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["small", "nobody"])
    assert [i.outcome for i in first.instances] == ["migrated"]
    assert [i.outcome for i in again.instances] == ["already", "missing"]
    assert [r.kind for r in store.audit("small")] == ["start", "step", "migrated"]


def test_a_busy_instance_is_left_alone_until_it_rests_and_then_migrates(tmp_path: Path) -> None:
    old, new = specs()
    clock = ManualClock()
    store = SQLiteStore(tmp_path / "r.db")
    populate(store, clock)
    run = migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["paying"])
    assert run.instances[0].outcome == "busy"
    assert store.get("paying").status == "effect-pending"
    clock.advance(5)  # the lease of the call the crash cut short expires: a worker resumes it
    Engine(old, store, PEOPLE, effects=refund_effects({"pay": "ok"}), certificate=certificate(0), trusted_keys=TRUST, clock=clock).run_due()
    assert store.get("paying").state == "paid"  # type: ignore[union-attr]
    again = migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["paying"])
    assert again.instances[0].outcome == "finished"  # at rest now; `paid` is not in the state map
    assert verify_store(store).ok


def test_a_migration_that_loses_a_race_to_a_step_decides_again_on_the_fresh_instance(tmp_path: Path) -> None:
    old, new = specs()
    store = SQLiteStore(tmp_path / "r.db")
    populate(store)
    engine = Engine(old, store, PEOPLE, effects=refund_effects({"pay": "ok"}), certificate=certificate(0), trusted_keys=TRUST)
    commit = store.commit
    raced: list[str] = []

    def racing_commit(row: Any, expected: int, records: Any, timers: Any = (), cancel: Any = ()) -> None:
        if records and records[0].kind == "migrated" and not raced:
            raced.append(engine.fire(row.id, "approve", "max").state)  # another writer gets there first
        commit(row, expected, records, timers, cancel)

    store.commit = racing_commit  # type: ignore[method-assign]
    run = migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["large"])
    assert raced == ["approved"]
    assert (run.instances[0].outcome, run.instances[0].before, run.instances[0].after) == ("migrated", "approved", "approved")
    assert [r.kind for r in store.audit("large")] == ["start", "step", "step", "migrated"]
    assert replay_instance(store, new, "large", specs=[old]).ok


def test_a_finished_instance_moves_only_when_the_state_map_lists_its_terminal(tmp_path: Path) -> None:
    old, new = specs()
    text = GOOD.read_text().replace("  requested: review", "  requested: review\n  paid: paid")
    listing = loads_migration(text, old, new)
    store = SQLiteStore(tmp_path / "r.db")
    populate(store)
    run = migrate_instances(store, old, new, listing, certificate=certificate(1), trusted_keys=TRUST, instances=["paid", "rejected"])
    assert [i.outcome for i in run.instances] == ["migrated", "finished"]
    row = store.get("paid")
    assert row is not None
    assert (row.spec_hash, row.state, row.status) == (new.content_hash, "paid", "done")
    assert replay_instance(store, new, "paid", specs=[old]).ok


def test_the_lifecycle_migrates_only_a_resting_instance_and_keeps_what_it_owes() -> None:
    new = specs()[1]
    owed = Owed("payments.undo", 2, "request", {}, {})
    assert advance(new, Phase(Status.ACTIVE, "requested", (owed,)), RecordKind.MIGRATED, target="review") == Phase(Status.ACTIVE, "review", (owed,))
    assert advance(new, Phase(Status.DONE, "paid"), RecordKind.MIGRATED, target="paid") == Phase(Status.DONE, "paid")
    for phase, target in (
        (Phase(Status.EFFECT_PENDING, "approved"), "approved"),
        (Phase(Status.COMPENSATING, "cancelled", (owed,)), "cancelled"),
        (Phase(Status.STUCK, "approved"), "approved"),
        (Phase(Status.DONE, "paid"), "review"),  # a finished instance cannot start again
        (Phase(Status.ACTIVE, "approved", (owed,)), "cancelled"),  # the compensation would never run
        (Phase(Status.ACTIVE, "approved"), "nowhere"),
    ):
        with pytest.raises(LifecycleError):
            advance(new, phase, RecordKind.MIGRATED, target=target)


def test_an_order_that_owes_a_compensation_keeps_owing_it_on_new_and_new_runs_it(tmp_path: Path) -> None:
    old = load(EVOLUTION / "order.yaml")
    new_text = (EVOLUTION / "order.yaml").read_text().replace(
        "  total: {type: int, min: 0, max: 100000, initial: 0}", "  total: {type: int, min: 0, max: 100000, initial: 0}\n  priority: {type: bool, initial: false}"
    )
    new = loads(new_text, "order_priority.yaml")
    moving = loads_migration(f"from: {old.content_hash}\nto: {new.content_hash}\nvalues:\n  priority: 'total >= 1000'\n", old, new)
    calls: list[tuple[str, str]] = []

    def handler(call: EffectCall) -> dict[str, str]:
        calls.append((call.effect, call.key))
        if call.effect == "payments.charge":
            raise RuntimeError("card declined")
        return {"ok": call.key}

    effects = Effects()
    for name in ("inventory.reserve", "inventory.release", "payments.charge", "payments.refund", "shipping.dispatch"):
        effects.register(name, handler, RetryPolicy(attempts=1))
    people = StaticDirectory({"carol": ["customer"], "ops": ["system"]})
    store = SQLiteStore(tmp_path / "o.db")
    engine = Engine(old, store, people, effects=effects, allow_unverified="test")
    engine.start("o1", "carol")
    engine.fire("o1", "place", "carol", {"total": 4200})
    engine.fire("o1", "reserve", "ops")
    run = migrate_instances(store, old, new, moving, allow_unverified="test")
    assert [i.outcome for i in run.instances] == ["migrated"]
    assert [c["compensate"] for c in store.get("o1").compensations] == ["inventory.release"]  # type: ignore[union-attr]
    result = Engine(new, store, people, effects=effects, allow_unverified="test", earlier_specs=[old]).fire("o1", "charge", "ops")
    assert (result.state, result.status, result.values["priority"]) == ("failed", "done", True)
    assert calls[-1] == ("inventory.release", effect_key("o1", 3, "inventory.release"))  # the reservation called at record 3
    assert replay_instance(store, new, "o1", specs=[old]).ok
    assert verify_store(store).ok


# ---------------------------------------------------------------------- refusals


def test_a_migration_whose_value_map_breaks_an_invariant_is_refused_with_a_counterexample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = specs()
    db = tmp_path / "r.db"
    store = SQLiteStore(db)
    populate(store)
    records = len(store.audit())
    doubled = load_migration(DOUBLED, old, new)
    with pytest.raises(MigrationRefused) as refused:
        migrate_instances(store, old, new, doubled, certificate=certificate(1), trusted_keys=TRUST)
    check = refused.value.check
    assert check is not None
    assert check.outcome == "violated"
    example = next(o.counterexample for o in check.obligations if o.rule == "RGM103" and o.counterexample is not None)
    assert example.mapped_values["amount"] > 5000
    assert example.values["amount"] <= 5000
    store.close()
    code = main(["migrate", "run", "--db", str(db), str(OLD_FILE), str(NEW_FILE), str(DOUBLED), "--all", "--certificate", write_certificate(tmp_path, 1), "--trust", str(tmp_path / "ci.key.pub")])
    assert code == 1
    assert "counterexample for RGM103" in capsys.readouterr().out
    store = SQLiteStore(db)
    assert len(store.audit()) == records  # nothing was touched
    assert all(store.get(i).spec_hash == old.content_hash for i in store.instances())  # type: ignore[union-attr]


def test_new_needs_its_own_certificate(tmp_path: Path) -> None:
    old, new = specs()
    store = SQLiteStore(tmp_path / "r.db")
    populate(store)
    with pytest.raises(CertificateRequired, match="does not admit NEW"):
        migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(0), trusted_keys=TRUST)
    with pytest.raises(CertificateRequired, match="has no certificate"):
        migrate_instances(store, old, new, migration(), check=proof())
    assert all(r.kind != "migrated" for r in store.audit())
    opted = migrate_instances(store, old, new, migration(), check=proof(), allow_unverified="hotfix", instances=["small"])
    assert opted.instances[0].outcome == "migrated"
    assert store.audit("small")[-1].payload["certificate"] == {"verified": False, "opt_out": "hotfix"}


def test_an_engine_of_new_runs_a_migrated_instance_and_still_refuses_one_of_old(tmp_path: Path) -> None:
    old, new = specs()
    store = SQLiteStore(tmp_path / "r.db")
    populate(store)
    migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["large"])
    engine_new = Engine(new, store, PEOPLE, effects=refund_effects({"pay": "ok"}), certificate=certificate(1), trusted_keys=TRUST, earlier_specs=[old])
    assert engine_new.fire("large", "approve", "max").accepted
    with pytest.raises(ExecutionError, match="started under spec"):
        engine_new.fire("small", "approve", "max")  # still on OLD: no migration, no run on NEW
    engine_old = Engine(old, store, PEOPLE, effects=refund_effects({"pay": "ok"}), certificate=certificate(0), trusted_keys=TRUST)
    with pytest.raises(ExecutionError):
        engine_old.fire("large", "pay", "bot")  # and OLD no longer runs the migrated one
    assert engine_old.fire("small", "approve", "max").accepted


def test_a_migration_for_other_specs_is_refused(tmp_path: Path) -> None:
    old, new = specs()
    store = SQLiteStore(tmp_path / "r.db")
    with pytest.raises(MigrationRefused, match="not from"):
        migrate_instances(store, new, old, migration(), check=proof(), certificate=certificate(0), trusted_keys=TRUST)


# ---------------------------------------------------------------------- replay and audit verify


def test_replay_follows_a_migrated_record_only_with_new_among_its_specs(tmp_path: Path) -> None:
    old, new = specs()
    store = SQLiteStore(tmp_path / "r.db")
    populate(store)
    migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["large"])
    records = store.audit("large")
    alone = replay_log(old, records)
    assert not alone.ok
    assert alone.seq == 3
    assert "was not given" in (alone.mismatch or "")
    both = replay_log(old, records, specs=[new])
    assert both.ok
    assert (both.state, both.spec_hash, both.values["risk"]) == ("review", new.content_hash, "high")


def test_a_forged_migrated_record_does_not_replay(tmp_path: Path) -> None:
    from railguard.runtime.audit import chain

    old, new = specs()
    store = SQLiteStore(tmp_path / "r.db")
    populate(store)
    migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["large"])
    records = store.audit("large")
    forged = dict(records[-1].payload)
    forged["after"] = {**forged["after"], "values": {**forged["after"]["values"], "risk": "low"}}
    del forged["instance"], forged["seq"]
    rechained = [*records[:-1], chain("large", records[-2].hash, 3, forged)]
    report = replay_log(old, rechained, specs=[new])
    assert not report.ok
    assert report.seq == 3
    assert "the migration gives" in (report.mismatch or "")


def test_audit_verify_finds_a_spec_changed_behind_the_logs_back(tmp_path: Path) -> None:
    old, new = specs()
    db = tmp_path / "r.db"
    store = SQLiteStore(db)
    populate(store)
    migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["large"])
    assert verify_store(store).ok
    store.close()
    with sqlite3.connect(db) as conn:  # run `small` on NEW without migrating it
        conn.execute("UPDATE instances SET spec_hash = ? WHERE id = 'small'", (new.content_hash,))
    store = SQLiteStore(db)
    tamper = verify_store(store).tamper
    assert tamper is not None
    assert tamper.instance == "small"
    # the row digest of its last record names the first problem (before the spec lineage)
    assert "the row was edited behind the engine's back" in tamper.reason
    assert not replay_instance(store, new, "small", specs=[old]).ok


# ---------------------------------------------------------------------- timers


def with_timeouts() -> tuple[Spec, Spec, Migration]:
    """OLD and NEW with a timeout on the waiting states, and the review migration between them."""
    old_text = OLD_FILE.read_text().replace("  requested: {}", "  requested: {timeout: {after: 1h}}")
    new_text = NEW_FILE.read_text().replace("  review:    {}", "  review:    {timeout: {after: 2h}}")
    old, new = loads(old_text, "old.yaml"), loads(new_text, "new.yaml")
    text = GOOD.read_text().replace(specs()[0].content_hash, old.content_hash).replace(specs()[1].content_hash, new.content_hash)
    return old, new, loads_migration(text, old, new)


def test_the_migration_cancels_the_timers_of_old_and_starts_the_timeout_of_new(tmp_path: Path) -> None:
    old, new, moving = with_timeouts()
    clock = ManualClock()
    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    engine = Engine(old, store, PEOPLE, effects=refund_effects({"pay": "ok"}), allow_unverified="test", clock=clock)
    engine.start("r", "sue")
    engine.fire("r", "request", "sue", {"amount": 4000})
    clock.advance(1800)
    start = clock.now().timestamp()
    run = migrate_instances(store, old, new, moving, allow_unverified="test", clock=clock)
    assert [i.outcome for i in run.instances] == ["migrated"]
    with sqlite3.connect(db) as conn:
        live = conn.execute("SELECT kind, due_at, payload FROM timers WHERE instance = 'r' AND done = 0").fetchall()
    assert [(k, d - start, json.loads(p)) for k, d, p in live] == [("timeout", 7200.0, {"state": "review"})]
    clock.advance(3600)  # OLD's deadline passes: nothing happens
    engine_new = Engine(new, store, PEOPLE, effects=refund_effects({"pay": "ok"}), allow_unverified="test", clock=clock, earlier_specs=[old])
    assert engine_new.run_due() == []
    assert store.get("r").state == "review"
    clock.advance(3601)  # NEW's deadline passes: the error exit
    assert [r.state for r in engine_new.run_due()] == ["cancelled"]
    assert replay_instance(store, new, "r", specs=[old]).ok
    assert verify_store(store).ok


# ---------------------------------------------------------------------- crash mid-migration


KILLS = 60
BATCH = 8
WORKER = Path(__file__).resolve().parent / "migrate_worker.py"


class Migrators:
    """The warm parent of the migrators (``tests/migrate_worker.py``)."""

    def __init__(self, errors: Path) -> None:
        self.errors = errors
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise AssertionError(f"the migrating process failed to start: {line!r}")

    def spawn(self, store: dict[str, str], instances: list[str]) -> int:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"store": store, "instances": instances, "errors": str(self.errors)}) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def failures(self) -> str:
        return self.errors.read_text() if self.errors.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def whole_or_untouched(store: Store, old: Spec, new: Spec, instances: list[str] | None = None) -> list[str]:
    """Every instance (of ``instances``, or else of the store) either on OLD with no
    ``migrated`` record, or on NEW with exactly one as its last record and the row as that
    record says; every chain verifies (of the whole store when ``instances`` is not given)."""
    problems = []
    if instances is None:
        report = verify_store(store)
        if not report.ok:
            problems.append(f"audit verify: {report.tamper}")
    for instance in store.instances() if instances is None else instances:
        row = store.get(instance)
        assert row is not None
        records = store.audit(instance)
        if instances is not None:
            broken = verify_chain(records) or spec_lineage(records, {instance: row})
            if broken is not None or row.audit_head != records[-1].hash or row.version != len(records):
                problems.append(f"{instance}: its chain does not verify or does not end at its head ({broken})")
        migrated = [r for r in records if r.kind == "migrated"]
        if row.spec_hash == old.content_hash:
            if migrated:
                problems.append(f"{instance}: on OLD, but its log has a migrated record")
        elif row.spec_hash == new.content_hash:
            last = records[-1]
            if len(migrated) != 1 or last is not migrated[0]:
                problems.append(f"{instance}: on NEW, but its log has {len(migrated)} migrated records")
            elif (row.state, row.values, row.status) != (last.payload["after"]["state"], last.payload["after"]["values"], last.payload["after"]["status"]):
                problems.append(f"{instance}: on NEW, but the row is not what its migrated record says")
        else:
            problems.append(f"{instance}: runs neither OLD nor NEW")
    return problems


@pytest.mark.slow
def test_sigkill_mid_migration_leaves_every_instance_migrated_or_not_and_every_chain_verifying(target: dict[str, str], tmp_path: Path) -> None:
    old, new = specs()
    rng = random.Random(20261201)
    store = open_store(target)
    engine = Engine(old, store, PEOPLE, effects=refund_effects({"pay": "ok"}), certificate=certificate(0), trusted_keys=TRUST)
    migrators = Migrators(tmp_path / "migrator-errors.txt")
    kills = interrupted = cycles = 0
    per_instance = 0.0  # how long a migrator takes per instance, measured by a first run left alone
    pending: list[str] = []  # the instances still on OLD
    scale = 1.2  # of the calibrated time a run takes: the kills aim at the middle of runs

    def on_old() -> list[str]:
        return [i for i in pending if store.get(i).spec_hash == old.content_hash]  # type: ignore[union-attr]

    try:
        while kills < KILLS and cycles < 3 * KILLS:
            for n in range(BATCH):
                instance = f"c{cycles:03d}-{n}"
                engine.start(instance, "sue")
                if n % 3:
                    engine.fire(instance, "request", "sue", {"amount": rng.randint(1, 5000)})
                if n % 3 == 2:
                    engine.fire(instance, "approve", "max")
                pending.append(instance)
            waiting = pending = on_old()
            born = time.monotonic()
            pid = migrators.spawn(target, waiting)
            if cycles == 0:  # calibrate: let the first migrator finish
                while on_old() and time.monotonic() - born < 30:
                    time.sleep(0.005)
                per_instance = (time.monotonic() - born) / len(waiting)
            else:
                time.sleep(rng.uniform(0.0, per_instance * len(waiting) * scale))
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    scale *= 0.8  # it finished before the kill came: aim earlier
                time.sleep(0.02)  # the store rolls the killed process's open transaction back
                pending = on_old()
                interrupted += 0 < len(pending) < len(waiting)
                if len(pending) == len(waiting):
                    scale *= 1.1  # killed before it migrated anything: aim later
            cycles += 1
            problems = whole_or_untouched(store, old, new, waiting if cycles % 10 else None)
            assert problems == [], f"after kill {kills}: {problems}"
        assert migrators.failures() == ""
    finally:
        migrators.close()
    final = migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST)
    assert final.complete
    assert whole_or_untouched(store, old, new) == []
    assert [i for i in store.instances() if store.get(i).spec_hash != new.content_hash] == []  # type: ignore[union-attr]
    assert all(replay_instance(store, new, i, specs=[old]).ok for i in store.instances())
    store.close()
    print(f"\n{target['kind']}: {kills} kills in {cycles} cycles, {interrupted} in the middle of a run, {cycles * BATCH} instances, {final.count('migrated')} left for the final run")
    assert kills >= 50
    assert interrupted > 0, "no kill landed in the middle of a migration run"


def test_the_replay_and_audit_commands_follow_a_migration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = specs()
    db = tmp_path / "r.db"
    store = SQLiteStore(db)
    populate(store)
    migrate_instances(store, old, new, migration(), check=proof(), certificate=certificate(1), trusted_keys=TRUST, instances=["large", "small"])
    store.close()
    assert main(["audit", "verify", str(db)]) == 0
    assert main(["replay", str(NEW_FILE), "--db", str(db), "--instance", "large"]) == 1  # OLD is needed for the start
    assert main(["replay", str(NEW_FILE), "--db", str(db), "--also", str(OLD_FILE)]) == 0
    capsys.readouterr()
    assert main(["audit", "show", str(db), "--instance", "large"]) == 0
    assert "migrated" in capsys.readouterr().out.splitlines()[-1]


def test_the_readme_migrate_run_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    section = (ROOT / "README.md").read_text().split("### Moving them: `railguard migrate run`", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "evolution").symlink_to(EVOLUTION)
    monkeypatch.chdir(tmp_path)
    with SQLiteStore("railguard.db") as store:
        populate(store)
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines) == ["busy", "finished", "finished", "migrated", "migrated", "migrated", "migrated"]
