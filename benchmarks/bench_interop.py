"""Interop: how long imports take on the public corpora, and how SCXML flattening grows.

- ``corpus``: every document of ``asl-validator/``, ``scxml-scripts/`` and ``scxml-w3c/``
  imported (invalid ASL refused), wall and CPU time per document;
- ``flatten``: a parallel state of ``k`` regions with two states each (``2**k``
  configurations, ``k * 2**k`` transitions) flattened, for growing ``k``;
- ``hostile``: the billion-laughs and 10,000-deep documents refused.

    python benchmarks/bench_interop.py
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from railguard.spec.interop import InteropError
from railguard.spec.interop.asl import import_asl
from railguard.spec.interop.scxml import import_scxml, import_scxml_text

ROOT = Path(__file__).resolve().parent.parent
CORPORA = next((p / "corpora" for p in (ROOT.parent / "shared", Path("/work/shared")) if (p / "corpora").is_dir()), None)


def timed(action: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    assert callable(action)
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def corpus() -> None:
    if CORPORA is None:
        print("corpus: no corpora found beside the checkout")
        return
    print(f"{'corpus':<16}{'docs':>6}{'refused':>9}{'wall ms/doc':>13}{'cpu ms/doc':>12}")
    for name, pattern, importer in (
        ("asl-validator", "*.json", import_asl),
        ("scxml-scripts", "*.scxml", import_scxml),
        ("scxml-w3c", "test*.scxml", import_scxml),
    ):
        paths = sorted((CORPORA / name).rglob(pattern))
        refused = 0
        wall = cpu = 0.0
        for path in paths:
            def run(path: Path = path, importer: Any = importer) -> None:
                nonlocal refused
                try:
                    importer(str(path))
                except InteropError:
                    refused += 1
            w, c = timed(run)
            wall += w
            cpu += c
        print(f"{name:<16}{len(paths):>6}{refused:>9}{1000 * wall / len(paths):>13.1f}{1000 * cpu / len(paths):>12.1f}")


def parallel(k: int) -> str:
    regions = "".join(
        f'<state id="r{i}"><state id="r{i}a"><transition event="t{i}" target="r{i}b"/></state>'
        f'<state id="r{i}b"><transition event="t{i}" target="r{i}a"/></state></state>'
        for i in range(k)
    )
    return f'<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><parallel id="p">{regions}</parallel></scxml>'


def flatten() -> None:
    print(f"\n{'regions':>8}{'configurations':>16}{'transitions':>13}{'wall s':>9}{'cpu s':>8}")
    for k in (4, 6, 8, 10):
        text = parallel(k)
        result: list[Any] = []
        w, c = timed(lambda text=text, result=result: result.append(import_scxml_text(text, max_states=5000)))
        spec = result[0].spec
        print(f"{k:>8}{len(spec.states) - 2:>16}{len(spec.transitions):>13}{w:>9.2f}{c:>8.2f}")


def hostile() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY a{i} "{("&a;" if i == 0 else f"&a{i - 1};") * 10}">' for i in range(9)) + ']><scxml>&a8;</scxml>'
    deep = "<scxml>" + "<state>" * 10_000 + "</state>" * 10_000 + "</scxml>"
    print()
    for label, text in (("billion laughs", bomb), ("10,000-deep", deep)):
        def refuse(text: str = text) -> None:
            try:
                import_scxml_text(text)
            except InteropError:
                return
            raise AssertionError("not refused")
        w, _ = timed(refuse)
        print(f"{label:<16} refused in {1000 * w:.1f} ms")


if __name__ == "__main__":
    corpus()
    flatten()
    hostile()
