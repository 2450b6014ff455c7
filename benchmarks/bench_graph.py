"""Graph checks at scale: a generated spec of 1k, 10k and 100k states (10 transitions per
state, so 1M transitions at 100k), loaded and checked.

Each size runs in a fresh child process so that peak memory (``ru_maxrss``) belongs to it
alone; the table shows wall time and the growth of the peak resident set for each phase:

- ``load``: :func:`railguard.spec.load_data` on the plain-data document (the loader refuses
  mappings of more than ``MAX_ITEMS`` entries, so 100k states cannot be loaded; shown as -);
- ``model``: the same spec built directly from the model's dataclasses;
- ``checks``: :func:`railguard.verifier.structure.check_structure` on that model;
- ``nx floor``: the same reachability questions asked of networkx on a bare edge list (no
  spec, no results) — what any networkx-based checker pays at least.

DESIGN §6 target: graph checks on 100k states / 1M transitions in seconds.

    python benchmarks/bench_graph.py              # 1k, 10k, 100k
    python benchmarks/bench_graph.py 1000 5000    # chosen sizes
    python benchmarks/bench_graph.py --uncapped   # lift the loader's size limits (up to 10k states)

The loader's size limits (``MAX_NODES`` values per document, ``MAX_ITEMS`` entries per
mapping) refuse the larger documents; ``--uncapped`` lifts them in the child process to time
the loader itself, up to :data:`UNCAPPED_UP_TO` states (beyond that its cost grows with
states x transitions; see benchmarks/README.md).
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time
from typing import Any

FANOUT = 10
SIZES = (1_000, 10_000, 100_000)
UNCAPPED_UP_TO = 10_000


def generate(states: int, fanout: int = FANOUT, seed: int = 7) -> dict[str, Any]:
    """A spec document of ``states`` states: a chain s0 -> s1 -> ... -> done keeps every state reachable and able
    to finish; the other transitions jump to random states; every state has an error exit."""
    rng = random.Random(seed)
    total = states
    states -= 2  # `done` and `failed` count too
    names = [f"s{i}" for i in range(states)]
    doc_states: dict[str, Any] = {name: {} for name in names}
    doc_states["s0"] = {"initial": True}
    doc_states["done"] = {"terminal": "success"}
    doc_states["failed"] = {"terminal": "failure"}
    transitions: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        transitions.append(
            {"event": "next", "from": name, "to": names[i + 1] if i + 1 < states else "done", "permission": "flow.step"}
        )
        for k in range(fanout - 1):
            transitions.append(
                {"event": f"jump{k}", "from": name, "to": names[rng.randrange(states)], "permission": "flow.jump"}
            )
    return {
        "railguard": 1,
        "name": f"graph-{total}",
        "roles": {"operator": ["flow.step", "flow.jump"]},
        "variables": {},
        "states": doc_states,
        "on_error": "failed",
        "transitions": transitions,
    }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(doc: dict[str, Any]) -> Any:
    """The spec of a generated document, built from the model's dataclasses (no loader)."""
    from railguard.spec import Role, Spec, State, Transition

    states = []
    for name, body in doc["states"].items():
        states.append(State(name, initial=body.get("initial", False), terminal=body.get("terminal")))
    transitions = tuple(
        Transition(index=i, event=t["event"], sources=(t["from"],), target=t["to"], permission=t["permission"])
        for i, t in enumerate(doc["transitions"], 1)
    )
    roles = tuple(Role(name, tuple(perms)) for name, perms in doc["roles"].items())
    return Spec(doc["name"], "", roles, (), tuple(states), transitions, on_error=doc["on_error"])


def child(states: int, uncapped: bool = False) -> dict[str, Any]:
    """Measure one size in this process (called in a fresh interpreter)."""
    import networkx as nx

    from railguard.spec import LoadError, load_data
    from railguard.verifier.structure import check_structure

    if uncapped:
        import railguard.spec.loader
        import railguard.spec.source

        railguard.spec.loader.MAX_ITEMS = 10**9  # type: ignore[misc]
        railguard.spec.source.MAX_NODES = 10**9  # type: ignore[misc]
    doc = generate(states)
    base = _rss_mb()
    load_s: float | None = None
    load_mb: float | None = None
    load_cpu: float | None = None
    load_refused = ""
    if uncapped and states > UNCAPPED_UP_TO:
        load_refused = f"not attempted above {UNCAPPED_UP_TO:,} states (the cost grows with states x transitions)"
    else:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            loaded = load_data(doc)
        except LoadError as exc:
            load_refused = f"refused: {exc}"
        else:
            load_s = time.perf_counter() - start
            load_cpu = time.process_time() - cpu
            load_mb = _rss_mb() - base
            del loaded
    before_model = _rss_mb()
    start = time.perf_counter()
    spec = build(doc)
    model_s = time.perf_counter() - start
    after_model = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    results = check_structure(spec)
    check_s = time.perf_counter() - start
    check_cpu = time.process_time() - cpu
    after_check = _rss_mb()
    assert all(r.outcome == "proved" for r in results), [r.message for r in results if r.outcome != "proved"][:3]
    # the floor: the same reachability questions on a bare networkx graph
    edges = [(src, t["to"]) for t in doc["transitions"] for src in [t["from"]]]
    start, cpu = time.perf_counter(), time.process_time()
    graph = nx.DiGraph()
    graph.add_edges_from(edges)
    graph.add_edges_from((s, "failed") for s in doc["states"] if s not in ("done", "failed"))
    reached = nx.descendants(graph, "s0")
    ordinary = nx.DiGraph(edges)
    finish = nx.ancestors(ordinary, "done")
    failing = nx.ancestors(graph, "failed")
    floor_s = time.perf_counter() - start
    floor_cpu = time.process_time() - cpu
    assert reached and finish and failing
    return {
        "states": len(spec.states),
        "transitions": len(spec.transitions),
        "load_s": load_s,
        "load_mb": load_mb,
        "load_cpu": load_cpu,
        "load_refused": str(load_refused),
        "model_s": model_s,
        "model_mb": after_model - before_model,
        "check_s": check_s,
        "check_mb": after_check - after_model,
        "check_cpu": check_cpu,
        "floor_cpu": floor_cpu,
        "floor_s": floor_s,
        "peak_mb": _rss_mb(),
    }


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(child(int(argv[1]), uncapped="--uncapped" in argv)))
        return
    uncapped = "--uncapped" in argv
    sizes = [int(a) for a in argv if a != "--uncapped"] or list(SIZES)
    import networkx

    import railguard

    print(f"railguard {railguard.__version__}, networkx {networkx.__version__}, Python {sys.version.split()[0]}")
    if uncapped:
        print("loader limits lifted (--uncapped)")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; times are wall clock (CPU in brackets)")
    header = (
        f"{'states':>8} {'transitions':>12} {'load s':>14} {'load MB':>8} {'model s':>8} {'model MB':>9} "
        f"{'checks s':>14} {'checks MB':>10} {'nx floor s':>14} {'checks/floor':>13} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    notes = []
    for size in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size), *(["--uncapped"] if uncapped else [])],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = row["check_cpu"] / row["floor_cpu"] if row["floor_cpu"] else float("nan")
        load_s = "-" if row["load_s"] is None else f"{row['load_s']:.2f} ({row['load_cpu']:.2f})"
        check_s = f"{row['check_s']:.2f} ({row['check_cpu']:.2f})"
        floor_s = f"{row['floor_s']:.2f} ({row['floor_cpu']:.2f})"
        load_mb = "-" if row["load_mb"] is None else f"{row['load_mb']:.0f}"
        if row["load_refused"]:
            notes.append(f"{row['states']} states: load_data: {row['load_refused']}")
        print(
            f"{row['states']:>8} {row['transitions']:>12} {load_s:>14} {load_mb:>8} {row['model_s']:>8.2f} {row['model_mb']:>9.0f} "
            f"{check_s:>14} {row['check_mb']:>10.0f} {floor_s:>14} {ratio:>12.2f}x {row['peak_mb']:>8.0f}"
        )
    print("checks/floor compares CPU time.")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main(sys.argv[1:])
