"""Loading a YAML spec: a generated chain of N states, read and validated.

The chain is the shape of issue 8's measurements: ``s0 -> s1 -> ... -> done``, each state
non-terminal with one transition to the next (guarded, assigning an int variable), an error
exit to `failed`, one success terminal and one role. The table shows, per size, the file
size and the best of three runs (wall clock, and CPU time of the process in brackets, the
better number on a shared machine) of:

- ``read``: :func:`railguard.spec.source.read_text` (YAML text to plain data with positions);
- ``load``: :func:`railguard.spec.loads` (reading plus validation into a ``Spec``).

    python benchmarks/bench_load.py               # 1,000 and 5,000 states
    python benchmarks/bench_load.py 5000 20000    # chosen sizes
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from functools import partial

import yaml

from railguard.spec import loads
from railguard.spec.source import read_text

SIZES = (1_000, 5_000)


def generate(states: int) -> str:
    """A chain spec of ``states`` states (``done`` and ``failed`` included) as YAML text."""
    chain = states - 2
    lines = [
        "railguard: 1",
        f"name: chain{states}",
        "description: a generated chain",
        "roles:",
        "  worker: [flow.step]",
        "variables:",
        "  count: {type: int, min: 0, max: 1000000, initial: 0}",
        "states:",
    ]
    lines += [f"  s{i}: {{initial: true}}" if i == 0 else f"  s{i}: {{}}" for i in range(chain)]
    lines += ["  done: {terminal: success}", "  failed: {terminal: failure}", "on_error: failed"]
    lines.append("transitions:")
    for i in range(chain):
        target = f"s{i + 1}" if i + 1 < chain else "done"
        lines += [
            f"  - event: step{i}",
            f"    from: s{i}",
            f"    to: {target}",
            "    permission: flow.step",
            "    guard: count < 1000000",
            "    assign: {count: count + 1}",
        ]
    return "\n".join(lines) + "\n"


def best(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """The shortest wall-clock time and the shortest CPU time of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main(argv: list[str]) -> None:
    repeat = 3
    sizes = [int(a) for a in argv] or list(SIZES)
    print(f"PyYAML {yaml.__version__}, libyaml {'yes' if yaml.__with_libyaml__ else 'no'}")
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'states':>8} {'KB':>6} {'read s':>14} {'load s':>14} {'CPU µs/transition':>18}")
    for size in sizes:
        text = generate(size)
        read = best(partial(read_text, text, "chain.yaml"), repeat)
        load = best(partial(loads, text, "chain.yaml"), repeat)
        per = load[1] / (size - 2) * 1e6
        print(
            f"{size:>8} {len(text) // 1000:>6} {read[0]:>6.2f} ({read[1]:>5.2f}) "
            f"{load[0]:>6.2f} ({load[1]:>5.2f}) {per:>18.0f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
