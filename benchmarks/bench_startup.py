"""Start-up of the ``railguard`` command line: wall time of fresh processes.

Each command runs ``--runs`` times in a new interpreter (the console script next to this
Python); the table shows the median, fastest and slowest run. ``python -c pass`` is the floor
that no command can go under. Run from the repository root::

    python benchmarks/bench_startup.py --runs 15
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "refund.yaml")


def _railguard() -> str:
    beside = Path(sys.executable).with_name("railguard")
    return str(beside) if beside.exists() else (shutil.which("railguard") or "railguard")


def _time(command: list[str], runs: int) -> tuple[float, float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    railguard = _railguard()
    certificate = str(Path(tempfile.mkdtemp()) / "refund.cert.json")
    subprocess.run([railguard, "check", EXAMPLE, "--certificate", certificate], capture_output=True, check=True)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "railguard --version": [railguard, "--version"],
        "railguard --help": [railguard, "--help"],
        "railguard schema": [railguard, "schema"],
        "railguard check refund.yaml --no-data": [railguard, "check", EXAMPLE, "--no-data"],
        "railguard check refund.yaml": [railguard, "check", EXAMPLE],
        "railguard certificate verify refund.yaml": [railguard, "certificate", "verify", EXAMPLE, certificate],
    }
    print(f"| command | median s | min s | max s |  ({runs} runs each)")
    print("| --- | --- | --- | --- |")
    for label, command in commands.items():
        median, fastest, slowest = _time(command, runs)
        print(f"| `{label}` | {median:.3f} | {fastest:.3f} | {slowest:.3f} |")


if __name__ == "__main__":
    main()
