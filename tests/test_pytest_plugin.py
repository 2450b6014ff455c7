"""The pytest plugin: fixtures, ``--railguard-coverage`` and its gate, run in a child pytest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from railguard.pytest_plugin import Coverage, RuntimeAdapter
from railguard.spec import load
from railguard.verifier.conformance import check_conformance
from railguard.verifier.strategies import default_principals

from .conftest import EXAMPLES

pytest_plugins = ["pytester"]

FULL = f'''
import pytest

EXAMPLES = {str(EXAMPLES)!r}


@pytest.mark.parametrize("name", ["order", "refund"])
def test_the_runtime_conforms(railguard_spec, railguard_conformance, name):
    spec = railguard_spec(f"{{EXAMPLES}}/{{name}}.yaml")
    railguard_conformance(spec, max_examples=60, derandomize=True)


def test_the_machine_conforms_on_long_runs(railguard_spec, railguard_conformance):
    # deploy's `retry` guard is false only after three failed test runs: a deep run
    railguard_conformance(railguard_spec(f"{{EXAMPLES}}/deploy.yaml"), "memory", max_examples=600, derandomize=True)


def test_the_engine_fixture_runs_an_instance(railguard_spec, railguard_engine):
    engine = railguard_engine(railguard_spec(f"{{EXAMPLES}}/refund.yaml"), {{"sam": ["support"]}})
    engine.start("r1", "sam")
    assert engine.fire("r1", "request", "sam", {{"amount": 10}}).accepted
'''

SHORT = f'''
EXAMPLES = {str(EXAMPLES)!r}


def test_a_short_run(railguard_spec, railguard_conformance):
    railguard_conformance(railguard_spec(f"{{EXAMPLES}}/deploy.yaml"), max_examples=2, max_steps=2, derandomize=True)
'''


def _report(path: Path) -> dict[str, dict[str, object]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {spec["spec"]: spec for spec in data["specs"]}


@pytest.mark.slow
def test_the_plugins_own_strategies_cover_every_feasible_item_of_the_examples(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_full=FULL)
    out = pytester.path / "coverage.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--railguard-coverage", "--railguard-coverage-fail-under=100", f"--railguard-coverage-json={out}")
    result.assert_outcomes(passed=4)
    specs = _report(out)
    assert set(specs) == {"deploy", "order", "refund"}
    for name, spec in specs.items():
        assert spec["percent"] == 100.0, (name, spec["missed"])
        assert spec["missed"] == []
    # guards that can never be false are proved so, not counted as exercised or missed
    assert specs["deploy"]["infeasible"] == ["transition 8 (`release`) guard `tests_passed` false"]
    assert specs["order"]["infeasible"] == ["transition 3 (`charge`) guard `total > 0` false"]
    assert specs["refund"]["infeasible"] == []


def test_the_coverage_gate_fails_a_session_that_misses_items_and_names_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_short=SHORT)
    out = pytester.path / "coverage.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--railguard-coverage-fail-under=90", f"--railguard-coverage-json={out}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    deploy = _report(out)["deploy"]
    assert float(str(deploy["percent"])) < 90
    assert "state released" not in deploy["exercised"]
    assert "transition 8 (`release`)" in deploy["missed"]


def test_without_the_options_the_plugin_changes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_short=SHORT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_coverage_records_states_transitions_and_both_guard_outcomes() -> None:
    spec = load(EXAMPLES / "refund.yaml")
    coverage = Coverage()
    principals = default_principals(spec)
    check_conformance(spec, lambda: RuntimeAdapter(spec, principals), principals=principals, max_examples=100,
                      derandomize=True, on_step=coverage.of(spec).record)
    (report,) = coverage.reports(prove=False)
    assert report.missed == ()
    assert "transition 2 (`approve`) guard `actor != requested_by` false" in report.exercised
    assert report.percent == 100.0
