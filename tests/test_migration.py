"""Migration files: loading (every bad file refused with one located sentence), the Z3 proof
over every configuration OLD can reach, counterexample instances that replay, and the
``migrate check`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from railguard.cli import main
from railguard.spec import Spec, load, load_data, loads
from railguard.verifier import verify
from railguard.verifier.counterexample import replay_counterexample
from railguard.verifier.migration import (
    Migration,
    MigrationCheck,
    MigrationError,
    check_migration,
    load_migration,
    loads_migration,
)
from railguard.verifier.strategies import specs

from .conftest import ROOT

EVOLUTION = ROOT / "tests" / "evolution"
REFUND = EVOLUTION / "refund.yaml"
REVIEW = EVOLUTION / "refund_review.yaml"


@pytest.fixture(scope="module")
def old() -> Spec:
    return load(REFUND)


@pytest.fixture(scope="module")
def new() -> Spec:
    return load(REVIEW)


def header(old: Spec, new: Spec) -> str:
    return f"railguard-migration: 1\nfrom: {old.content_hash}\nto: {new.content_hash}\n"


def checked(old: Spec, new: Spec, body: str) -> MigrationCheck:
    return check_migration(old, new, loads_migration(header(old, new) + body, old, new, "m.yaml"))


def test_the_fixture_migrations_name_the_fixture_specs(old: Spec, new: Spec) -> None:
    for name in ("refund_to_review.migration.yaml", "refund_to_review_doubled.migration.yaml"):
        migration = load_migration(EVOLUTION / name, old, new)
        assert (migration.from_hash, migration.to_hash) == (old.content_hash, new.content_hash)


def test_a_migration_of_refund_instances_into_a_new_review_state_is_proved(old: Spec, new: Spec) -> None:
    migration = load_migration(EVOLUTION / "refund_to_review.migration.yaml", old, new)
    assert migration.state_map == {"draft": "draft", "requested": "review", "approved": "approved"}
    result = check_migration(old, new, migration)
    assert result.outcome == "proved", result.to_text()
    assert result.passed
    kinds = {o.rule for o in result.obligations}
    assert kinds == {"RGM101", "RGM102", "RGM103", "RGM104", "RGM105", "RGM106"}
    assert {o.state for o in result.obligations} == {"draft", "requested", "approved", "*"}


def test_apply_migrates_one_instance_as_the_proof_describes(old: Spec, new: Spec) -> None:
    migration = load_migration(EVOLUTION / "refund_to_review.migration.yaml", old, new)
    state, values = migration.apply(new, "requested", {"amount": 3500, "requested_by": "ann", "approved_by": None})
    assert state == "review"
    assert values == {"amount": 3500, "requested_by": "ann", "approved_by": None, "risk": "high"}
    with pytest.raises(MigrationError, match="`paid`"):
        migration.apply(new, "paid", {"amount": 3500, "requested_by": "ann", "approved_by": "bob"})


def test_a_value_map_that_breaks_an_invariant_is_refused_with_a_counterexample_instance(old: Spec, new: Spec) -> None:
    migration = load_migration(EVOLUTION / "refund_to_review_doubled.migration.yaml", old, new)
    result = check_migration(old, new, migration)
    assert result.outcome == "violated"
    assert not result.passed
    broken = [o for o in result.obligations if o.outcome == "violated"]
    assert {o.rule for o in broken} == {"RGM103"}
    assert {o.subject.rsplit(": ", 1)[1] for o in broken} == {"refund-limit"}
    for obligation in broken:
        cex = obligation.counterexample
        assert cex is not None
        # A concrete OLD instance, reached by a run that replays through the reference semantics...
        end = replay_counterexample(old, cex.run)
        assert (end.state, end.values) == (cex.state, dict(cex.values))
        assert isinstance(cex.values["amount"], int)
        assert cex.values["amount"] > 2500
        # ...that the migration maps outside NEW's invariant.
        assert migration.apply(new, cex.state, cex.values) == (cex.mapped_state, dict(cex.mapped_values))
        assert isinstance(cex.mapped_values["amount"], int)
        assert cex.mapped_values["amount"] > 5000
    data = result.to_json()
    assert data["outcome"] == "violated"
    assert any("counterexample" in o for o in data["obligations"])


def test_a_value_map_that_violates_a_new_invariant_about_a_new_variable_is_refused(old: Spec, new: Spec) -> None:
    result = checked(old, new, "states: {requested: review}\nvalues: {risk: '\"none\"'}\n")
    broken = [o for o in result.obligations if o.outcome == "violated"]
    assert [o.subject for o in broken] == ["requested -> review: reviewed-risk"]


def test_a_value_outside_the_new_domain_is_refused(old: Spec, new: Spec) -> None:
    result = checked(old, new, "values: {amount: amount - 1}\n")
    broken = {(o.rule, o.state) for o in result.obligations if o.outcome == "violated"}
    # Only a draft holds amount 0 (requests need at least 1).
    assert broken == {("RGM102", "draft")}


def test_a_value_that_cannot_be_computed_is_refused(old: Spec, new: Spec) -> None:
    result = checked(old, new, "values: {amount: 'amount // (amount - 7) + 7'}\n")
    undefined = [o for o in result.obligations if o.rule == "RGM101" and o.outcome == "violated"]
    assert undefined
    cex = undefined[0].counterexample
    assert cex is not None
    assert cex.values["amount"] == 7
    assert result.outcome == "violated"


def test_mapping_instances_into_a_state_that_cannot_finish_is_refused(old: Spec) -> None:
    text = REVIEW.read_text().replace("  review:    {}\n", "  review:    {}\n  limbo:     {}\n")
    new = loads(text, "limbo.yaml")
    result = checked(old, new, "states: {requested: limbo}\nvalues: {risk: '\"low\"'}\n")
    stuck = [o for o in result.obligations if o.rule == "RGM104" and o.outcome == "violated"]
    assert [o.state for o in stuck] == ["requested"]
    assert stuck[0].counterexample is not None


def test_instances_that_owe_a_compensation_new_cannot_run_are_refused() -> None:
    old, new = load(EVOLUTION / "order.yaml"), load(EVOLUTION / "order_irreversible_charge.yaml")
    result = checked(old, new, "")
    owed = [o for o in result.obligations if o.rule == "RGM105" and o.outcome == "violated"]
    # Only an order that was charged owes `payments.refund`, which NEW no longer declares.
    assert [o.state for o in owed] == ["charged"]
    cex = owed[0].counterexample
    assert cex is not None
    assert "charge" in [step.event for step in cex.run.steps]


def test_instances_that_owe_compensations_are_not_moved_into_a_failure_terminal() -> None:
    old = load(EVOLUTION / "order.yaml")
    result = checked(old, old, "states: {reserved: failed}\n")
    owed = [o for o in result.obligations if o.rule == "RGM105" and o.outcome == "violated"]
    assert [o.state for o in owed] == ["reserved"]


def test_an_obligation_the_solver_cannot_decide_is_unknown_and_fails(old: Spec, new: Spec) -> None:
    # `amount * amount // (amount + 1)` stays in [0, 10000], but dividing by a term with 10001
    # possible values is non-linear: Spacer gives up and the bounded search finds nothing.
    result = checked(old, new, "values: {amount: 'amount * amount // (amount + 1)'}\n")
    outcomes = {o.outcome for o in result.obligations}
    assert "violated" not in outcomes
    assert "unknown" in outcomes
    assert result.outcome == "unknown"
    assert not result.passed


def test_an_instance_that_would_break_a_run_property_later_in_new_is_refused_with_the_run() -> None:
    # Moving placed orders straight to `reserved` skips `reserve`: NEW can then `charge`
    # an order whose stock was never reserved (`charge-after-reserve`).
    order = load(EVOLUTION / "order.yaml")
    result = checked(order, order, "states: {placed: reserved}\n")
    broken = [o for o in result.obligations if o.outcome == "violated"]
    assert [(o.rule, o.subject) for o in broken] == [("RGM106", "continuation: charge-after-reserve")]
    cex = broken[0].counterexample
    assert cex is not None
    assert replay_counterexample(order, cex.run).state == "placed"
    assert cex.mapped_state == "reserved"
    assert [step.event for step in cex.after] == ["charge"]
    # The mapped instance itself satisfies every state invariant of NEW.
    assert all(o.outcome == "proved" for o in result.obligations if o.rule == "RGM103")


def test_runs_after_a_proved_migration_keep_new_invariants_even_outside_new_reach(old: Spec, new: Spec) -> None:
    migration = load_migration(EVOLUTION / "refund_to_review.migration.yaml", old, new)
    result = check_migration(old, new, migration)
    continuation = [o for o in result.obligations if o.rule == "RGM106"]
    assert [o.outcome for o in continuation] == ["proved"]


# `len` of a set of str is the one construct without a Z3 encoding today.
def test_a_spec_without_a_z3_encoding_makes_the_check_unknown() -> None:
    text = REFUND.read_text().replace(
        "  approved_by:  {type: principal}\n", "  approved_by:  {type: principal}\n  codes:        {type: set, of: {type: str, max_length: 8}}\n"
    ).replace("guard: params.amount <= 5000", "guard: params.amount <= 5000 and len(codes) < 3")
    spec = loads(text, "sets.yaml")
    result = checked(spec, spec, "")
    assert result.outcome == "unknown"
    assert not result.passed


def test_defaults_are_written_out_so_the_hash_names_what_runs(old: Spec, new: Spec) -> None:
    short = loads_migration(header(old, new) + "states: {requested: review}\nvalues: {risk: '\"low\"'}\n", old, new)
    explicit = loads_migration(
        header(old, new)
        + "states: {draft: draft, requested: review, approved: approved}\n"
        + "values: {amount: amount, requested_by: requested_by, approved_by: approved_by, risk: '\"low\"'}\n",
        old,
        new,
    )
    assert short == explicit
    assert short.content_hash == explicit.content_hash
    assert isinstance(short, Migration)


BAD_FILES = {
    "wrong-from": ("railguard-migration: 1\nfrom: sha256:0000\nto: {to}\n", 2, 7, "`from` is `sha256:0000`"),
    "wrong-to": ("railguard-migration: 1\nfrom: {from}\nto: sha256:1111\n", 3, 5, "`to` is `sha256:1111`"),
    "missing-from": ("railguard-migration: 1\nto: {to}\n", 1, 1, "needs `from`"),
    "unknown-old-state": ("{head}states:\n  requsted: review\n", 5, 3, "`requsted` is not a state of OLD"),
    "unknown-new-state": ("{head}states:\n  requested: reveiw\n", 5, 14, "`reveiw`, which is not a state of NEW"),
    "terminal-to-other-kind": ("{head}states:\n  paid: rejected\n", 5, 9, "must map to a success terminal"),
    "bad-syntax": ("{head}values:\n  amount: amount +* 2\n", 5, 19, "invalid expression syntax"),
    "ill-typed": ("{head}values:\n  amount: amount + True\n", 5, 11, "`+` needs numbers"),
    "unknown-variable": ("{head}values:\n  amount: amont\n", 5, 11, "unknown variable `amont`"),
    "wrong-type": ("{head}values:\n  amount: requested_by\n", 5, 11, "`amount` is int in [0, 10000]"),
    "forbidden-call": ("{head}values:\n  amount: __import__('os')\n", 5, 11, "`__import__` cannot be called"),
    "unknown-new-variable": ("{head}values:\n  amout: amount\n", 5, 3, "`amout` is not a variable of NEW"),
    "unknown-key": ("{head}stats: {{}}\n", 4, 1, "unknown key `stats`"),
    "bad-yaml": ("{head}values: [\n", 5, 1, "invalid YAML"),
    "empty-value": ("{head}values:\n  amount:\n", 5, 10, "must be an expression, not empty"),
    "duplicate-state": ("{head}states: {{draft: draft, draft: requested}}\n", 4, 24, "duplicate key `draft`"),
    "wrong-version": ("railguard-migration: 2\nfrom: {from}\nto: {to}\n", 1, 22, "must be 1, not 2"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_migration_file_is_refused_with_one_located_sentence(name: str, old: Spec, new: Spec, tmp_path: Path) -> None:
    template, line, column, words = BAD_FILES[name]
    text = template.format(**{"from": old.content_hash, "to": new.content_hash, "head": header(old, new)})
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(MigrationError) as caught:
        load_migration(path, old, new)
    error = caught.value
    assert words in error.message
    assert "\n" not in error.message
    assert (error.location.file, error.location.line, error.location.column) == (str(path), line, column)


def test_the_command_exits_0_when_proved_1_when_refused_and_2_for_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(REFUND), str(REVIEW)]
    assert main(["migrate", "check", *args, str(EVOLUTION / "refund_to_review.migration.yaml"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "proved"
    assert main(["migrate", "check", *args, str(EVOLUTION / "refund_to_review_doubled.migration.yaml"), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "violated"
    bad = tmp_path / "bad.yaml"
    bad.write_text("from: sha256:00\nto: sha256:00\n")
    assert main(["migrate", "check", *args, str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1:7: error: `from` is `sha256:00`" in err


def test_the_readme_migration_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code = (ROOT / "README.md").read_text().split("## Evolving a spec", 1)[1].split("\n## ", 1)[0].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    assert "-> " in capsys.readouterr().out


PROPERTIES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@PROPERTIES
@given(specs(max_states=5, max_vars=2, max_transitions=6))
def test_the_identity_migration_of_a_generated_spec_fails_exactly_where_the_verifier_does(document: dict[str, Any]) -> None:
    spec = load_data(document, "generated.yaml")
    migration = loads_migration(f"from: {spec.content_hash}\nto: {spec.content_hash}\n", spec, spec, "identity.yaml")
    result = check_migration(spec, spec, migration)
    if any("symbolically" in o.message for o in result.obligations):
        return  # no Z3 encoding: unknown, and the verifier says so too
    report = verify(spec)
    invariant = {r.subject: r.outcome for r in report.results if r.rule.id == "RG501"}
    broken = {o.subject.rsplit(": ", 1)[-1] for o in result.obligations if o.rule in ("RGM103", "RGM106") and o.outcome == "violated"}
    # Moving every instance to where it is can only break what OLD itself breaks...
    assert {o.rule for o in result.obligations if o.outcome == "violated"} <= {"RGM103", "RGM104", "RGM106"}
    for name in broken:
        assert invariant[name] == "violated", (name, result.to_text())
    # ...and everything the verifier proves about OLD, the migration proves too.
    proved = {name for name, outcome in invariant.items() if outcome == "proved"}
    for obligation in result.obligations:
        if obligation.rule in ("RGM103", "RGM106") and obligation.subject.rsplit(": ", 1)[-1] in proved:
            assert obligation.outcome == "proved", (obligation, result.to_text())
    trapped = {r.subject for r in report.results if r.rule.id == "RG102" and r.outcome == "violated"}
    for obligation in result.obligations:
        if obligation.rule == "RGM104" and obligation.outcome == "violated":
            assert obligation.state in trapped


def test_a_set_of_int_variable_is_carried_over_by_an_identity_migration() -> None:
    # Sets of int are Z3 arrays; the migration maps them whole.
    text = REFUND.read_text().replace(
        "  approved_by:  {type: principal}\n", "  approved_by:  {type: principal}\n  codes:        {type: set, of: {type: int, min: 0, max: 3}}\n"
    )
    spec = loads(text, "sets.yaml")
    result = checked(spec, spec, "")
    assert result.passed, [(o.rule, o.outcome, o.message) for o in result.obligations if o.outcome != "proved"]
