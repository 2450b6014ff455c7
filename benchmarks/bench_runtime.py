"""Runtime throughput against peers, measured in one run on one machine.

1. In-memory transitions with a guard and an assignment on the same three-state cycle machine:
   railguard (the step semantics every engine uses, via MemoryMachine) vs pytransitions,
   python-statemachine 3.x and sismic. Targets (issue 7): >= 5x pytransitions, >= 50x
   python-statemachine, in every run.
2. Durable transitions with audit on SQLite (WAL, synchronous=FULL and NORMAL) vs SQLite's own
   rate for one equivalent write transaction (update the instance row, insert one audit row)
   at the same setting. Target: >= 0.5. Rates are given by wall clock and by CPU time of the
   process (the better number on a shared machine: waiting for a core counts on neither side).
3. PostgreSQL throughput with 1 and 2 worker processes (skipped if no server).

Run: ``python benchmarks/bench_runtime.py [--quick]``.
"""

from __future__ import annotations

import argparse
import hashlib
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


def railguard_durable(path: str, synchronous: str, n: int) -> tuple[float, float, str]:
    """Steps per second (wall, CPU), and one audit payload as written (for the equivalent
    baseline)."""
    store = SQLiteStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    engine = Engine(SPEC, store, DIRECTORY, clock=ManualClock(), allow_unverified="benchmark")
    engine.start("i", "r")

    def steps() -> None:
        for _ in range(n):
            engine.fire("i", "step", "r")

    wall, cpu = _timed(steps)
    sample = store.audit("i")[-1].payload_json()
    store.close()
    return n / wall, n / cpu, sample


def sqlite_equivalent(path: str, synchronous: str, n: int, sample: str) -> tuple[float, float]:
    """One write transaction per step with the same data a railguard step writes: update the
    instance row (state, variables, version, chain head) and append one audit row of the same
    size with its hash — and nothing else (no reads, no engine). Rates by wall and CPU."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE instances (id TEXT PRIMARY KEY, state TEXT, vals TEXT, version INTEGER, head TEXT)")
    db.execute("CREATE TABLE audit (instance TEXT, seq INTEGER, payload TEXT, prev TEXT, hash TEXT, PRIMARY KEY (instance, seq))")
    db.execute("INSERT INTO instances VALUES ('i', 's0', '{}', 0, '')")

    def writes() -> None:
        head = "0" * 64
        for version in range(1, n + 1):
            payload = sample.replace('"seq":', f'"seq":{version},"x":', 1)
            values = json.dumps({"n": version})
            prev, head = head, hashlib.sha256((head + payload).encode()).hexdigest()
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE instances SET state = ?, vals = ?, version = ?, head = ? WHERE id = 'i' AND version = ?", ("s1", values, version, head, version - 1))
            db.execute("INSERT INTO audit VALUES ('i', ?, ?, ?, ?)", (version, payload, prev, head))
            db.execute("COMMIT")

    wall, cpu = _timed(writes)
    db.close()
    return n / wall, n / cpu


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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer transitions (a smoke run)")
    args = parser.parse_args(argv)
    n = 3_000 if args.quick else 30_000
    print(f"railguard runtime benchmarks — Python {platform.python_version()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
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
    results: dict[str, Any] = {"memory": rates}

    durable: dict[str, tuple[float, float, float, float]] = {}
    steps = 500 if args.quick else 3_000
    with tempfile.TemporaryDirectory() as folder:
        for sync in ("FULL", "NORMAL"):
            ours_wall, ours_cpu, sample = railguard_durable(os.path.join(folder, f"rg-{sync}.db"), sync, steps)
            raw_wall, raw_cpu = sqlite_equivalent(os.path.join(folder, f"raw-{sync}.db"), sync, steps, sample)
            durable[sync] = (ours_wall, raw_wall, ours_cpu, raw_cpu)
    print("\nDurable transitions with audit on SQLite (WAL)")
    print(f"{'synchronous':12} {'railguard/s':>12} {'raw SQLite txn/s':>17} {'ratio':>7} {'CPU: railguard/s':>17} {'raw/s':>8} {'ratio':>7}")
    for sync, (ours_wall, raw_wall, ours_cpu, raw_cpu) in durable.items():
        print(f"{sync:12} {ours_wall:12,.0f} {raw_wall:17,.0f} {ours_wall / raw_wall:7.2f} {ours_cpu:17,.0f} {raw_cpu:8,.0f} {ours_cpu / raw_cpu:7.2f}")
    results["durable"] = durable

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
