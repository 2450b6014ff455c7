"""Shared pieces of the plan-gate tests: a small spec that can be driven to every reason
code, and a brute-force check that a completion is the shortest admissible one."""

from __future__ import annotations

import itertools
from typing import Any

from railguard.spec import Spec, loads
from railguard.verifier.admission import Admitted, Configuration, Gate, Principal
from railguard.verifier.plans import Plan, PlanStep, event_signature

from .explicit import domain

TINY = """
railguard: 1
name: tiny
description: Count to two, then finish.
roles:
  worker: [tiny.work, tiny.finish]
  boss:   [tiny.approve]
variables:
  n:  {type: int, min: 0, max: 3, initial: 0}
  ok: {type: bool, initial: false}
states:
  start:   {initial: true}
  working: {}
  done:    {terminal: success}
  aborted: {terminal: failure}
on_error: aborted
transitions:
  - event: begin
    from: start
    to: working
    permission: tiny.work
  - event: step
    from: working
    to: working
    permission: tiny.work
    params:
      k: {type: int, min: 1, max: 2}
    assign:
      n: n + params.k
  - event: approve
    from: working
    to: working
    permission: tiny.approve
    assign:
      ok: true
  - event: finish
    from: working
    to: done
    permission: tiny.finish
    guard: n >= 2
  - event: abort
    from: [start, working]
    to: aborted
    permission: tiny.work
invariants:
  - name: small
    always: n <= 2
"""

WORKER = Principal("wendy", frozenset({"worker"}))
BOSS = Principal("bob", frozenset({"boss"}))


def tiny() -> Spec:
    return loads(TINY)


def plan(workflow: str, *steps: tuple[str, dict[str, Any]] | str) -> Plan:
    made = [PlanStep(s) if isinstance(s, str) else PlanStep(s[0], s[1]) for s in steps]
    return Plan(workflow, tuple(made))


def _values(spec: Spec, event: str) -> list[dict[str, Any]]:
    signature = event_signature(spec, event)
    per_param = []
    for param in signature:
        try:
            values = domain(param.type)
        except Exception:
            low, high = param.type.min, param.type.max
            values = [v for v in (low, high, 0, 1, 5000) if v is not None]
        per_param.append([(param.name, v) for v in values])
    return [dict(combo) for combo in itertools.product(*per_param)]


def reaches(gate: Gate, steps: tuple[PlanStep, ...], principal: Principal, start: Configuration, goal: str | None) -> bool:
    answer = gate.admit(Plan(gate.spec.name, steps), principal, start)
    if not isinstance(answer, Admitted):
        return False
    if goal is not None:
        return answer.end == goal
    return gate.spec.state_map[answer.end].terminal == "success"


def assert_shortest(gate: Gate, prefix: tuple[PlanStep, ...], completion: tuple[PlanStep, ...], principal: Principal, start: Configuration, goal: str | None = None) -> None:
    """The completion is admitted after the prefix, and no shorter one is (brute force)."""
    spec = gate.spec
    assert reaches(gate, prefix + completion, principal, start, goal)
    moves = [PlanStep(e, p) for e in spec.events for p in _values(spec, e)]
    for length in range(len(completion)):
        for combo in itertools.product(moves, repeat=length):
            assert not reaches(gate, prefix + tuple(combo), principal, start, goal), combo
