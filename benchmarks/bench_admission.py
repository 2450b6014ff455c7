"""Plan admission latency (DESIGN §6: 20 concrete steps, p99 under 50 µs).

For each example, 1-, 5- and 20-step concrete plans are admitted by a :class:`Gate` built once
(spec and certificate loaded and checked once; the plan is a parsed :class:`Plan` — parsing
its JSON text is reported on its own line). Reported per plan length: p50 and p99 of one
admission, plans per second, and the baseline — the same steps run through the runtime's step
function (:func:`railguard.spec.semantics.fire`) once each, with nothing else — so the ratio
says what admission adds to the steps themselves. Samples are taken in rounds, admission and
baseline interleaved; ``quiet p99`` is the p99 of the quietest round (the machine is shared:
the overall p99 mostly measures preemption). Then the cost of one symbolic step (an open
param decided with Z3).

Run: ``python benchmarks/bench_admission.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from railguard import __version__
from railguard.gate_demo import PAYOUT_SPEC
from railguard.spec import load
from railguard.spec.semantics import fire
from railguard.verifier.admission import Admitted, Gate, Principal, new_instance
from railguard.verifier.certificate import issue, sign
from railguard.verifier.checks import verify
from railguard.verifier.keys import generate_key
from railguard.verifier.plans import OPEN, Plan, PlanStep, loads_plan

KEY = generate_key()  # the benchmark signs its certificates and trusts its own key

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _cycle(name: str) -> tuple[Principal, dict[str, Any], list[PlanStep], list[PlanStep]]:
    """A principal, a context, a prefix and a repeatable loop of admissible steps."""
    if name == "deploy":
        who = Principal("ci", frozenset({"author", "ci"}))
        return who, {}, [PlanStep("submit", {"environment": "staging"})], [PlanStep("report_red"), PlanStep("retry"), PlanStep("report_red"), PlanStep("retry")]
    if name == "payout":
        who = Principal("ava", frozenset({"agent", "payments"}))
        return who, {"payees": ["acme", "jane"], "limit": 1000}, [PlanStep("propose", {"amount": 10, "payee": "jane"})], [PlanStep("check_payee", {"payee": "acme"})]
    if name == "order":
        who = Principal("o", frozenset({"customer", "system"}))
        return who, {}, [], [PlanStep("place", {"total": 40}), PlanStep("reserve"), PlanStep("charge")]
    who = Principal("alice", frozenset({"support"}))
    return who, {}, [], [PlanStep("request", {"amount": 100})]


def _plan(spec: Any, gate: Gate, principal: Principal, start: Any, prefix: list[PlanStep], loop: list[PlanStep], length: int) -> Plan | None:
    steps = list(prefix)
    while len(steps) < length:
        steps.extend(loop)
    plan = Plan(spec.name, tuple(steps[:length]))
    return plan if isinstance(gate.admit(plan, principal, start), Admitted) else None


def _timed(fn: Callable[[], Any], runs: int) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        fn()
        samples.append((clock() - t0) / 1000)
    return samples


ROUNDS = 10


def _measure(spec: Any, gate: Gate, principal: Principal, start: Any, plan: Plan, runs: int) -> tuple[list[list[float]], list[list[float]]]:
    """Samples (µs), per round, of admitting ``plan`` and of the baseline: its steps through
    ``fire``, the runtime's step function."""

    def admit() -> Any:
        return gate.admit(plan, principal, start)

    def baseline() -> None:
        state, values = start.state, start.values
        for step in plan.steps:
            fired = fire(spec, state, values, step.event, principal.id, principal.roles, step.params)
            state, values = fired.target, fired.values  # type: ignore[union-attr]

    for _ in range(200):
        admit()
        baseline()
    rounds_a, rounds_b = [], []
    for _ in range(ROUNDS):
        rounds_a.append(_timed(admit, runs // ROUNDS))
        rounds_b.append(_timed(baseline, runs // ROUNDS))
    return rounds_a, rounds_b


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _quiet(rounds: list[list[float]], q: float) -> float:
    """The percentile ``q`` of the round where it is lowest."""
    return min(_pct(r, q) for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 2_000 if args.quick else 20_000
    load_before = os.getloadavg()
    print(f"railguard {__version__}, Python {platform.python_version()}, {os.cpu_count()} cores, load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(f"{'spec':8} {'steps':>5} {'p50 µs':>8} {'p99 µs':>8} {'quiet p99':>9} {'plans/s':>9} {'fire p50':>9} {'fire p99':>9} {'p50 ratio':>9}")
    for path in [*sorted(EXAMPLES.glob("*.yaml")), PAYOUT_SPEC]:
        spec = load(path)
        report = verify(spec)
        gate = Gate(spec, sign(issue(report), KEY), trusted_keys=[KEY]) if not report.failed else Gate(spec, allow_unverified="benchmark: no certificate")
        principal, context, prefix, loop = _cycle(spec.name)
        start = new_instance(spec, context)
        for length in (1, 5, 20):
            plan = _plan(spec, gate, principal, start, prefix, loop, length)
            if plan is None:
                continue  # no admissible plan of this length for one principal (see README)
            rounds_a, rounds_b = _measure(spec, gate, principal, start, plan, runs)
            a = [x for r in rounds_a for x in r]
            b = [x for r in rounds_b for x in r]
            p50, p99 = _pct(a, 0.5), _pct(a, 0.99)
            print(f"{spec.name:8} {length:>5} {p50:>8.1f} {p99:>8.1f} {_quiet(rounds_a, 0.99):>9.1f} {1e6 / statistics.mean(a):>9.0f} {_pct(b, 0.5):>9.1f} {_pct(b, 0.99):>9.1f} {p50 / _pct(b, 0.5):>8.2f}x")
            if spec.name == "payout" and length == 20:
                text = json.dumps(plan.to_json())
                parsing = [x for _ in range(ROUNDS) for x in _timed(lambda text=text: loads_plan(text), runs // ROUNDS)]
                print(f"         (parsing that 20-step plan from its JSON text, not included above: p50 {_pct(parsing, 0.5):.1f} µs, p99 {_pct(parsing, 0.99):.1f} µs)")
    spec = load(EXAMPLES / "refund.yaml")
    gate = Gate(spec, sign(issue(verify(spec)), KEY), trusted_keys=[KEY])
    alice = Principal("alice", frozenset({"support"}))
    start = new_instance(spec)
    open_plan = Plan("refund", (PlanStep("request", {"amount": OPEN}),))
    bounded = Plan("deploy", (PlanStep("submit", {"environment": OPEN}), PlanStep("report_green")))
    deploy = load(EXAMPLES / "deploy.yaml")
    deploy_gate = Gate(deploy, sign(issue(verify(deploy)), KEY), trusted_keys=[KEY])
    ci = Principal("ci", frozenset({"author", "ci"}))
    small = 50 if args.quick else 300
    rejected = _timed(lambda: gate.admit(open_plan, alice, start), small)
    admitted = _timed(lambda: deploy_gate.admit(bounded, ci, new_instance(deploy)), small)
    print(f"symbolic step, refund `request` with an open amount (rejected with a breaking value, plus completion search): p50 {_pct(rejected, 0.5):.0f} µs, p99 {_pct(rejected, 0.99):.0f} µs")
    print(f"symbolic plan, deploy `submit` with an open environment then one step (admitted): p50 {_pct(admitted, 0.5):.0f} µs, p99 {_pct(admitted, 0.99):.0f} µs")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
