"""The cost of the global log: durable steps per second with it on and off.

The same cycle machine as ``bench_runtime.py`` fires ``n`` steps on SQLite (WAL) with the
global log on (every record gets its global position in the step's transaction) and off
(``SQLiteStore(global_log=False)``), at ``synchronous=FULL`` and ``NORMAL``. Runs alternate
on and off and the best of each is kept, by wall clock and by process CPU time (the better
number on a shared machine). Target (issue 14): on / off >= 0.8. Also reported: the time to
write one checkpoint (the Merkle root over the whole log) at the end.

Run: ``python benchmarks/bench_trust.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from bench_runtime import CYCLE  # the same cycle machine as the runtime benchmark

from railguard.runtime import Engine, ManualClock, SQLiteStore, StaticDirectory
from railguard.runtime.checkpoint import make_checkpoint
from railguard.spec import loads


def run(n: int, synchronous: Any, global_log: bool) -> tuple[float, float, float]:
    """(steps per wall second, steps per CPU second, seconds for one checkpoint)."""
    spec = loads(CYCLE)
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(os.path.join(folder, "b.db"), synchronous=synchronous, global_log=global_log)
        engine = Engine(spec, store, StaticDirectory({"r": ["runner"]}), clock=ManualClock(), allow_unverified="benchmark")
        engine.start("i", "r")
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            engine.fire("i", "step", "r")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        began = time.perf_counter()
        make_checkpoint(store)
        checkpoint = time.perf_counter() - began
        store.close()
    return n / wall, n / max(cpu, 1e-9), checkpoint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, repeats = (300, 3) if args.quick else (2000, 5)
    for synchronous in ("FULL", "NORMAL"):
        best: dict[bool, list[float]] = {True: [0.0, 0.0, 0.0], False: [0.0, 0.0, 0.0]}
        for _ in range(repeats):
            for on in (False, True):
                wall, cpu, checkpoint = run(n, synchronous, on)
                best[on][0] = max(best[on][0], wall)
                best[on][1] = max(best[on][1], cpu)
                best[on][2] = checkpoint
        on, off = best[True], best[False]
        print(
            f"SQLite {synchronous:<6} {n} steps: log on {on[0]:8.0f}/s wall {on[1]:8.0f}/s CPU; "
            f"off {off[0]:8.0f}/s wall {off[1]:8.0f}/s CPU; on/off {on[0] / off[0]:.2f} wall, {on[1] / off[1]:.2f} CPU; "
            f"checkpoint of {n + 1} records {on[2] * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
