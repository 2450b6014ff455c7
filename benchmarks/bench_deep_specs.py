"""Reachable configurations of generated specs, and the Z3-vs-explicit cross-check on deep ones.

    python benchmarks/bench_deep_specs.py [COUNT] [CROSS_CHECKED]

Draws COUNT specs from ``specs()`` and from ``deep_specs()`` (derandomized), explores each with
the explicit search of ``tests/explicit.py`` and prints the distribution of reachable
configurations and of the shortest violating run of each violated invariant; then runs the
full cross-check (Z3 verdicts equal the explicit search, every run replays) on CROSS_CHECKED
deep specs and prints how many agreed and how long it took.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from railguard.spec import load_data
from railguard.verifier.strategies import deep_specs, specs
from tests.explicit import Exploration, explore


def collect(strategy: Any, count: int) -> list[Exploration]:
    found: list[Exploration] = []

    @settings(max_examples=count, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(document: dict[str, Any]) -> None:
        found.append(explore(load_data(document)))

    run()
    return found


def describe(name: str, found: list[Exploration]) -> None:
    sizes = sorted(len(f.configs) for f in found)
    lengths = sorted(n for f in found for n in f.violated_at.values())
    q = statistics.quantiles(sizes, n=10)
    print(f"{name}: {len(sizes)} specs; configurations mean {statistics.mean(sizes):.1f}, median {statistics.median(sizes):.0f}, "
          f"p10 {q[0]:.0f}, p90 {q[-1]:.0f}, max {sizes[-1]}; longest shortest run {max(f.depth for f in found)}")
    if lengths:
        deep = sum(1 for n in lengths if n >= 6)
        print(f"  violated invariants: {len(lengths)}, shortest violating run median {statistics.median(lengths):.0f}, "
              f"max {lengths[-1]}, {deep} need 6 or more steps")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    checked = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    describe("specs()", collect(specs(), count))
    describe("deep_specs()", collect(deep_specs(), count))
    if checked:
        from tests.test_crosscheck import assert_agree

        agreed = 0
        start = time.perf_counter()

        @settings(max_examples=checked, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
        @given(deep_specs(max_states=6, max_counter=3))
        def cross(document: dict[str, Any]) -> None:
            nonlocal agreed
            assert_agree(load_data(document))
            agreed += 1

        cross()
        print(f"cross-check: Z3 and explicit search agree on {agreed} deep specs in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
