"""Migrating live instances: how fast ``migrate_instances`` moves refunds to NEW.

Starts ``COUNT`` refund instances of ``tests/evolution/refund.yaml`` waiting in ``requested``,
then migrates them all to ``refund_review.yaml`` (the proof is run once beforehand and not
timed), and compares with the same store doing one ordinary step (``approve``) per instance
by an engine that has not cached the rows — a migration, like such a step, reads the row
and writes it with one audit record in one transaction. SQLite at
``synchronous=FULL`` and ``NORMAL``; PostgreSQL when the test server answers.

    python benchmarks/bench_migrate.py
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from railguard.runtime import Effects, Engine, SQLiteStore, StaticDirectory, Store
from railguard.runtime.migrate import migrate_instances
from railguard.spec import load
from railguard.verifier.migration import check_migration, load_migration

ROOT = Path(__file__).resolve().parent.parent
EVOLUTION = ROOT / "tests" / "evolution"
COUNT = 300
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PEOPLE = StaticDirectory({"sue": ["support"], "max": ["manager"]})


def run(name: str, open_store: Callable[[], Store]) -> None:
    old, new = load(EVOLUTION / "refund.yaml"), load(EVOLUTION / "refund_review.yaml")
    migration = load_migration(EVOLUTION / "refund_to_review.migration.yaml", old, new)
    check = check_migration(old, new, migration)
    effects = Effects()
    effects.register("payments.refund", lambda call: {"ok": call.key})
    rates = {}
    for what in ("step", "migrate"):
        store = open_store()
        engine = Engine(old, store, PEOPLE, effects=effects, allow_unverified="benchmark")
        ids = [f"{what}-{n}" for n in range(COUNT)]
        for number, instance in enumerate(ids):
            engine.start(instance, "sue")
            engine.fire(instance, "request", "sue", {"amount": 100 + number})
        began = time.perf_counter()
        if what == "step":
            fresh = Engine(old, store, PEOPLE, effects=effects, allow_unverified="benchmark")  # reads each row, as a migration does
            for instance in ids:
                fresh.fire(instance, "approve", "max")
        else:
            done = migrate_instances(store, old, new, migration, instances=ids, check=check, allow_unverified="benchmark")
            assert done.count("migrated") == COUNT
        rates[what] = COUNT / (time.perf_counter() - began)
        store.close()
    print(f"{name:<22} steps {rates['step']:8.0f}/s   migrations {rates['migrate']:8.0f}/s   ratio {rates['migrate'] / rates['step']:.2f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        counter = iter(range(1000))
        for sync in ("FULL", "NORMAL"):
            run(f"SQLite {sync}", lambda sync=sync: SQLiteStore(Path(folder) / f"{sync}-{next(counter)}.db", synchronous=sync))  # type: ignore[misc]
    try:
        from railguard.runtime.postgres import PostgresStore

        schema = f"rg_bench_migrate_{uuid.uuid4().hex[:8]}"
        store = PostgresStore(PG_DSN, schema=schema)
    except Exception as exc:  # no server: say so and stop
        print(f"PostgreSQL             skipped: {exc}")
        return
    try:
        run("PostgreSQL", lambda: PostgresStore(PG_DSN, schema=schema))
    finally:
        store.drop()
        store.close()


if __name__ == "__main__":
    main()
