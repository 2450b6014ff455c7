"""Counterexamples and witnesses become pytest files and traces (``check --emit-tests``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from railguard.cli import main
from railguard.spec import load, load_data
from railguard.spec.diagram import load_trace, render
from railguard.verifier import verify
from railguard.verifier.emit import emit_tests, trace_of

from .conftest import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent

BROKEN = {
    "railguard": 1,
    "name": "counter",
    "on_error": "failed",
    "roles": {"clerk": ["count"]},
    "variables": {"n": {"type": "int", "min": 0, "max": 3, "initial": 0}},
    "states": {"open": {"initial": True}, "done": {"terminal": "success"}, "failed": {"terminal": "failure"}},
    "transitions": [
        {"event": "count", "from": "open", "to": "open", "permission": "count", "guard": "n < 3", "assign": {"n": "n + 1"}},
        {"event": "close", "from": "open", "to": "done", "permission": "count"},
    ],
    "invariants": [{"name": "small", "always": "n <= 1"}],
}


def _pytest(directory: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(directory)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})}, check=False,
    )


def test_each_run_of_a_report_becomes_a_test_and_a_trace_that_replay(tmp_path: Path) -> None:
    path = tmp_path / "counter.json"
    path.write_text(json.dumps(BROKEN), encoding="utf-8")
    spec = load(path)
    report = verify(spec)
    written = emit_tests(report, tmp_path / "out", path)
    runs = [(r, c) for r in report.results for c in (r.counterexample, r.witness) if c is not None]
    assert len(written) == 2 * len(runs)
    assert any(r.rule.id == "RG501" and r.counterexample is not None for r, _ in runs)
    for result, _ in runs:
        stem = f"counter_{result.rule.id.lower()}"
        assert any(p.name.startswith(f"test_{stem}_") for p in written)
    traces = sorted(p for p in written if p.suffix == ".json")
    for trace_path in traces:
        trace = load_trace(trace_path)
        assert render(spec, "dot", trace)
    violation = next(c for r, c in runs if r.rule.id == "RG501")
    assert trace_of(spec, violation)["steps"][-1]["to"] == "open"
    done = _pytest(tmp_path / "out")
    assert done.returncode == 0, done.stdout
    assert f"{len(runs)} passed" in done.stdout


def test_the_check_command_writes_the_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLES / "refund.yaml"), "--emit-tests", str(tmp_path), "--format", "json"]) == 0
    capsys.readouterr()
    tests = sorted(tmp_path.glob("test_refund_*.py"))
    traces = sorted(tmp_path.glob("refund_*.trace.json"))
    assert tests
    assert len(tests) == len(traces)


def test_an_emitted_witness_fails_against_an_implementation_that_forgets_an_assignment(tmp_path: Path) -> None:
    spec = load(EXAMPLES / "refund.yaml")
    emit_tests(verify(spec), tmp_path, EXAMPLES / "refund.yaml")
    good = _pytest(tmp_path, {"RAILGUARD_ADAPTER": "tests.impls.refund:emitted", "PYTHONPATH": str(ROOT)})
    assert good.returncode == 0, good.stdout
    bad = _pytest(tmp_path, {"RAILGUARD_ADAPTER": "tests.impls.refund:emitted_with_forgotten_assignment", "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 1
    assert "approved_by" in bad.stdout


def test_a_spec_without_runs_emits_nothing(tmp_path: Path) -> None:
    spec = load_data({**BROKEN, "invariants": [], "transitions": [BROKEN["transitions"][1]], "variables": {}})
    report = verify(spec, symbolic=False)
    assert emit_tests(report, tmp_path, "counter.yaml") == []
