"""Reports: text, versioned JSON (with its published schema), SARIF 2.1.0 and JUnit XML.

The SARIF output is validated against the official SARIF 2.1.0 schema vendored in
``tests/data`` (see its README for provenance). Findings come from mutating a canonical
example: ``attempts < 3`` becomes ``attempts <= 3`` in ``deploy``, so ``retry`` can push
``attempts`` past its domain and the verifier returns a counterexample.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from railguard import __version__
from railguard.spec import Location, Problem, load
from railguard.verifier import RULES, Report, verify
from railguard.verifier.budget import Budget
from railguard.verifier.junit import to_junit
from railguard.verifier.report import (
    JSON_REPORT_VERSION,
    FileOutcome,
    exit_code,
    plan_lines,
    report_json_schema,
    step_line,
    to_json,
    to_text,
)
from railguard.verifier.sarif import to_sarif

from .conftest import EXAMPLES, ROOT

SARIF_SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
WAIVER = "\nwaivers:\n  - check: domain-escape\n    target: retry\n    reason: the CI retries at most twice in practice\n"


@dataclass(frozen=True)
class Checked:
    """A spec file checked once for the whole module (the solver is not free)."""

    path: Path
    text: str
    report: Report

    @property
    def outcome(self) -> FileOutcome:
        return FileOutcome(str(self.path), report=self.report)

    def line_of(self, fragment: str) -> int:
        return next(n for n, line in enumerate(self.text.splitlines(), 1) if fragment in line)


def _check(folder: Path, name: str, text: str, budget: Budget | None = None) -> Checked:
    path = folder / name
    path.write_text(text)
    return Checked(path, text, verify(load(path), budget))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("specs")


@pytest.fixture(scope="module")
def mutated(folder: Path) -> Checked:
    text = (EXAMPLES / "deploy.yaml").read_text().replace("guard: attempts < 3", "guard: attempts <= 3")
    return _check(folder, "deploy.yaml", text)


@pytest.fixture(scope="module")
def waived(folder: Path) -> Checked:
    text = (EXAMPLES / "deploy.yaml").read_text().replace("guard: attempts < 3", "guard: attempts <= 3")
    return _check(folder, "deploy-waived.yaml", text + WAIVER)


@pytest.fixture(scope="module")
def starved(folder: Path) -> Checked:
    return _check(folder, "refund.yaml", (EXAMPLES / "refund.yaml").read_text(), Budget(rlimit=1))


@pytest.fixture(scope="module")
def clean(folder: Path) -> Checked:
    return _check(folder, "order.yaml", (EXAMPLES / "order.yaml").read_text())


def unusable(folder: Path) -> FileOutcome:
    file = str(folder / "bad.yaml")
    return FileOutcome(file, problems=(Problem("unknown state `b`", Location(file, 4, 3)),))


def sarif_of(*outcomes: FileOutcome, root: Path) -> dict[str, Any]:
    log = to_sarif(list(outcomes), __version__, root=root)
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(log)
    return log


# --------------------------------------------------------------------------- SARIF


def test_the_vendored_sarif_schema_is_the_complete_official_draft_07_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SARIF_SCHEMA)
    assert SARIF_SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SARIF_SCHEMA["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert {"run", "result", "codeFlow", "threadFlowLocation", "suppression"} <= set(SARIF_SCHEMA["definitions"])
    assert len(SARIF_SCHEMA["definitions"]) == 52
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "fatal", "message": {"text": "m"}}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SARIF_SCHEMA).validate(broken)


def test_a_violation_is_a_sarif_error_at_the_assignment_with_a_code_flow(
    mutated: Checked, folder: Path
) -> None:
    log = sarif_of(mutated.outcome, root=folder)
    (run,) = log["runs"]
    (result,) = run["results"]
    rules = run["tool"]["driver"]["rules"]
    assert result["ruleId"] == "RG404"
    assert rules[result["ruleIndex"]]["id"] == "RG404"
    assert result["level"] == "error"
    assert result["properties"]["outcome"] == "violated"
    (location,) = result["locations"]
    physical = location["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "deploy.yaml", "uriBaseId": "%SRCROOT%"}
    assert physical["region"]["startLine"] == mutated.line_of("attempts: attempts + 1")
    (flow,) = result["codeFlows"]
    (thread,) = flow["threadFlows"]
    steps = thread["locations"]
    plan = result["properties"]["counterexample"]
    assert len(steps) == len(plan["steps"]) + 1  # the start, then one location per step
    assert steps[0]["location"]["message"]["text"] == "0. start in `draft`"
    assert steps[1]["location"]["message"]["text"].startswith("1. submit by ")
    last = steps[-1]
    assert last["importance"] == "essential"
    assert last["location"]["message"]["text"].startswith(f"{len(plan['steps'])}. retry by ")
    assert last["location"]["physicalLocation"]["region"]["startLine"] == mutated.line_of("event: retry")
    assert steps[-2]["state"]["attempts"] == {"text": "3"}


def test_sarif_describes_every_rule_with_a_stable_id_and_default_level(clean: Checked, folder: Path) -> None:
    driver = sarif_of(clean.outcome, root=folder)["runs"][0]["tool"]["driver"]
    assert driver["name"] == "railguard"
    assert driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == sorted(RULES)
    by_id = {r["id"]: r for r in driver["rules"]}
    for rule in RULES.values():
        descriptor = by_id[rule.id]
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"].lower().startswith(rule.summary[:20].lower())
        assert len(descriptor["fullDescription"]["text"]) >= len(descriptor["shortDescription"]["text"])
    assert by_id["RG302"]["defaultConfiguration"]["level"] == "warning"
    assert by_id["RG501"]["defaultConfiguration"]["level"] == "error"


def test_proved_checks_are_not_sarif_results(clean: Checked, folder: Path) -> None:
    run = sarif_of(clean.outcome, root=folder)["runs"][0]
    assert run["results"] == []
    assert run["invocations"] == [{"executionSuccessful": True, "exitCode": 0}]


def test_a_waived_finding_is_a_sarif_result_suppressed_in_source_with_the_reason(
    waived: Checked, folder: Path
) -> None:
    (result,) = sarif_of(waived.outcome, root=folder)["runs"][0]["results"]
    assert result["ruleId"] == "RG404"
    assert result["suppressions"] == [
        {"kind": "inSource", "justification": "the CI retries at most twice in practice"}
    ]
    assert waived.report.failed is False


def test_unknown_results_are_sarif_errors_that_say_unknown(starved: Checked, folder: Path) -> None:
    run = sarif_of(starved.outcome, root=folder)["runs"][0]
    unknown = [r for r in run["results"] if r["properties"]["outcome"] == "unknown"]
    assert unknown
    assert len(unknown) == len(run["results"])
    assert {r["level"] for r in unknown} == {"error"}
    assert all(r["message"]["text"].startswith("unknown: ") for r in unknown)
    assert all("fails the gate" in r["message"]["text"] for r in unknown)
    assert run["invocations"][0]["exitCode"] == 1


def test_an_unusable_spec_is_an_error_notification_of_the_invocation(folder: Path) -> None:
    run = sarif_of(unusable(folder), root=folder)["runs"][0]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["exitCode"] == 2
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert "unknown state `b`" in note["message"]["text"]
    assert note["locations"][0]["physicalLocation"]["region"] == {"startLine": 4, "startColumn": 3}


def test_a_spec_outside_the_source_root_gets_an_absolute_file_uri(
    mutated: Checked, tmp_path: Path
) -> None:
    log = sarif_of(mutated.outcome, root=tmp_path)
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": mutated.path.resolve().as_uri()}


def test_sarif_uris_are_percent_encoded(folder: Path) -> None:
    outcome = replace(unusable(folder), file=str(folder / "my specs" / "a b.yaml"))
    artifacts = sarif_of(outcome, root=folder)["runs"][0]["artifacts"]
    assert artifacts[0]["location"]["uri"] == "my%20specs/a%20b.yaml"


# --------------------------------------------------------------------------- JSON


def test_the_json_report_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = report_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["railguard_report"] == {"const": JSON_REPORT_VERSION}


def test_real_json_reports_validate_against_the_published_schema(
    mutated: Checked, waived: Checked, starved: Checked, clean: Checked, folder: Path
) -> None:
    outcomes = [mutated.outcome, waived.outcome, starved.outcome, clean.outcome, unusable(folder)]
    report = json.loads(json.dumps(to_json(outcomes, __version__)))
    jsonschema.Draft202012Validator(report_json_schema()).validate(report)
    assert report["railguard_report"] == JSON_REPORT_VERSION
    assert report["exit_code"] == 2
    assert report["summary"]["files"] == 5
    assert report["summary"]["unusable"] == 1
    assert report["summary"]["waived"] == 1
    assert report["summary"]["unknown"] == sum(r.outcome == "unknown" for r in starved.report.results)


def test_the_json_schema_rejects_an_outcome_it_does_not_define(clean: Checked) -> None:
    report = json.loads(json.dumps(to_json([clean.outcome], __version__)))
    report["files"][0]["results"][0]["outcome"] = "probably"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(report_json_schema()).validate(report)


def test_the_json_report_carries_the_counterexample_plan_and_the_invariant(mutated: Checked) -> None:
    entry = to_json([mutated.outcome], __version__)["files"][0]
    (violated,) = [r for r in entry["results"] if r["outcome"] == "violated"]
    source = next(r for r in mutated.report.results if r.outcome == "violated")
    assert source.counterexample is not None
    assert violated["counterexample"] == source.counterexample.to_plan()
    assert violated["counterexample"]["steps"][-1] == {**violated["counterexample"]["steps"][-1], "violation": True}
    proved = [r for r in entry["results"] if r["rule"] == "RG501"]
    assert proved
    assert all(isinstance(r["invariant"], str) for r in proved)


# --------------------------------------------------------------------------- text


def test_a_step_prints_as_one_numbered_line_with_what_it_changed() -> None:
    step = {
        "event": "request",
        "actor": "user1",
        "roles": ["support"],
        "params": {"amount": 5001},
        "to": "requested",
        "values": {"amount": 5001, "requested_by": "user1", "approved_by": None},
    }
    before = {"amount": 0, "requested_by": None, "approved_by": None}
    assert step_line(1, step, before) == (
        "1. request by user1 [support] {amount: 5001} → requested (amount = 5001, requested_by = user1)"
    )
    assert step_line(2, {"event": "error", "to": "cancelled", "values": before}, before) == "2. error exit → cancelled"


def test_the_text_report_shows_the_counterexample_under_the_violation(mutated: Checked) -> None:
    text = to_text([mutated.outcome])
    lines = text.splitlines()
    (at,) = [n for n, line in enumerate(lines) if " violated RG404 domain-escape" in line]
    source = next(r for r in mutated.report.results if r.outcome == "violated")
    assert source.counterexample is not None
    steps = plan_lines(source.counterexample.to_plan(), mutated.report.spec)
    assert [line.strip() for line in lines[at + 1 : at + 1 + len(steps)]] == steps
    assert steps[0].startswith("1. submit by ")
    assert "(attempts = 1" in steps[0]
    assert steps[-1].endswith("← the violating step")
    assert lines[0].startswith("✘ ")
    assert lines[0].endswith("1 violated")


def test_the_text_report_marks_unknown_results_as_failing(starved: Checked) -> None:
    lines = to_text([starved.outcome]).splitlines()
    assert lines[0].startswith("✘ ")
    unknown = [line for line in lines if " unknown RG" in line]
    assert len(unknown) == sum(r.outcome == "unknown" for r in starved.report.results)
    assert all("unknown fails the gate" in line for line in unknown)
    assert "(requested)" in unknown[0]


def test_bounded_results_say_their_bound_in_every_format(clean: Checked, folder: Path) -> None:
    results = list(clean.report.results)
    index = next(i for i, r in enumerate(results) if r.rule.id == "RG501")
    results[index] = replace(results[index], bound=8)
    index2 = next(i for i, r in enumerate(results) if r.rule.id == "RG402")
    results[index2] = replace(results[index2], outcome="unknown", bound=5)
    outcome = FileOutcome(clean.outcome.file, report=clean.report.with_results(results))
    text = to_text([outcome])
    assert "bounded: proved for runs of up to 8 steps only" in text
    assert "(bounded: runs of up to 5 steps)" in text
    assert "(1 bounded)" in text.splitlines()[0]
    entry = to_json([outcome], __version__)["files"][0]
    assert sorted(r["bound"] for r in entry["results"] if r["bound"] is not None) == [5, 8]
    (unknown,) = sarif_of(outcome, root=folder)["runs"][0]["results"]
    assert unknown["properties"]["bound"] == 5
    assert "runs of up to 5 steps" in unknown["message"]["text"]
    junit = ET.fromstring(to_junit([outcome], __version__))
    outs = [e.text or "" for e in junit.iter("system-out")]
    assert any("up to 8 steps" in out for out in outs)


# --------------------------------------------------------------------------- JUnit and the gate


def test_junit_has_a_suite_per_file_a_case_per_result_and_counts_failures(
    mutated: Checked, waived: Checked, clean: Checked, folder: Path
) -> None:
    outcomes = [mutated.outcome, waived.outcome, clean.outcome, unusable(folder)]
    root = ET.fromstring(to_junit(outcomes, __version__))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [o.file for o in outcomes]
    assert root.get("failures") == "1"
    assert root.get("errors") == "1"
    assert root.get("skipped") == "1"
    mutated_suite = suites[0]
    cases = mutated_suite.findall("testcase")
    assert len(cases) == len(mutated.report.results) == int(mutated_suite.get("tests", "0"))
    (failed,) = [c for c in cases if c.find("failure") is not None]
    assert failed.get("classname") == "deploy.data"
    assert failed.get("name") == "RG404 domain-escape: transition 4 (`retry`): `attempts`"
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("type") == "violated"
    assert "1. submit by " in (failure.text or "")
    (skipped,) = [c for s in suites for c in s.findall("testcase") if c.find("skipped") is not None]
    skip = skipped.find("skipped")
    assert skip is not None
    assert skip.get("message") == "waived: the CI retries at most twice in practice"
    assert suites[3].find("testcase/error") is not None


def test_junit_reports_unknown_results_as_failures(starved: Checked) -> None:
    root = ET.fromstring(to_junit([starved.outcome], __version__))
    failures = root.findall(".//failure")
    assert len(failures) == sum(r.outcome == "unknown" for r in starved.report.results)
    assert {f.get("type") for f in failures} == {"unknown"}


def test_unknown_never_passes_the_gate(starved: Checked, clean: Checked) -> None:
    assert exit_code([clean.outcome]) == 0
    assert exit_code([starved.outcome]) == 1
    assert exit_code([clean.outcome, starved.outcome]) == 1
    assert starved.outcome.status == "findings"


def test_the_readme_documents_every_field_of_a_json_result() -> None:
    readme = (ROOT / "README.md").read_text().split("- **json**", 1)[1].split("- **sarif**", 1)[0]
    schema = report_json_schema()
    fields = [*schema["required"], *schema["$defs"]["result"]["required"], *schema["$defs"]["checked"]["required"]]
    assert [f for f in fields if f"`{f}`" not in readme] == []
