"""The verifier at scale: long workflows decided without unknowns, one run showing a whole
chain, a time budget that always ends the check, numbers too large for the solver refused
in one sentence, a transition whose assignment always escapes reported dead, and
invariants printed in the spec's own language."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest

from railguard.cli import main
from railguard.spec import Spec, load, load_data
from railguard.spec.expr import Compare, Literal, parse
from railguard.verifier import verify
from railguard.verifier.budget import Budget, overall
from railguard.verifier.counterexample import replay_counterexample, replay_final_step
from railguard.verifier.explore import Run

from .conftest import EXAMPLES

DATA_RULES = ("RG400", "RG401", "RG402", "RG403", "RG404", "RG501")


def chain(n: int, *, data: bool = True) -> dict[str, Any]:
    """``s0 → … → s{n-1} → done``; with data, each step counts, and every third switches a mode."""
    states: dict[str, Any] = {f"s{k}": ({"initial": True} if k == 0 else {}) for k in range(n)}
    states.update({"done": {"terminal": "success"}, "failed": {"terminal": "failure"}})
    transitions = []
    for k in range(n):
        t: dict[str, Any] = {"event": "next", "from": f"s{k}", "to": f"s{k + 1}" if k + 1 < n else "done", "permission": "work"}
        if data:
            t["guard"] = f'count < {n + 5} and mode != "held"'
            t["assign"] = {"count": "count + 1", **({"mode": '"slow"'} if k % 3 == 1 else {})}
        transitions.append(t)
    spec: dict[str, Any] = {
        "railguard": 1, "name": f"chain-{n}", "roles": {"worker": ["work"]},
        "states": states, "on_error": "failed", "transitions": transitions,
    }
    if data:
        spec["variables"] = {
            "count": {"type": "int", "min": 0, "max": n + 5, "initial": 0},
            "mode": {"type": "enum", "values": ["fast", "slow", "held"], "initial": "fast"},
        }
        spec["invariants"] = [{"name": "bounded", "always": f"count <= {n + 5}"}]
    return spec


def data_results(spec: Spec, budget: Budget | None = None) -> list[Any]:
    return [r for r in verify(spec, budget).results if r.rule.id in DATA_RULES]


def test_a_chain_far_deeper_than_the_bounded_search_is_decided_without_unknowns() -> None:
    spec = load_data(chain(120))
    results = data_results(spec)
    assert {r.outcome for r in results} == {"proved"}
    assert len([r for r in results if r.rule.id == "RG401"]) == 121


def test_one_run_shows_every_state_and_transition_it_passes_through() -> None:
    spec = load_data(chain(40))
    results = data_results(spec)
    states = {r.subject: r for r in results if r.rule.id == "RG401"}
    fired = {r.subject: r for r in results if r.rule.id == "RG402"}
    for k in range(1, 40):
        witness = states[f"s{k}"].witness
        assert witness is not None
        assert len(witness.steps) == k
        assert replay_counterexample(spec, witness).state == f"s{k}"
    last = fired[spec.transitions[-1].label].witness
    assert last is not None
    assert last.final is not None
    assert replay_final_step(spec, last).target == "done"
    # The runs are prefixes of one another, built only when read.
    assert isinstance(states["s39"].witness.steps, Run)  # type: ignore[union-attr]


def test_the_set_of_checks_does_not_depend_on_how_they_are_decided() -> None:
    spec = load_data(chain(30))
    full = [(r.rule.id, r.subject) for r in verify(spec).results]
    starved = [(r.rule.id, r.subject) for r in verify(spec, Budget(rlimit=1)).results]
    out_of_time = [(r.rule.id, r.subject) for r in verify(spec, Budget(seconds=0)).results]
    assert full == starved == out_of_time


def test_a_spent_time_budget_ends_every_open_question_unknown() -> None:
    spec = load(EXAMPLES / "order.yaml")
    results = data_results(spec, Budget(seconds=0))
    assert results
    assert {r.outcome for r in results} == {"unknown"}
    assert all(r.failed for r in results)


def test_the_whole_run_budget_is_shared_by_every_check_inside_it() -> None:
    spec = load(EXAMPLES / "order.yaml")
    with overall(0):
        results = data_results(spec)
    assert {r.outcome for r in results} == {"unknown"}
    assert {r.outcome for r in data_results(spec)} == {"proved"}


FERMAT = {
    "railguard": 1, "name": "cubes", "roles": {"r": ["p"]},
    "variables": {k: {"type": "int", "initial": 0} for k in ("x", "y", "z")},
    "states": {"a": {"initial": True}, "b": {"terminal": "success"}, "f": {"terminal": "failure"}},
    "on_error": "f",
    "transitions": [{
        "event": "set", "from": "a", "to": "b", "permission": "p",
        "params": {k: {"type": "int"} for k in ("x", "y", "z")},
        "assign": {k: f"params.{k}" for k in ("x", "y", "z")},
    }],
    "invariants": [{"name": "no-cubes", "never": "x > 0 and y > 0 and z > 0 and x*x*x + y*y*y == z*z*z"}],
}


@pytest.mark.slow
def test_the_budget_flag_ends_a_nonlinear_check_in_unknown(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cubes.json"
    path.write_text(json.dumps(FERMAT), encoding="utf-8")
    assert main(["check", str(path), "--budget", "2", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    (result,) = [r for r in report["files"][0]["results"] if r["rule"] == "RG501"]
    assert result["outcome"] == "unknown"


def test_a_transition_whose_assignment_always_leaves_the_domain_can_never_fire() -> None:
    document = {
        "railguard": 1, "name": "escape", "roles": {"r": ["p"]},
        "variables": {"x": {"type": "int", "min": 0, "max": 3, "initial": 0}},
        "states": {"a": {"initial": True}, "b": {"terminal": "success"}, "f": {"terminal": "failure"}},
        "on_error": "f",
        "transitions": [
            {"event": "go", "from": "a", "to": "b", "permission": "p", "assign": {"x": "x + 10"}},
            {"event": "ok", "from": "a", "to": "b", "permission": "p"},
        ],
    }
    spec = load_data(document)
    by_rule = {(r.rule.id, r.subject): r for r in verify(spec).results}
    go = spec.transitions[0].label
    dead = by_rule[("RG402", go)]
    assert dead.outcome == "violated"
    escape = by_rule[("RG404", f"{go}: `x`")]
    assert escape.outcome == "violated"
    assert escape.counterexample is not None
    assert escape.counterexample.final is not None
    assert by_rule[("RG402", spec.transitions[1].label)].outcome == "proved"


HUGE = {
    "railguard": 1, "name": "huge", "roles": {"r": ["p"]},
    "variables": {"d": {"type": "decimal", "min": 0, "max": 10, "places": 2, "initial": 0}},
    "states": {"a": {"initial": True}, "b": {"terminal": "success"}, "f": {"terminal": "failure"}},
    "on_error": "f",
    "transitions": [{"event": "go", "from": "a", "to": "b", "permission": "p", "guard": "d < 5", "assign": {"d": "d + 1"}}],
}


def test_a_literal_with_thousands_of_digits_gives_unknown_in_one_sentence() -> None:
    # The loader refuses such a literal itself; built past it, the verifier must not rely on that.
    spec = load_data(HUGE)
    transition = spec.transitions[0]
    assert transition.guard is not None
    tree = transition.guard.tree
    assert isinstance(tree, Compare)
    huge = dataclasses.replace(tree, right=Literal(int("f" * 9000, 16)))
    guard = dataclasses.replace(transition.guard, tree=huge)
    spec = dataclasses.replace(spec, transitions=(dataclasses.replace(transition, guard=guard),))
    results = verify(spec).results
    (symbolic,) = [r for r in results if r.rule.id == "RG400"]
    assert symbolic.outcome == "unknown"
    assert "too many digits" in symbolic.message
    assert "\n" not in symbolic.message


@pytest.mark.parametrize("bound", [Decimal("1e999999999"), Decimal("1e-999999999"), Decimal("9" * 5000)])
def test_a_bound_too_large_for_the_solver_gives_unknown_at_once(bound: Decimal) -> None:
    # Built past the loader (which refuses such bounds itself): the verifier must not rely on it.
    spec = load_data(HUGE)
    variable = spec.variables[0]
    wide = dataclasses.replace(variable, type=dataclasses.replace(variable.type, max=bound))
    spec = dataclasses.replace(spec, variables=(wide,))
    spec.__dict__.pop("variable_map", None)
    (symbolic,) = [r for r in verify(spec).results if r.rule.id == "RG400"]
    assert symbolic.outcome == "unknown"


def test_an_inductive_invariant_is_printed_in_the_spec_language() -> None:
    document = {
        "railguard": 1, "name": "counter", "roles": {"r": ["p"]},
        "variables": {"n": {"type": "int", "initial": 0}, "phase": {"type": "enum", "values": ["low", "high"], "initial": "low"}},
        "states": {"a": {"initial": True}, "b": {}, "done": {"terminal": "success"}, "f": {"terminal": "failure"}},
        "on_error": "f",
        "transitions": [
            {"event": "up", "from": "a", "to": "b", "permission": "p", "assign": {"n": "n + 2", "phase": '"high"'}},
            {"event": "back", "from": "b", "to": "a", "permission": "p"},
            {"event": "end", "from": ["a", "b"], "to": "done", "permission": "p"},
        ],
        "invariants": [{"name": "never-odd", "never": "n % 2 == 1 or n < 0"}],
    }
    (result,) = [r for r in verify(load_data(document)).results if r.rule.id == "RG501"]
    assert result.outcome == "proved"
    assert result.invariant is not None
    assert "Not(" not in result.invariant
    assert "And(" not in result.invariant
    parse(result.invariant)  # the spec's own expression syntax


def test_a_json_report_leaves_out_witnesses_of_very_long_runs(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(chain(150, data=False)), encoding="utf-8")
    assert main(["check", str(path), "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)["files"][0]["results"]
    states = {r["subject"]: r for r in results if r["rule"] == "RG401"}
    assert states["s5"]["witness"] is not None
    assert len(states["s5"]["witness"]["steps"]) == 5
    assert states["s140"]["witness"] is None
    assert states["s140"]["outcome"] == "proved"


def test_a_value_that_squares_every_step_leaves_the_rest_to_the_solver_within_the_budget() -> None:
    n = 40
    document = {
        "railguard": 1, "name": "square", "roles": {"r": ["p"]},
        "variables": {"x": {"type": "int", "initial": 2}},
        "states": {**{f"s{k}": ({"initial": True} if k == 0 else {}) for k in range(n)}, "done": {"terminal": "success"}, "f": {"terminal": "failure"}},
        "on_error": "f",
        "transitions": [
            {"event": "sq", "from": f"s{k}", "to": f"s{k + 1}" if k + 1 < n else "done", "permission": "p", "assign": {"x": "x * x"}}
            for k in range(n)
        ],
    }
    results = {(r.rule.id, r.subject): r for r in verify(load_data(document), Budget(seconds=3)).results}
    # The runs show the first states; past 2**4096 they stop, and what is left ends in time.
    assert results[("RG401", "s5")].outcome == "proved"
    assert results[("RG401", "s5")].witness is not None
    assert results[("RG401", "s39")].outcome in ("proved", "unknown")
