"""Spec evolution: how long ``railguard diff`` and ``railguard migrate check`` take.

Runs the behaviour diff on the hand-made pairs of ``tests/evolution`` and the migration
proof on the refund migrations, each ``REPEAT`` times, and prints the median wall and CPU
time. There is no peer to compare with: no other workflow engine diffs behaviour or proves
a migration.

    python benchmarks/bench_evolve.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from railguard.spec import Spec, load
from railguard.verifier.diff import diff
from railguard.verifier.migration import Migration, check_migration, load_migration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES, EVOLUTION = ROOT / "examples", ROOT / "tests" / "evolution"
REPEAT = 3

DIFFS = [
    ("refund.yaml", "refund_described.yaml"),
    ("refund.yaml", "refund_escalation.yaml"),
    ("refund.yaml", "refund_blocked.yaml"),
    ("refund_support_approve_old.yaml", "refund_support_approve_new.yaml"),
    ("order.yaml", "order_irreversible_charge.yaml"),
]
MIGRATIONS = ["refund_to_review.migration.yaml", "refund_to_review_doubled.migration.yaml"]


def path(name: str) -> Path:
    return EVOLUTION / name if (EVOLUTION / name).exists() else EXAMPLES / name


def measure(task: Callable[[], str]) -> tuple[float, float, str]:
    walls, cpus, answer = [], [], ""
    for _ in range(REPEAT):
        wall, cpu = time.perf_counter(), time.process_time()
        answer = task()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), answer


def main() -> None:
    print(f"{'task':<72} {'wall s':>7} {'cpu s':>7}  answer")
    for old_name, new_name in DIFFS:
        old, new = load(path(old_name)), load(path(new_name))

        def run_diff(old: Spec = old, new: Spec = new) -> str:
            report = diff(old, new)
            return f"{len(report.findings)} findings, exit {report.exit_code}"

        wall, cpu, answer = measure(run_diff)
        print(f"{'diff ' + old_name + ' ' + new_name:<72} {wall:>7.2f} {cpu:>7.2f}  {answer}")
    old, new = load(EVOLUTION / "refund.yaml"), load(EVOLUTION / "refund_review.yaml")
    for name in MIGRATIONS:
        migration = load_migration(EVOLUTION / name, old, new)

        def run_check(migration: Migration = migration) -> str:
            result = check_migration(old, new, migration)
            return f"{result.outcome}, {len(result.obligations)} obligations"

        wall, cpu, answer = measure(run_check)
        print(f"{'migrate check ' + name:<72} {wall:>7.2f} {cpu:>7.2f}  {answer}")


if __name__ == "__main__":
    main()
