"""The data checks at scale: ``railguard check`` (data checks on, default budget) on generated
workflows of 10 to 5,000 states.

Shapes: a chain (each state has a transition to the next, an error exit, one success
terminal); a square grid (``right`` and ``down`` moves); and a workflow with several
branches (a choice at the start, four chains behind guards, a merge). Each shape runs
without data, with an int counter (guards and assignments on it, an invariant), with an enum
(assignments and guards), and with both plus a param. Each size runs ``railguard check`` in a
fresh process with the default text report (``--format json`` to time the JSON report); the
table shows wall time, peak memory and the outcomes.

    python benchmarks/bench_scale.py                  # every shape and size
    python benchmarks/bench_scale.py 10 100 1000      # chosen sizes
    python benchmarks/bench_scale.py --shapes chain   # chosen shapes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10, 100, 1000, 5000)
SHAPES = ("chain", "grid", "branches")
DATA = ("none", "int", "enum", "int+enum")


def _tag(data: str) -> str:
    return data.replace("+", "-")


def _base(name: str) -> dict[str, Any]:
    return {
        "railguard": 1,
        "name": name,
        "roles": {"worker": ["work"]},
        "states": {},
        "on_error": "failed",
        "transitions": [],
    }


def _variables(data: str, limit: int) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    if "int" in data:
        variables["count"] = {"type": "int", "min": 0, "max": limit, "initial": 0}
    if "enum" in data:
        variables["mode"] = {"type": "enum", "values": ["fast", "slow", "held"], "initial": "fast"}
    return variables


def _step(event: str, source: str, target: str, data: str, n: int, limit: int) -> dict[str, Any]:
    """One transition; with data, it counts, switches the mode and reads a param."""
    t: dict[str, Any] = {"event": event, "from": source, "to": target, "permission": "work"}
    guards = []
    assign: dict[str, str] = {}
    if "int" in data:
        guards.append(f"count < {limit}")
        assign["count"] = "count + 1"
    if "enum" in data:
        guards.append('mode != "held"')
        if n % 3 == 1:
            assign["mode"] = '"slow"' if n % 2 else '"fast"'
    if data == "int+enum" and n % 4 == 0:
        t["event"] = f"{event}_paid"
        t["params"] = {"amount": {"type": "int", "min": 0, "max": 1000}}
        guards.append("params.amount >= 10")
    if guards:
        t["guard"] = " and ".join(guards)
    if assign:
        t["assign"] = assign
    return t


def _finish(spec: dict[str, Any], data: str, limit: int) -> dict[str, Any]:
    spec["states"]["done"] = {"terminal": "success"}
    spec["states"]["failed"] = {"terminal": "failure"}
    variables = _variables(data, limit)
    if variables:
        spec["variables"] = variables
    if "int" in data:
        spec["invariants"] = [{"name": "bounded", "always": f"count <= {limit}"}]
    return spec


def chain(n: int, data: str) -> dict[str, Any]:
    spec = _base(f"chain-{n}-{_tag(data)}")
    limit = n + 10
    for k in range(n):
        spec["states"][f"s{k}"] = {"initial": True} if k == 0 else {}
        target = f"s{k + 1}" if k + 1 < n else "done"
        spec["transitions"].append(_step("next", f"s{k}", target, data, k, limit))
    return _finish(spec, data, limit)


def grid(n: int, data: str) -> dict[str, Any]:
    side = max(2, math.isqrt(n))
    spec = _base(f"grid-{side}x{side}-{_tag(data)}")
    limit = 2 * side + 10
    count = 0
    for r in range(side):
        for c in range(side):
            name = f"g{r}_{c}"
            spec["states"][name] = {"initial": True} if (r, c) == (0, 0) else {}
            if c + 1 < side:
                spec["transitions"].append(_step("right", name, f"g{r}_{c + 1}", data, count, limit))
                count += 1
            if r + 1 < side:
                spec["transitions"].append(_step("down", name, f"g{r + 1}_{c}", data, count, limit))
                count += 1
    spec["transitions"].append(_step("finish", f"g{side - 1}_{side - 1}", "done", data, count, limit))
    return _finish(spec, data, limit)


def branches(n: int, data: str) -> dict[str, Any]:
    """A choice of route at the start, four chains behind guards on it, a merged review."""
    spec = _base(f"branches-{n}-{_tag(data)}")
    routes = ["a", "b", "c", "d"]
    length = max(1, (n - 2) // len(routes))
    limit = length + 10
    spec["states"]["start"] = {"initial": True}
    spec["states"]["review"] = {}
    spec["states"]["rejected"] = {"terminal": "failure"}
    choose: dict[str, Any] = {
        "event": "choose", "from": "start", "to": "b_a_0", "permission": "work",
        "params": {"route": {"type": "enum", "values": routes}},
        "guard": 'params.route == "a"',
    }
    spec["transitions"].append(choose)
    for route in routes[1:]:
        spec["transitions"].append({**choose, "to": f"b_{route}_0", "guard": f'params.route == "{route}"'})
    for route in routes:
        for k in range(length):
            name = f"b_{route}_{k}"
            spec["states"][name] = {}
            target = f"b_{route}_{k + 1}" if k + 1 < length else "review"
            spec["transitions"].append(_step("next", name, target, data, k, limit))
    spec["transitions"].append({"event": "approve", "from": "review", "to": "done", "permission": "work"})
    spec["transitions"].append({"event": "reject", "from": "review", "to": "rejected", "permission": "work"})
    return _finish(spec, data, limit)


GENERATORS = {"chain": chain, "grid": grid, "branches": branches}


_CHILD = (
    "import resource, sys\n"
    "from railguard.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "finally:\n"
    "    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
    "    sys.stderr.write('\\nMAXRSS ' + (peak[0].split()[1] if peak else str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)) + '\\n')\n"
    "sys.exit(code)\n"
)


def run_check(path: Path, fmt: str) -> dict[str, Any]:
    """``railguard check`` on ``path`` in a fresh process: wall time, peak RSS, outcomes."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, "check", str(path), "--format", fmt],
        capture_output=True, cwd=ROOT, check=False,
    )
    wall = time.perf_counter() - started
    err = child.stderr.decode(errors="replace")
    peak_mb = next((int(line.split()[1]) / 1024 for line in err.splitlines() if line.startswith("MAXRSS ")), float("nan"))
    counts: dict[str, int] = {}
    out = child.stdout.decode(errors="replace")
    if fmt == "json":
        report = json.loads(out)
        for file in report["files"]:
            for result in file.get("results", []):
                counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    else:
        # The file's summary line: `✔ FILE  NAME  HASH  N proved, M unknown, ...`.
        summary = next((line for line in out.splitlines() if line[:1] in ("✔", "✘")), "")
        for number, outcome in re.findall(r"(\d+) (proved|violated|unknown|waived)", summary):
            counts[outcome] = int(number)
    if child.returncode == 2:
        counts["unusable"] = 1
        print(err[-2000:], file=sys.stderr)
    return {"seconds": wall, "peak_mb": peak_mb, "counts": counts, "exit": child.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(SIZES))
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--data", nargs="+", choices=DATA, default=list(DATA))
    parser.add_argument("--format", choices=("text", "json"), default="text", help="the report format `check` writes (default: text)")
    args = parser.parse_args(argv)
    import z3

    load = os.getloadavg()
    print(f"Python {sys.version.split()[0]}, z3 {z3.get_version_string()}, {os.cpu_count()} cores")
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    header = f"{'shape':<9} {'data':<9} {'states':>6} {'trans':>6} {'seconds':>8} {'peak MB':>8}  outcomes"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            for size in args.sizes:
                for data in args.data:
                    spec = GENERATORS[shape](size, data)
                    path = Path(tmp) / f"{spec['name']}.json"
                    path.write_text(json.dumps(spec), encoding="utf-8")
                    got = run_check(path, args.format)
                    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(got["counts"].items()))
                    print(
                        f"{shape:<9} {data:<9} {len(spec['states']):>6} {len(spec['transitions']):>6} "
                        f"{got['seconds']:>8.2f} {got['peak_mb']:>8.0f}  {outcomes} (exit {got['exit']})",
                        flush=True,
                    )
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
