"""The behaviour diff: one test per finding kind, on hand-made pairs derived from the examples
(``tests/evolution/``), plus its report formats and the command's exit codes."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from railguard import __version__
from railguard.cli import main
from railguard.spec import Spec, load, load_data, loads
from railguard.spec.semantics import Fired, fire
from railguard.verifier import diff as D
from railguard.verifier.diff import DiffReport, Finding, diff
from railguard.verifier.strategies import specs

from .conftest import EXAMPLES, ROOT

EVOLUTION = ROOT / "tests" / "evolution"
SARIF_SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())


def pair(old: str, new: str) -> DiffReport:
    def path(name: str) -> Path:
        return EVOLUTION / name if (EVOLUTION / name).exists() else EXAMPLES / name

    return diff(load(path(old)), load(path(new)))


def subjects(report: DiffReport, rule: D.DiffRule) -> set[str]:
    return {f.subject for f in report.by_rule(rule)}


def only(report: DiffReport, rule: D.DiffRule, subject: str) -> Finding:
    found = [f for f in report.by_rule(rule) if f.subject == subject]
    assert len(found) == 1, report.to_text()
    return found[0]


def python_values(spec: Spec, witness: Any) -> dict[str, Any]:
    return {v.name: witness[v.name] for v in spec.variables}


def test_a_change_to_descriptions_and_formatting_only_reports_no_behavioural_difference() -> None:
    old, new = load(EVOLUTION / "refund.yaml"), load(EVOLUTION / "refund_described.yaml")
    assert old.content_hash != new.content_hash
    report = diff(old, new)
    assert [f.rule for f in report.findings] == [D.NO_BEHAVIOUR_CHANGE]
    assert not report.behavioural
    assert report.exit_code == 0


def test_any_other_edit_is_never_called_no_behavioural_difference() -> None:
    text = (EVOLUTION / "refund.yaml").read_text()
    old = loads(text, "old.yaml")
    new = loads(text.replace("amount: params.amount", "amount: params.amount + 0"), "new.yaml")
    report = diff(old, new)
    assert report.behavioural
    assert subjects(report, D.OTHER_CHANGE) == {"transition 1 (`request`) from draft"}
    assert report.exit_code == 1


def test_added_states_and_events_are_reported_where_new_declares_them() -> None:
    report = pair("refund.yaml", "refund_escalation.yaml")
    new = report.new
    state = only(report, D.STATE_ADDED, "escalated")
    event = only(report, D.EVENT_ADDED, "escalate")
    assert state.location == new.location("states", "escalated")
    assert event.location == new.location("transitions", 1)
    assert state.location.file == new.source
    assert state.location.line > 0
    assert report.exit_code == 1


def test_removed_states_and_events_are_reported() -> None:
    report = pair("refund.yaml", "refund_no_reject.yaml")
    assert subjects(report, D.STATE_REMOVED) == {"rejected"}
    assert subjects(report, D.EVENT_REMOVED) == {"reject"}
    removed = only(report, D.STATE_REMOVED, "rejected")
    assert removed.old_location == report.old.location("states", "rejected")
    assert removed.location.file == report.new.source


def test_states_no_run_reaches_any_more_are_found_with_the_data_and_paid_lost_its_paths() -> None:
    report = pair("refund.yaml", "refund_blocked.yaml")
    # The graph is unchanged: only the guard `params.amount <= 0` (with `min: 1`) blocks them.
    assert subjects(report, D.NO_LONGER_REACHABLE) == {"requested", "approved", "rejected"}
    assert subjects(report, D.SUCCESS_PATH_LOST) == {"paid"}
    assert not report.by_rule(D.STATE_REMOVED)


def test_states_that_become_reachable_are_found() -> None:
    report = pair("refund_blocked.yaml", "refund.yaml")
    assert subjects(report, D.NEWLY_REACHABLE) == {"requested", "approved", "paid", "rejected"}


def test_a_success_terminal_that_a_state_can_no_longer_reach_is_reported_for_that_state() -> None:
    text = (EVOLUTION / "refund.yaml").read_text()
    old = loads(text, "old.yaml")
    # `approve` now loops on `approved` instead of leaving `requested`: `requested` cannot reach `paid`.
    new = loads(text.replace("    from: requested\n    to: approved", "    from: approved\n    to: approved"), "new.yaml")
    report = diff(old, new)
    assert "requested -> paid" in subjects(report, D.SUCCESS_PATH_LOST)


def test_a_widened_permission_hidden_behind_a_guard_change_is_found_per_state_event_and_role() -> None:
    report = pair("refund_support_approve_old.yaml", "refund_support_approve_new.yaml")
    old, new = report.old, report.new
    # The permission lists are identical: only a guard changed.
    assert old.roles == new.roles
    assert [t.permission for t in old.transitions] == [t.permission for t in new.transitions]
    widened = only(report, D.PERMISSION_WIDENED, "support: approve in requested")
    assert widened.review
    assert widened.location == new.location("transitions", 1)
    witness = widened.witness
    assert witness is not None
    assert witness["roles"] == ["support"]
    # The witness is real: support fires `approve` in NEW there, and is refused in OLD.
    values = python_values(new, witness)
    roles = frozenset(witness["roles"])
    assert isinstance(fire(new, "requested", values, "approve", witness["actor"], roles, {}), Fired)
    assert not isinstance(fire(old, "requested", values, "approve", witness["actor"], roles, {}), Fired)
    # Managers could approve before and still can: no finding for them.
    assert "manager: approve in requested" not in subjects(report, D.PERMISSION_WIDENED)


def test_a_narrowed_permission_is_reported_without_needing_review() -> None:
    report = pair("refund.yaml", "refund_blocked.yaml")
    narrowed = only(report, D.PERMISSION_NARROWED, "support: request in draft")
    assert not narrowed.review


def test_a_weakened_guard_comes_with_a_configuration_where_only_the_new_guard_holds() -> None:
    report = pair("refund.yaml", "refund_generous.yaml")
    weakened = only(report, D.GUARD_WEAKENED, "transition 1 (`request`) from draft")
    assert weakened.location == report.new.location("transitions", 0, "guard")
    assert weakened.witness is not None
    amount = weakened.witness["params.amount"]
    old_guard, new_guard = report.old.transitions[0].guard, report.new.transitions[0].guard
    assert old_guard is not None
    assert new_guard is not None
    assert report.new.compiled(new_guard)({}, {"amount": amount}, None, "draft")
    assert not report.old.compiled(old_guard)({}, {"amount": amount}, None, "draft")
    assert not report.by_rule(D.GUARD_STRENGTHENED)
    assert report.exit_code == 1


def test_a_strengthened_guard_is_reported_and_needs_no_review() -> None:
    report = pair("refund.yaml", "refund_strict.yaml")
    strengthened = only(report, D.GUARD_STRENGTHENED, "transition 1 (`request`) from draft")
    assert strengthened.witness is not None
    assert 1000 < strengthened.witness["params.amount"] <= 5000
    assert not report.by_rule(D.GUARD_WEAKENED)
    assert report.exit_code == 0


def test_a_removed_invariant_is_reported() -> None:
    report = pair("refund.yaml", "refund_no_limit.yaml")
    assert subjects(report, D.INVARIANT_REMOVED) == {"refund-limit"}


def test_a_weakened_invariant_comes_with_a_configuration_it_now_allows() -> None:
    report = pair("refund.yaml", "refund_loose_limit.yaml")
    weakened = only(report, D.INVARIANT_WEAKENED, "refund-limit")
    assert weakened.witness is not None
    assert 5000 < weakened.witness["amount"] <= 8000
    assert not report.by_rule(D.INVARIANT_STRENGTHENED)
    back = pair("refund_loose_limit.yaml", "refund.yaml")
    assert subjects(back, D.INVARIANT_STRENGTHENED) == {"refund-limit"}
    assert not back.by_rule(D.INVARIANT_WEAKENED)


def test_a_lost_compensation_and_a_newly_irreversible_effect_are_reported() -> None:
    report = pair("order.yaml", "order_irreversible_charge.yaml")
    assert subjects(report, D.COMPENSATION_LOST) == {"transition 3 (`charge`) from reserved"}
    assert subjects(report, D.NEWLY_IRREVERSIBLE) == {"transition 3 (`charge`) from reserved"}


def test_a_new_transition_that_makes_a_reversible_effect_irreversible_is_reported() -> None:
    text = (EVOLUTION / "order.yaml").read_text()
    shortcut = "  - event: charge_now\n    from: reserved\n    to: shipped\n    permission: order.charge\n    effect: payments.charge\n    irreversible: true\n\n"
    new = loads(text.replace("  - event: cancel", shortcut + "  - event: cancel"), "new.yaml")
    report = diff(loads(text, "old.yaml"), new)
    assert subjects(report, D.NEWLY_IRREVERSIBLE) == {"transition 5 (`charge_now`) from reserved"}


def test_lost_error_exits_are_reported_per_state() -> None:
    report = pair("order.yaml", "order_no_error_exit.yaml")
    assert subjects(report, D.ERROR_EXIT_LOST) == {"new", "placed", "reserved", "charged"}


def test_a_moved_error_exit_is_reported() -> None:
    text = (EVOLUTION / "order.yaml").read_text()
    new = loads(text.replace("  placed:    {}", "  placed:    {on_error: cancelled}"), "new.yaml")
    report = diff(loads(text, "old.yaml"), new)
    assert subjects(report, D.ERROR_EXIT_MOVED) == {"placed"}


# `len` of a set of str is the one construct without a Z3 encoding today.
def test_a_spec_without_a_z3_encoding_is_undecided_and_needs_review() -> None:
    text = (EVOLUTION / "refund.yaml").read_text().replace(
        "  approved_by:  {type: principal}\n", "  approved_by:  {type: principal}\n  codes:        {type: set, of: {type: str, max_length: 8}}\n"
    ).replace("guard: params.amount <= 5000", "guard: params.amount <= 5000 and len(codes) < 3")
    report = diff(loads(text, "old.yaml"), loads(text.replace("params.amount <= 5000", "params.amount <= 6000"), "new.yaml"))
    assert [f.undecided for f in report.findings] == [True]
    assert report.exit_code == 1


def test_every_rule_id_is_stable_and_unique() -> None:
    assert all(key == rule.id and rule.id.startswith("RGD") for key, rule in D.DIFF_RULES.items())
    assert len({r.name for r in D.DIFF_RULES.values()}) == len(D.DIFF_RULES)


def test_the_sarif_log_validates_and_places_findings_in_new() -> None:
    report = pair("refund_support_approve_old.yaml", "refund_support_approve_new.yaml")
    log = report.to_sarif(__version__, root=ROOT)
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(log)
    run = log["runs"][0]
    assert run["artifacts"][0]["location"]["uri"] == "tests/evolution/refund_support_approve_new.yaml"
    ids = {r["ruleId"] for r in run["results"]}
    assert {"RGD301", "RGD401"} <= ids
    assert all(r["level"] == "error" for r in run["results"] if r["ruleId"] in ("RGD301", "RGD401"))
    weakened = next(r for r in run["results"] if r["ruleId"] == "RGD401")
    assert weakened["properties"]["oldLocation"]["line"] == report.old.location("transitions", 3, "guard").line


def test_the_command_exits_0_for_descriptions_1_for_review_and_2_for_unusable_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refund = str(EVOLUTION / "refund.yaml")
    assert main(["diff", refund, str(EVOLUTION / "refund_described.yaml"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["behavioural"] is False
    assert data["findings"][0]["rule"] == "RGD001"
    out = tmp_path / "diff.sarif"
    assert main(["diff", refund, str(EVOLUTION / "refund_generous.yaml"), "--format", "sarif", "-o", str(out)]) == 1
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(json.loads(out.read_text()))
    broken = tmp_path / "broken.yaml"
    broken.write_text("railguard: 1\nname: x\n")
    assert main(["diff", refund, str(broken)]) == 2
    assert "error" in capsys.readouterr().err


def _readme_section() -> str:
    return (ROOT / "README.md").read_text().split("## Evolving a spec", 1)[1].split("\n## ", 1)[0]


def test_the_readme_pull_request_workflow_diffs_the_modified_specs_into_one_sarif_log(tmp_path: Path) -> None:
    block = _readme_section().split("```yaml\n# .github/workflows/railguard-diff.yml", 1)[1].split("```", 1)[0]
    workflow = yaml.safe_load(block)
    steps = workflow["jobs"]["diff"]["steps"]
    script = next(step["run"] for step in steps if "railguard diff" in step.get("run", ""))
    upload = next(step for step in steps if "upload-sarif" in step.get("uses", ""))
    assert upload["with"]["sarif_file"] == "railguard-diff.sarif"
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    git("init", "-q")
    shutil.copy(EVOLUTION / "refund.yaml", repo / "specs" / "refund.yaml")
    shutil.copy(EVOLUTION / "order.yaml", repo / "specs" / "order spec.yaml")
    shutil.copy(EXAMPLES / "deploy.yaml", repo / "specs" / "deploy.yaml")
    (repo / "settings.yaml").write_text("colour: blue\n")
    git("add", ".")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD")
    shutil.copy(EVOLUTION / "refund_generous.yaml", repo / "specs" / "refund.yaml")
    shutil.copy(EVOLUTION / "order_irreversible_charge.yaml", repo / "specs" / "order spec.yaml")
    (repo / "specs" / "new.yaml").write_text((EVOLUTION / "refund.yaml").read_text())
    git("add", ".")
    (repo / "settings.yaml").write_text("colour: green\n")
    git("commit", "-qam", "change")
    # GitHub runs `run:` steps with `bash --noprofile --norc -eo pipefail`.
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=repo, env={**env, "BASE": base}, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    log = json.loads((repo / "railguard-diff.sarif").read_text())
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(log)
    results = log["runs"][0]["results"]
    where = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for r in results}
    assert ("RGD401", "specs/refund.yaml") in where
    assert ("RGD601", "specs/order%20spec.yaml") in where
    # Only modified specs are compared: the untouched and the added one are not.
    assert {uri for _, uri in where} == {"specs/refund.yaml", "specs/order%20spec.yaml"}



PROPERTIES = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _redescribed(document: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["description"] = "reworded"
    for body in changed.get("states", {}).values():
        body["description"] = "a state"
    for transition in changed.get("transitions", []):
        transition["description"] = "a step"
    return changed


@pytest.mark.slow
@PROPERTIES
@given(specs(max_states=5, max_vars=2, max_transitions=6), specs(max_states=5, max_vars=2, max_transitions=6))
def test_generated_pairs_diff_without_error_and_rewording_is_never_behaviour(first: dict[str, Any], second: dict[str, Any]) -> None:
    old = load_data(first, "old.yaml")
    assert diff(old, load_data(_redescribed(first), "new.yaml")).findings[0].rule is D.NO_BEHAVIOUR_CHANGE
    new = load_data(second, "new.yaml")
    report = diff(old, new)
    assert report.exit_code in (0, 1)
    assert report.behavioural == (old.to_dict() != new.to_dict())
    assert all(f.location.file == "new.yaml" for f in report.findings)
    jsonschema.Draft7Validator(SARIF_SCHEMA).validate(report.to_sarif(__version__))
