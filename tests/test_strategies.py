"""The public hypothesis strategies: deep specs, params, runs and plans."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from railguard.spec import load, load_data
from railguard.spec.semantics import Fired, Refusal, check_params, fire
from railguard.verifier.strategies import (
    Action,
    DrawnPlan,
    actions,
    deep_specs,
    default_principals,
    params,
    plans,
    runs,
)

from .conftest import EXAMPLES

QUICK = settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
REFUND = load(EXAMPLES / "refund.yaml")
DEPLOY = load(EXAMPLES / "deploy.yaml")


def test_nothing_in_the_core_imports_hypothesis() -> None:
    code = (
        "import sys; import railguard, railguard.spec, railguard.verifier, railguard.runtime, railguard.cli, "
        "railguard.interop_cli, railguard.pytest_plugin, railguard.verifier.emit, railguard.spec.interop.pystatemachine; "
        "print('hypothesis' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@QUICK
@given(deep_specs())
def test_every_deep_spec_loads_and_has_a_chain_a_counter_and_deep_invariants(document: dict[str, Any]) -> None:
    spec = load_data(document)
    chain = [s.name for s in spec.states if not s.is_terminal]
    assert len(chain) >= 5
    assert {"c", "f", "m"} <= set(spec.variable_map)
    assert {i.name for i in spec.invariants} >= {"deep-never", "deep-always", "deep-precedes"}
    assert any(t.is_self_loop for t in spec.transitions)
    assert any(t.guard is not None and "c" in t.guard.text for t in spec.transitions)


@QUICK
@given(params(REFUND, "request"))
def test_valid_params_pass_the_signature_check(drawn: dict[str, Any]) -> None:
    assert isinstance(check_params(REFUND, "request", drawn), dict)


@QUICK
@given(params(REFUND, "request", valid=False))
def test_invalid_params_fail_the_signature_check(drawn: dict[str, Any]) -> None:
    assert isinstance(check_params(REFUND, "request", drawn), Refusal)


def test_int_params_try_the_boundaries_the_spec_mentions() -> None:
    seen: set[int] = set()

    @settings(QUICK, max_examples=200)
    @given(params(REFUND, "request"))
    def collect(drawn: dict[str, Any]) -> None:
        seen.add(drawn["amount"])

    collect()
    assert {4999, 5000, 5001} & seen


@QUICK
@given(plans(REFUND))
def test_an_admissible_plan_is_allowed_step_by_step_for_its_caller(drawn: DrawnPlan) -> None:
    state, values = REFUND.initial_state.name, REFUND.initial_values()
    assert drawn.admissible
    assert all("actor" not in step for step in drawn.plan["steps"])
    for step in drawn.plan["steps"]:
        outcome = fire(REFUND, state, values, step["event"], drawn.actor, drawn.roles, step["params"])
        assert isinstance(outcome, Fired)
        state, values = outcome.target, dict(outcome.values)


@QUICK
@given(plans(DEPLOY, admissible=False))
def test_an_inadmissible_plan_is_refused_exactly_at_its_last_step(drawn: DrawnPlan) -> None:
    state, values = DEPLOY.initial_state.name, DEPLOY.initial_values()
    steps = drawn.plan["steps"]
    assert drawn.refused_at == len(steps) - 1
    for number, step in enumerate(steps):
        outcome = fire(DEPLOY, state, values, step["event"], drawn.actor, drawn.roles, step["params"])
        assert isinstance(outcome, Fired) == (number != drawn.refused_at)
        if isinstance(outcome, Fired):
            state, values = outcome.target, dict(outcome.values)


def test_runs_go_deep_into_the_deploy_workflow() -> None:
    reached: set[str] = set()

    @settings(QUICK, max_examples=100)
    @given(runs(DEPLOY, max_steps=20))
    def walk(run: list[Action]) -> None:
        principals = default_principals(DEPLOY)
        state, values = DEPLOY.initial_state.name, DEPLOY.initial_values()
        for action in run:
            outcome = fire(DEPLOY, state, values, action.event, action.actor, principals[action.actor], dict(action.params))
            if isinstance(outcome, Fired):
                state, values = outcome.target, dict(outcome.values)
            reached.add(state)

    walk()
    assert reached == {s.name for s in DEPLOY.states}


def test_the_default_directory_has_a_principal_per_role_one_with_every_role_and_one_with_none() -> None:
    principals = default_principals(REFUND)
    assert principals["support-1"] == frozenset({"support"})
    assert principals["all-1"] == frozenset({"support", "manager", "payments"})
    assert principals["nobody"] == frozenset()


@QUICK
@given(st.data())
def test_actions_from_a_state_are_mostly_its_own_events(data: st.DataObject) -> None:
    drawn = [data.draw(actions(REFUND, "requested", values=REFUND.initial_values())) for _ in range(10)]
    assert all(a.event in REFUND.events or a.kind == "error" for a in drawn)
