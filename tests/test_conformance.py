"""Model-based conformance testing: hand-written implementations of the examples against their
specs (:mod:`railguard.verifier.conformance`).

Every deliberate bug of every example is caught with a shrunk run no longer than the shortest
run that shows it (plus one step of slack for the shrinker); that run replays against the
buggy implementation and passes against the correct one; its pytest function runs. The
correct implementations pass 1,000 examples each.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from railguard.spec import load
from railguard.verifier.conformance import (
    ConformanceError,
    Oracle,
    check_conformance,
    replay_plan,
)
from railguard.verifier.strategies import Action

from .conftest import EXAMPLES
from .impls import deploy, order, refund

IMPLS: dict[str, ModuleType] = {"order": order, "refund": refund, "deploy": deploy}

#: The shortest run that shows each bug.
SHORTEST: dict[tuple[str, str], int] = {
    ("order", "missing-permission"): 2,  # place; reserve by a customer
    ("order", "off-by-one"): 3,  # place 1; reserve; charge
    ("order", "forgotten-assignment"): 1,  # place
    ("order", "missing-compensation"): 4,  # place; reserve; charge; cancel (or an error)
    ("refund", "missing-permission"): 2,  # request; approve by someone without the role
    ("refund", "off-by-one"): 1,  # request 5000
    ("refund", "forgotten-assignment"): 2,  # request; approve
    ("refund", "no-four-eyes"): 2,  # request; approve by the requester
    ("deploy", "missing-permission"): 4,  # submit; green; approve; release by an author
    ("deploy", "off-by-one"): 7,  # submit; (red; retry) twice; red; retry a fourth time
    ("deploy", "forgotten-assignment"): 2,  # submit; green
    ("deploy", "self-review"): 3,  # submit; green; approve by the author
}
CASES = sorted(SHORTEST)


def _caught(example: str, bug: str) -> ConformanceError:
    spec = load(EXAMPLES / f"{example}.yaml")
    factory: Callable[[], Any] = IMPLS[example].BUGS[bug]
    with pytest.raises(ConformanceError) as caught:
        check_conformance(spec, factory, max_examples=1000, derandomize=True)
    return caught.value


def test_every_example_has_at_least_three_distinct_bugs() -> None:
    for example, module in IMPLS.items():
        assert len(module.BUGS) >= 3, example
        assert {"missing-permission", "off-by-one", "forgotten-assignment"} <= set(module.BUGS)
    assert "missing-compensation" in order.BUGS
    assert set(CASES) == {(e, b) for e, m in IMPLS.items() for b in m.BUGS}


@pytest.mark.parametrize(("example", "bug"), CASES)
def test_each_deliberate_bug_is_caught_with_a_shrunk_run_that_replays(example: str, bug: str) -> None:
    error = _caught(example, bug)
    spec = load(EXAMPLES / f"{example}.yaml")
    plan = error.plan
    assert plan["workflow"] == spec.name
    assert error.step == len(plan["steps"])
    assert SHORTEST[(example, bug)] <= error.step <= SHORTEST[(example, bug)] + 1
    # the run is a counterexample for the bug and for nothing else
    with pytest.raises(ConformanceError) as again:
        replay_plan(spec, IMPLS[example].BUGS[bug], plan)
    assert again.value.step == error.step
    outcomes = replay_plan(spec, IMPLS[example].correct, plan)
    assert len(outcomes) == error.step


def test_a_run_of_an_implementation_without_an_importable_factory_prints_a_test_taking_a_fixture() -> None:
    spec = load(EXAMPLES / "refund.yaml")
    with pytest.raises(ConformanceError) as caught:
        check_conformance(spec, lambda: refund.RefundAdapter(frozenset({"off-by-one"})), max_examples=100, derandomize=True)
    namespace: dict[str, Any] = {}
    exec(compile(caught.value.test, "<emitted>", "exec"), namespace)
    with pytest.raises(ConformanceError):
        namespace["test_replays_the_minimal_run"](make_adapter=refund.with_off_by_one)
    namespace["test_replays_the_minimal_run"](make_adapter=refund.correct)


def test_the_printed_pytest_function_replays_the_minimal_run_and_fails_on_the_bug() -> None:
    error = _caught("refund", "no-four-eyes")
    source = error.test
    assert repr(str(EXAMPLES / "refund.yaml")) in source
    assert "from tests.impls.refund import with_no_four_eyes as make_adapter" in source
    namespace: dict[str, Any] = {}
    exec(compile(source, "<emitted>", "exec"), namespace)
    assert namespace["PLAN"] == error.plan
    with pytest.raises(ConformanceError):
        namespace["test_replays_the_minimal_run"]()
    assert error.plan["steps"][-1]["event"] == "approve"
    assert error.plan["steps"][-1]["actor"] == error.plan["steps"][0]["actor"]


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(IMPLS))
def test_the_correct_implementations_pass_a_thousand_examples(example: str) -> None:
    spec = load(EXAMPLES / f"{example}.yaml")
    seen: set[str] = set()
    check_conformance(spec, IMPLS[example].correct, max_examples=1000, max_steps=20,
                      on_step=lambda action, outcome, before: seen.add(before))
    assert seen >= {s.name for s in spec.states if not s.is_terminal}


def test_the_oracle_runs_owed_compensations_in_reverse_when_a_failure_terminal_is_entered() -> None:
    spec = load(EXAMPLES / "order.yaml")
    oracle = Oracle(spec)
    customer, system = frozenset({"customer"}), frozenset({"system"})
    assert oracle.apply(Action("place", "c", {"total": 5}), customer).accepted
    assert oracle.apply(Action("reserve", "s"), system).accepted
    assert oracle.apply(Action("charge", "s"), system).accepted
    refused = oracle.apply(Action("charge", "s"), system)
    assert (refused.accepted, refused.code) == (False, "not-enabled")
    cancelled = oracle.apply(Action("cancel", "c"), customer)
    assert cancelled.compensated == ("payments.refund", "inventory.release")
    assert (oracle.state, oracle.owed, oracle.compensated) == ("cancelled", [], ["payments.refund", "inventory.release"])


def test_the_oracle_records_each_guard_it_evaluates_and_its_value() -> None:
    spec = load(EXAMPLES / "refund.yaml")
    oracle = Oracle(spec)
    too_much = oracle.apply(Action("request", "s", {"amount": 5001}), frozenset({"support"}))
    assert (too_much.accepted, [(g.transition, g.value) for g in too_much.guards]) == (False, [(1, False)])
    fine = oracle.apply(Action("request", "s", {"amount": 5000}), frozenset({"support"}))
    assert (fine.accepted, [(g.transition, g.value) for g in fine.guards]) == (True, [(1, True)])
    denied = oracle.apply(Action("approve", "s"), frozenset({"support"}))
    assert (denied.code, denied.guards) == ("permission-denied", ())


def test_the_readme_snippet_runs_and_catches_the_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Property-based testing", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["caught"].step == 2
