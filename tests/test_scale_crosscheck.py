"""The verifier against the explicit search (:mod:`tests.explicit`) on *deep* generated specs:
chains of 12 to 45 states — far beyond the bounded search's depth — with counters, modes
and flags, guards and assignments, loops back, two transitions on one event, a param, and
``always``/``never``/``precedes`` invariants. Every verdict of the data checks must equal the
explicit search's, ``unknown`` is a disagreement, and every witness and counterexample
replays through the reference semantics.

One difference from :func:`tests.test_crosscheck.explicit_verdicts`: a transition *fires*
(RG402) only when the runtime lets the step happen, domain check included — a transition
whose assignment always leaves its variable's domain is dead. The explicit search records
transitions selected with assignments that evaluate, so the transitions that really fire
are worked out here by firing every step from every configuration it found.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from railguard.spec import Spec, load_data
from railguard.spec.semantics import Fired, fire
from railguard.verifier import verify
from railguard.verifier.budget import Budget
from railguard.verifier.counterexample import replay_counterexample, replay_final_step

from .explicit import Exploration, domain, explore
from .test_crosscheck import COMPARED, explicit_verdicts, z3_verdicts

GUARDS = [None, "c < 3", "c > 0", 'm != "c"', "f", "not f", "c == 2", 'c != 1 or m == "a"']
ASSIGNS: list[dict[str, str]] = [
    {}, {"c": "c + 1"}, {"c": "c - 1"}, {"m": '"b"'}, {"f": "not f"}, {"c": "0"}, {"c": "c + 2"},
    {"m": '"c" if f else "a"', "c": "min(c + 1, 3)"},
]
INVARIANTS = ["c <= 3", 'not (m == "c" and c == 3)', "implies(f, c != 2)", "c >= 0"]


@st.composite
def deep_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A chain ``s0 → … → s{n-1} → done`` with data on every step and a few extra edges."""
    n = draw(st.integers(12, 45))
    names = [f"s{k}" for k in range(n)]
    transitions: list[dict[str, Any]] = []

    def step(event: str, source: str, target: str) -> dict[str, Any]:
        t: dict[str, Any] = {"event": event, "from": source, "to": target, "permission": "work"}
        guard = draw(st.sampled_from(GUARDS))
        if guard is not None:
            t["guard"] = guard
        assign = draw(st.sampled_from(ASSIGNS))
        if assign:
            t["assign"] = dict(assign)
        return t

    for k, name in enumerate(names):
        transitions.append(step("next", name, names[k + 1] if k + 1 < n else "done"))
    for _ in range(draw(st.integers(0, 4))):
        source = draw(st.sampled_from(names))
        transitions.append(step("jump", source, draw(st.sampled_from([*names, "done"]))))
    for _ in range(draw(st.integers(0, 2))):
        source = draw(st.sampled_from(names))
        transitions.append(step("next", source, draw(st.sampled_from(names))))
    if draw(st.booleans()):
        source = draw(st.sampled_from(names))
        transitions.append({
            "event": "set", "from": source, "to": source, "permission": "work",
            "params": {"v": {"type": "int", "min": 0, "max": 3}},
            "guard": "params.v != c", "assign": {"c": "params.v"},
        })
    invariants: list[dict[str, Any]] = [
        {"name": f"i{k}", draw(st.sampled_from(["always", "never"])): text}
        for k, text in enumerate(draw(st.lists(st.sampled_from(INVARIANTS), max_size=2, unique=True)))
    ]
    deep = draw(st.sampled_from(names[n // 2 :]))
    invariants.append({"name": "deep", "never": f'state == "{deep}" and c == 3'})
    if any(t["event"] == "jump" for t in transitions):
        invariants.append({"name": "order", "precedes": {"first": "jump", "then": "set" if any(t["event"] == "set" for t in transitions) else "next"}})
    return {
        "railguard": 1,
        "name": f"deep-{n}",
        "roles": {"worker": ["work"]},
        "variables": {
            "c": {"type": "int", "min": 0, "max": 3, "initial": 0},
            "m": {"type": "enum", "values": ["a", "b", "c"], "initial": "a"},
            "f": {"type": "bool", "initial": False},
        },
        "states": {**{name: ({"initial": True} if k == 0 else {}) for k, name in enumerate(names)}, "done": {"terminal": "success"}, "failed": {"terminal": "failure"}},
        "on_error": "failed",
        "transitions": transitions,
        "invariants": invariants,
    }


def really_fired(spec: Spec, found: Exploration) -> set[int]:
    """Transitions some step from a configuration the search reached fires, domains checked.
    The generated specs have one role and no principal variables, so one actor holding it
    stands for every actor."""
    out: set[int] = set()
    combos: dict[str, list[dict[str, Any]]] = {}
    for t in spec.transitions:
        if t.event not in combos:
            pools = [domain(p.type) for p in t.params]
            combos[t.event] = [dict(zip([p.name for p in t.params], c, strict=True)) for c in itertools.product(*pools)]
    for config in found.configs:
        values = config.value_map(spec)
        for event in {t.event for t in spec.transitions_from(config.state)}:
            for params in combos[event]:
                outcome = fire(spec, config.state, values, event, "u", frozenset({"worker"}), params)
                if isinstance(outcome, Fired):
                    out.add(outcome.transition.index)
    return out


def expected_verdicts(spec: Spec, found: Exploration) -> Counter[tuple[str, str, str]]:
    expected = explicit_verdicts(spec, found)
    fired = really_fired(spec, found)
    for t in spec.transitions:
        for outcome in ("proved", "violated"):
            count = expected.pop(("RG402", t.label, outcome), 0)
            if count:
                expected[("RG402", t.label, "proved" if t.index in fired else "violated")] += count
    return expected


def assert_runs_replay(spec: Spec, result: Any) -> None:
    cex = result.counterexample or result.witness
    if cex is None:
        return
    if result.rule.id == "RG402" and result.outcome == "proved":
        assert replay_final_step(spec, cex).transition.label == result.subject
    else:
        replay_counterexample(spec, cex)


DEEP = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@DEEP
@given(deep_specs())
def test_z3_verdicts_equal_the_explicit_search_on_deep_generated_specs(document: dict[str, Any]) -> None:
    spec = load_data(document)
    found = explore(spec)
    report = verify(spec, Budget())
    got = z3_verdicts(report)
    expected = expected_verdicts(spec, found)
    assert got == expected, {"z3 only": got - expected, "explicit only": expected - got}
    for result in report.results:
        if result.rule.id in COMPARED:
            assert_runs_replay(spec, result)


@settings(DEEP, max_examples=10)
@given(deep_specs())
def test_the_deep_generator_goes_beyond_the_bounded_search(document: dict[str, Any]) -> None:
    spec = load_data(document)
    assert len(spec.states) > Budget().bmc_depth + 3
