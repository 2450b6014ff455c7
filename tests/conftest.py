"""Shared fixtures and paths, the list of slow tests, and the guards of a CI run.

``pytest -m "not slow"`` is the day-to-day run; ``pytest`` (what ``.ci/run`` runs) runs
everything. A test is slow when it carries ``@pytest.mark.slow`` or is named in
:data:`SLOW` (tests in files that several people edit are listed here, so that marking them
touches no one else's file). With ``RAILGUARD_CI=1`` (set by ``.ci/run``) a run fails if it
deselected any test (a ``-m`` or ``-k`` that crept into the options), collected none, or if a
name in :data:`SLOW` no longer names a test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED_EXAMPLES = ROOT.parent / "shared" / "examples"
CANONICAL = ("refund", "order", "deploy")

#: ``file::test function`` of slow tests without a ``slow`` mark of their own (measured with
#: ``pytest --durations``: each takes seconds to minutes on the 2-core machine).
SLOW: frozenset[str] = frozenset(
    {
        # hypothesis: Z3 against the explicit search (about 280 s and 60 s)
        "test_crosscheck.py::test_z3_verdicts_equal_the_explicit_search_on_a_thousand_generated_finite_specs",
        "test_crosscheck.py::test_z3_verdicts_equal_the_explicit_search_on_generated_specs_with_sets",
        # SPIN compiles a verifier per spec (about 110 s, and 25 s over the mutants)
        "test_promela.py::test_spin_and_z3_agree_on_every_invariant_of_generated_specs",
        "test_promela.py::test_a_mutant_that_breaks_one_invariant_is_caught_by_spin_and_by_z3",
        "test_promela.py::test_the_examples_hold_under_spin",
        "test_promela.py::test_a_probe_finds_a_run_to_a_state",
        # graph checks against networkx on generated specs (about 17 s)
        "test_structure.py::test_the_graph_checks_match_the_networkx_definitions",
        # hypothesis over the language (3-14 s each, from run to run)
        "test_properties.py::test_generated_expressions_evaluate_to_a_value_of_their_type_or_raise_evaluation_error",
        "test_properties.py::test_a_generated_spec_survives_yaml_and_json_round_trips_with_its_content_hash",
        "test_properties.py::test_every_guard_and_assignment_of_a_generated_spec_evaluates_without_eval_or_exec",
        "test_properties.py::test_unparse_then_parse_gives_back_the_tree_and_check_gives_the_requested_type",
        "test_properties.py::test_arbitrary_text_parses_and_checks_or_raises_expression_error",
        "test_properties.py::test_dump_data_is_idempotent",
        "test_malformed.py::test_random_values_anywhere_give_a_spec_or_a_load_error",
        "test_malformed.py::test_mangled_examples_never_crash_the_loader",
        # worker processes racing for timers on both stores (about 7 s each)
        "test_store_contract.py::test_worker_processes_never_claim_the_same_timer",
        # a Jupyter kernel per notebook (about 6 s each)
        "test_notebooks.py::test_notebook_executes_without_errors",
    }
)

_CI = os.environ.get("RAILGUARD_CI", "") not in ("", "0")
_deselected: list[str] = []


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES


def _slow_key(item: pytest.Item) -> str:
    return f"{item.path.name}::{getattr(item, 'originalname', item.name)}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests named in :data:`SLOW`; in CI, insist that every name still exists."""
    seen = set()
    files = set()
    for item in items:
        key = _slow_key(item)
        files.add(item.path.name)
        if key in SLOW:
            item.add_marker(pytest.mark.slow)
            seen.add(key)
    gone = sorted(key for key in SLOW - seen if key.split("::")[0] in files)
    if _CI and gone:
        raise pytest.UsageError(f"tests/conftest.py lists slow tests that do not exist: {gone}")


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(item.nodeid for item in items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI, a run that left tests out fails, even if everything it ran passed."""
    if not _CI:
        return
    if _deselected and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if session.testscollected == 0:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _CI and _deselected:
        terminalreporter.write_line(
            f"RAILGUARD_CI: {len(_deselected)} tests were deselected (first: {_deselected[0]}); "
            "CI runs every test, so this run fails",
            red=True,
        )
