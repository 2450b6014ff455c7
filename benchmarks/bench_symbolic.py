"""Data-heavy specs: railguard's symbolic checks (Z3) against SPIN on the Promela export.

For each spec, railguard runs every data check (:func:`~railguard.verifier.properties.check_symbolic`:
reachability, dead transitions, determinism, domains, invariants), and SPIN searches the
exported model (:func:`~railguard.verifier.promela.to_promela`) exhaustively for violated
invariants. Each side runs in its own child process; the table shows wall time, peak memory
and (for SPIN) the states it stored, and the ratio SPIN / railguard.

SPIN gets every advantage that keeps its answer exact: ``-O2``, ``-DSAFETY``, a 2^26-slot
hash table, full state storage (no ``-DBITSTATE``, which could miss states), and then a
bound: ``-DMEMLIM`` (8 GB) and a time limit (``-Q``, 2 minutes; the child is interrupted
after 150 s at the latest). A search that hits either bound has no verdict.

    python benchmarks/bench_symbolic.py              # every spec
    python benchmarks/bench_symbolic.py escrow-30    # chosen specs
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPIN_MINUTES = 2
SPIN_WALL = 150
MEMLIM_MB = 8192


def escrow(limit: int) -> dict[str, Any]:
    """Deposits, releases and refunds of up to ``limit`` each: three wide counters."""
    amount = {"type": "int", "min": 1, "max": limit}
    return {
        "railguard": 1,
        "name": f"escrow-{limit}",
        "roles": {
            "buyer": ["escrow.deposit", "escrow.cancel"],
            "agent": ["escrow.release", "escrow.refund", "escrow.close"],
        },
        "variables": {
            "deposited": {"type": "int", "min": 0, "max": limit, "initial": 0},
            "released": {"type": "int", "min": 0, "max": limit, "initial": 0},
            "refunded": {"type": "int", "min": 0, "max": limit, "initial": 0},
        },
        "states": {
            "open": {"initial": True},
            "closed": {"terminal": "success"},
            "cancelled": {"terminal": "failure"},
        },
        "on_error": "cancelled",
        "transitions": [
            {
                "event": "deposit", "from": "open", "to": "open", "permission": "escrow.deposit",
                "params": {"amount": amount},
                "guard": f"deposited + params.amount <= {limit}",
                "assign": {"deposited": "deposited + params.amount"},
            },
            {
                "event": "release", "from": "open", "to": "open", "permission": "escrow.release",
                "params": {"amount": amount},
                "guard": "released + refunded + params.amount <= deposited",
                "assign": {"released": "released + params.amount"},
            },
            {
                "event": "refund", "from": "open", "to": "open", "permission": "escrow.refund",
                "params": {"amount": amount},
                "guard": "released + refunded + params.amount <= deposited",
                "assign": {"refunded": "refunded + params.amount"},
            },
            {
                "event": "close", "from": "open", "to": "closed", "permission": "escrow.close",
                "guard": "released + refunded == deposited",
            },
            {
                "event": "cancel", "from": "open", "to": "cancelled", "permission": "escrow.cancel",
                "guard": "released == 0",
            },
        ],
        "invariants": [
            {"name": "no-overdraw", "always": "released + refunded <= deposited"},
            {"name": "closed-is-settled", "always": 'implies(state == "closed", released + refunded == deposited)'},
            {"name": "each-within-deposits", "always": "released <= deposited and refunded <= deposited"},
        ],
    }


def ticker(limit: int) -> dict[str, Any]:
    """Two counters in lock step up to ``limit``: a long chain with one move per state."""
    return {
        "railguard": 1,
        "name": f"ticker-{limit}",
        "roles": {"clock": ["tick.tick", "tick.stop"]},
        "variables": {
            "x": {"type": "int", "min": 0, "max": limit, "initial": 0},
            "y": {"type": "int", "min": 0, "max": 2 * limit, "initial": 0},
        },
        "states": {
            "running": {"initial": True},
            "stopped": {"terminal": "success"},
            "failed": {"terminal": "failure"},
        },
        "on_error": "failed",
        "transitions": [
            {
                "event": "tick", "from": "running", "to": "running", "permission": "tick.tick",
                "guard": f"x < {limit}", "assign": {"x": "x + 1", "y": "y + 2"},
            },
            {"event": "stop", "from": "running", "to": "stopped", "permission": "tick.stop"},
        ],
        "invariants": [{"name": "lock-step", "always": "y == 2 * x"}],
    }


def example(name: str) -> Any:
    from railguard.spec import load

    return load(ROOT / "examples" / f"{name}.yaml")


#: name -> (how to build the spec, SPIN's depth limit)
SPECS: dict[str, tuple[Any, int]] = {
    "refund": (lambda: example("refund"), 10_000),
    "order": (lambda: example("order"), 10_000),
    "escrow-30": (lambda: escrow(30), 10_000),
    "escrow-100": (lambda: escrow(100), 10_000),
    "escrow-1000000": (lambda: escrow(1_000_000), 10_000),
    "ticker-1000000": (lambda: ticker(1_000_000), 4_000_000),
}


def load_spec(name: str) -> Any:
    from railguard.spec import Spec, load_data

    made = SPECS[name][0]()
    return made if isinstance(made, Spec) else load_data(made)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def z3_child(name: str) -> dict[str, Any]:
    from railguard.verifier import results as R
    from railguard.verifier.properties import check_symbolic

    spec = load_spec(name)
    start = time.perf_counter()
    results = check_symbolic(spec)
    seconds = time.perf_counter() - start
    invariants = {r.subject: r.outcome for r in results if r.rule is R.INVARIANT}
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "checks": len(results),
        "proved": sum(r.outcome == "proved" for r in results),
        "invariants": invariants,
    }


def spin_run(name: str) -> dict[str, Any]:
    from railguard.verifier.promela import assertion_names, to_promela

    spec = load_spec(name)
    depth = SPECS[name][1]
    start = time.perf_counter()
    model = to_promela(spec)
    export_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "model.pml").write_text(model)
        start = time.perf_counter()
        subprocess.run(["spin", "-a", "model.pml"], cwd=work, check=True, capture_output=True)
        subprocess.run(
            ["gcc", "-O2", "-w", "-DSAFETY", f"-DMEMLIM={MEMLIM_MB}", "-o", "pan", "pan.c"],
            cwd=work, check=True, capture_output=True,
        )
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["./pan", f"-m{depth}", "-w26", "-c0", f"-Q{SPIN_MINUTES}"],
            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            out, _ = proc.communicate(timeout=SPIN_WALL)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # pan prints its statistics when interrupted
            out, _ = proc.communicate()
        search_s = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    violated = set(re.findall(r"assertion violated (\w+)", out))
    stored = re.search(r"(\d+) states, stored", out)
    transitions = re.search(r"(\d+) transitions \(", out)
    memory = re.search(r"([\d.]+)\s+total actual memory usage", out)
    bound = ""
    if "max search depth too small" in out:
        bound = "depth"
    if re.search(r"out of memory|MEMLIM", out):
        bound = "memory"
    if re.search(r"Interrupted|time limit|timeout", out, re.IGNORECASE) or search_s >= SPIN_MINUTES * 60:
        bound = bound or "time"
    names = assertion_names(spec)
    return {
        "export_s": export_s,
        "compile_s": compile_s,
        "search_s": search_s,
        "stored": int(stored.group(1)) if stored else None,
        "transitions": int(transitions.group(1)) if transitions else None,
        "memory_mb": float(memory.group(1)) if memory else usage.ru_maxrss / 1024,
        "bound": bound,
        "invariants": {inv: ("violated" if n in violated else "proved") for inv, n in names.items()},
        "tail": out[-1500:],
    }


def _child(kind: str, name: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, f"--{kind}", name], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str]) -> None:
    if argv and argv[0] in ("--z3", "--spin"):
        result = z3_child(argv[1]) if argv[0] == "--z3" else spin_run(argv[1])
        print(json.dumps(result))
        return
    names = argv or list(SPECS)
    import z3

    import railguard

    spin_version = subprocess.run(["spin", "-V"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"railguard {railguard.__version__}, Z3 {z3.get_version_string()}, {spin_version}, Python {sys.version.split()[0]}")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    header = (
        f"{'spec':<16} {'railguard s':>11} {'MB':>6} {'checks':>7} | {'SPIN search s':>13} {'+compile s':>10} "
        f"{'MB':>7} {'states':>11} {'verdict':>9} | {'search ratio':>12} {'total ratio':>11}"
    )
    print(header)
    print("-" * len(header))
    details = []
    for name in names:
        z = _child("z3", name)
        s = _child("spin", name)
        complete = not s["bound"]
        verdict = "agrees" if complete and s["invariants"] == z["invariants"] else ("no answer" if not complete else "DIFFERS")
        spin_total = s["search_s"] + s["compile_s"] + s["export_s"]
        prefix = "" if complete else ">"
        search_ratio = f"{prefix}{s['search_s'] / z['seconds']:.1f}x"
        total_ratio = f"{prefix}{spin_total / z['seconds']:.1f}x"
        stored = f"{s['stored']:,}" if s["stored"] is not None else "?"
        bound = f" ({s['bound']} bound)" if s["bound"] else ""
        print(
            f"{name:<16} {z['seconds']:>11.2f} {z['peak_mb']:>6.0f} {z['proved']:>3}/{z['checks']:<3} | "
            f"{s['search_s']:>13.2f} {s['compile_s']:>10.2f} {s['memory_mb']:>7.0f} {stored:>11} {verdict:>9} | {search_ratio:>12} {total_ratio:>11}{bound}"
        )
        details.append((name, z, s))
    print()
    print("railguard s: every data check (check_symbolic); checks: proved/total. SPIN search s: ./pan;")
    print("+compile s: spin -a and gcc. search ratio: SPIN search / railguard; total ratio: (export +")
    print("compile + search) / railguard. verdict: SPIN's verdict on every invariant equals railguard's.")
    for name, z, s in details:
        if s["bound"] or s["invariants"] != z["invariants"]:
            print(f"\n{name}: railguard {z['invariants']}; SPIN {s['invariants']}; pan said:\n{s['tail']}")


if __name__ == "__main__":
    main(sys.argv[1:])
