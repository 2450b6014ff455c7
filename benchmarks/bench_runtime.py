"""Runtime throughput against peers, measured in one run on one machine.

1. In-memory transitions with a guard and an assignment on the same three-state cycle machine:
   railguard (the step semantics every engine uses, via MemoryMachine) vs pytransitions,
   python-statemachine 3.x and sismic. Targets (issue 7): >= 5x pytransitions, >= 50x
   python-statemachine, in every run.
2. Durable transitions with audit on SQLite (WAL, synchronous=FULL and NORMAL) vs SQLite's own
   rate for one equivalent write transaction at the same setting: the same schema, the same
   statements (update the instance row with its version check, insert the audit record with
   its global log position) and the same bytes railguard wrote, on one reused connection,
   interleaved with railguard in chunks (see :func:`durable_pair`). Target: >= 0.5. Rates are
   given by wall clock and by CPU time of the process (the better number on a shared machine:
   waiting for a core counts on neither side).
3. PostgreSQL throughput with 1 and 2 worker processes (skipped if no server).

Run: ``python benchmarks/bench_runtime.py [--quick] [--durable-only] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from railguard.runtime import Engine, ManualClock, MemoryMachine, SQLiteStore, StaticDirectory
from railguard.spec import loads

CYCLE = """
railguard: 1
name: cycle
roles: {runner: [cycle.step]}
variables:
  n: {type: int, min: 0, initial: 0}
states:
  s0: {initial: true}
  s1: {}
  s2: {}
  stop: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - {event: step, from: s0, to: s1, permission: cycle.step, guard: n < 1000000000, assign: {n: n + 1}}
  - {event: step, from: s1, to: s2, permission: cycle.step, guard: n < 1000000000, assign: {n: n + 1}}
  - {event: step, from: s2, to: s0, permission: cycle.step, guard: n < 1000000000, assign: {n: n + 1}}
  - {event: stop, from: [s0, s1, s2], to: stop, permission: cycle.step}
"""

LIMIT = 10**9


def best_rate(run: Callable[[int], None], n: int, repeats: int = 5) -> float:
    """Transitions per second: the best of ``repeats`` timed runs of ``n`` transitions."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(n)
        best = min(best, time.perf_counter() - start)
    return n / best


def railguard_memory(n: int) -> None:
    machine = MemoryMachine(SPEC, DIRECTORY)
    fire = machine.fire
    for _ in range(n):
        fire("step", "r")
    assert machine.values["n"] == n


def pytransitions_cycle(n: int) -> None:
    from transitions import Machine

    class Model:
        def __init__(self) -> None:
            self.n = 0

        def ok(self) -> bool:
            return self.n < LIMIT

        def inc(self) -> None:
            self.n += 1

    model = Model()
    machine = Machine(model, states=["s0", "s1", "s2"], initial="s0", auto_transitions=False)
    for a, b in (("s0", "s1"), ("s1", "s2"), ("s2", "s0")):
        machine.add_transition("step", a, b, conditions="ok", after="inc")
    step = model.step  # type: ignore[attr-defined]
    for _ in range(n):
        step()
    assert model.n == n


def statemachine_cycle(n: int) -> None:
    from statemachine import State, StateMachine

    class Cycle(StateMachine):
        s0 = State(initial=True)
        s1 = State()
        s2 = State()
        step = s0.to(s1, cond="ok") | s1.to(s2, cond="ok") | s2.to(s0, cond="ok")

        def __init__(self) -> None:
            self.n = 0
            super().__init__()

        def ok(self) -> bool:
            return self.n < LIMIT

        def on_step(self) -> None:
            self.n += 1

    machine = Cycle()
    for _ in range(n):
        machine.step()
    assert machine.n == n


SISMIC = """
statechart:
  name: cycle
  preamble: n = 0
  root state:
    name: root
    initial: s0
    states:
      - name: s0
        transitions:
          - {target: s1, event: step, guard: n < 1000000000, action: n = n + 1}
      - name: s1
        transitions:
          - {target: s2, event: step, guard: n < 1000000000, action: n = n + 1}
      - name: s2
        transitions:
          - {target: s0, event: step, guard: n < 1000000000, action: n = n + 1}
"""


def sismic_cycle(n: int) -> None:
    from sismic.interpreter import Interpreter
    from sismic.io import import_from_yaml

    interpreter = Interpreter(import_from_yaml(SISMIC))
    interpreter.execute_once()
    for _ in range(n):
        interpreter.queue("step").execute_once()
    assert interpreter.context["n"] == n


SPEC = loads(CYCLE)
DIRECTORY = StaticDirectory({"r": ["runner"]})


# ---------------------------------------------------------------------- durable


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``run``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


#: What one railguard step writes, as one raw transaction: the instance row's changed columns
#: (the statement the SQLite store runs) and the audit record with its global log position
#: taken in the same statement, under the write lock `BEGIN IMMEDIATE` holds.
RAW_UPDATE = (
    "UPDATE instances SET workflow=?, spec_hash=?, state=?, vals=?, version=?, status=?, audit_head=?, "
    "context=?, pending=?, compensations=?, updated_at=? WHERE id=? AND version=?"
)
RAW_APPEND = "INSERT INTO audit VALUES (?,?,?,?,?,(SELECT COALESCE(MAX(gseq), 0) + 1 FROM audit))"


def _raw_writes(raw: sqlite3.Connection, rows: list[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> None:
    for update, append in rows:
        raw.execute("BEGIN IMMEDIATE")
        if raw.execute(RAW_UPDATE, update).rowcount != 1:
            raise AssertionError("the raw baseline lost its instance row")
        raw.execute(RAW_APPEND, append)
        raw.execute("COMMIT")


def _written(reader: sqlite3.Connection, after: int) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """The raw statements' parameters for railguard's records after ``after``: the same
    bytes railguard wrote (payload, hashes, the row's columns as each step left them)."""
    from railguard.runtime.codec import canonical_json

    row = reader.execute(
        "SELECT workflow, spec_hash, status, context, pending, compensations, updated_at FROM instances WHERE id = 'i'"
    ).fetchone()
    workflow, spec_hash, status, context, pending, compensations, updated_at = row
    out = []
    for seq, payload, prev, head in reader.execute(
        "SELECT seq, payload, prev_hash, hash FROM audit WHERE instance = 'i' AND seq > ? ORDER BY seq", (after,)
    ):
        body = json.loads(payload)
        update = (workflow, spec_hash, body["after"]["state"], canonical_json(body["after"]["values"]), seq, status, head,
                  context, pending, compensations, updated_at, "i", seq - 1)
        out.append((update, ("i", seq, payload, prev, head)))
    return out


def durable_pair(folder: str, synchronous: str, n: int, chunk: int = 250) -> tuple[float, float, float, float]:
    """Railguard's durable step against one raw SQLite write transaction doing the same writes,
    interleaved in chunks of ``chunk`` steps so that both sides see the same machine load.

    Both sides use one reused connection each, the same file layout (railguard's own schema:
    the same tables, indexes and triggers), WAL and the same ``synchronous`` setting. The raw
    side runs, per step, exactly the statements a railguard commit runs — ``BEGIN IMMEDIATE``,
    the row ``UPDATE`` with its version check, the audit ``INSERT`` with its global position,
    ``COMMIT`` — with the very bytes railguard wrote for that step (read back untimed between
    chunks), and no JSON or hashing work of its own inside the timed loop. Returns rates per second:
    (railguard wall, raw wall, railguard CPU, raw CPU)."""
    from railguard.runtime.sqlite import SCHEMA

    store = SQLiteStore(os.path.join(folder, f"rg-{synchronous}.db"), synchronous=synchronous)  # type: ignore[arg-type]
    engine = Engine(SPEC, store, DIRECTORY, clock=ManualClock(), allow_unverified="benchmark")
    engine.start("i", "r")
    reader = sqlite3.connect(store.path, isolation_level=None)
    raw = sqlite3.connect(os.path.join(folder, f"raw-{synchronous}.db"), isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute(f"PRAGMA synchronous={synchronous}")
    raw.executescript(SCHEMA)
    raw.execute("CREATE UNIQUE INDEX IF NOT EXISTS audit_gseq ON audit (gseq)")
    first = reader.execute("SELECT * FROM instances WHERE id = 'i'").fetchone()
    raw.execute("INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", first)
    for record in reader.execute("SELECT * FROM audit WHERE instance = 'i' ORDER BY seq").fetchall():
        raw.execute("INSERT INTO audit VALUES (?,?,?,?,?,?)", record)
    fire = engine.fire
    done = int(first[5])
    ours_wall = ours_cpu = raw_wall = raw_cpu = 0.0

    def steps(count: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(count):
                fire("i", "step", "r")

        return run

    left = n
    while left > 0:
        count = min(chunk, left)
        wall, cpu = _timed(steps(count))
        ours_wall, ours_cpu = ours_wall + wall, ours_cpu + cpu
        rows = _written(reader, done)
        assert len(rows) == count
        wall, cpu = _timed(functools.partial(_raw_writes, raw, rows))
        raw_wall, raw_cpu = raw_wall + wall, raw_cpu + cpu
        done += count
        left -= count
    reader.close()
    raw.close()
    store.close()
    return n / ours_wall, n / raw_wall, n / ours_cpu, n / raw_cpu


# ---------------------------------------------------------------------- postgres


def _pg_worker(args: tuple[str, str, int, int]) -> float:
    dsn, schema, worker, n = args
    from railguard.runtime.postgres import PostgresStore

    store = PostgresStore(dsn, schema=schema)
    engine = Engine(SPEC, store, DIRECTORY, clock=ManualClock(), allow_unverified="benchmark")
    instance = f"w{worker}"
    engine.start(instance, "r")
    start = time.perf_counter()
    for _ in range(n):
        engine.fire(instance, "step", "r")
    elapsed = time.perf_counter() - start
    store.close()
    return n / elapsed


def postgres_rates(n: int) -> dict[int, float] | str:
    dsn = os.environ.get("RAILGUARD_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        from railguard.runtime.postgres import PostgresStore

        schema = f"bench_{os.getpid()}"
        PostgresStore(dsn, schema=schema).close()
    except Exception as exc:
        return f"skipped: {exc}"
    rates: dict[int, float] = {}
    for workers in (1, 2):
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            start = time.perf_counter()
            pool.map(_pg_worker, [(dsn, schema, w + 10 * workers, n) for w in range(workers)])
            rates[workers] = workers * n / (time.perf_counter() - start)
    try:
        store = PostgresStore(dsn, schema=schema)
        store.drop()
    except Exception:
        pass
    return rates


def memory_rates(n: int) -> dict[str, float]:
    """In-memory transitions per second of railguard and each peer, printed as a table."""
    rates = {
        "railguard (MemoryMachine)": best_rate(railguard_memory, n),
        "pytransitions": best_rate(pytransitions_cycle, n),
        "python-statemachine": best_rate(statemachine_cycle, n // 3 or 1),
        "sismic": best_rate(sismic_cycle, n // 10 or 1, repeats=3),
    }
    ours = rates["railguard (MemoryMachine)"]
    print("\nIn-memory transitions (guard + assign), cycle machine")
    print(f"{'engine':28} {'transitions/s':>14} {'railguard ×':>12}")
    for name, rate in rates.items():
        print(f"{name:28} {rate:14,.0f} {ours / rate:12.1f}")
    return rates


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer transitions (a smoke run)")
    parser.add_argument("--durable-only", action="store_true", help="only the durable SQLite comparison (no peers, no PostgreSQL)")
    parser.add_argument("--repeat", type=int, default=1, help="durable runs per synchronous setting (default 1)")
    args = parser.parse_args(argv)
    n = 3_000 if args.quick else 30_000
    print(f"railguard runtime benchmarks — Python {platform.python_version()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    results: dict[str, Any] = {}
    if not args.durable_only:
        results["memory"] = memory_rates(n)

    durable: dict[str, list[tuple[float, float, float, float]]] = {"FULL": [], "NORMAL": []}
    steps = 500 if args.quick else 3_000
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            for sync, runs in durable.items():
                runs.append(durable_pair(folder, sync, steps))
    print(f"\nDurable transitions with audit on SQLite (WAL), {steps:,} steps, interleaved with the raw baseline; load average {_load()}")
    print(f"{'synchronous':12} {'railguard/s':>12} {'raw SQLite txn/s':>17} {'ratio':>7} {'CPU: railguard/s':>17} {'raw/s':>8} {'ratio':>7}")
    for sync, runs in durable.items():
        for ours_wall, raw_wall, ours_cpu, raw_cpu in runs:
            print(f"{sync:12} {ours_wall:12,.0f} {raw_wall:17,.0f} {ours_wall / raw_wall:7.2f} {ours_cpu:17,.0f} {raw_cpu:8,.0f} {ours_cpu / raw_cpu:7.2f}")
    results["durable"] = durable
    if args.durable_only:
        return results

    pg = postgres_rates(200 if args.quick else 2_000)
    print("\nPostgreSQL, durable transitions with audit, one instance per worker")
    if isinstance(pg, str):
        print(f"  {pg}")
    else:
        for workers, rate in pg.items():
            print(f"  {workers} worker{'s' if workers > 1 else ''}: {rate:,.0f} transitions/s")
    results["postgres"] = pg
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
