"""Single-defect mutants of the canonical examples: each is flagged by the right rule, naming
the right state, transition or property, and every data or permission violation comes with
a counterexample that replays through the runtime semantics."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from railguard.spec import Spec, loads
from railguard.verifier import Report, verify
from railguard.verifier.counterexample import replay_counterexample

from .conftest import EXAMPLES


@dataclass(frozen=True)
class Mutant:
    id: str
    example: str
    edits: tuple[tuple[str, str], ...]
    rule: str
    subject: str
    fails: bool = True


MUTANTS = [
    # ---- structure
    Mutant("orphan-state", "refund", (("  approved:  {}\n", "  approved:  {}\n  escalated: {}\n"),), "unreachable-state", "escalated"),
    Mutant("trap-state", "order", (
        ("  charged:   {}\n", "  charged:   {}\n  held:      {}\n"),
        ("  - event: cancel\n", "  - event: hold\n    from: placed\n    to: held\n    permission: order.cancel\n\n  - event: cancel\n"),
    ), "trap-state", "held"),
    Mutant("unreachable-success", "deploy", (("  released:  {terminal: success}\n", "  released:  {terminal: success}\n  archived:  {terminal: success}\n"),), "unreachable-success", "archived"),
    Mutant("terminal-with-exit", "refund", (("    from: [draft, requested, approved]\n    to: cancelled", "    from: [draft, requested, approved, paid]\n    to: cancelled"),), "terminal-outgoing", "transition 5 (`cancel`)"),
    # ---- fail-closed
    Mutant("no-error-exit", "refund", (("on_error: cancelled\n", ""),), "no-error-exit", "requested"),
    Mutant("uncompensated-charge", "order", (("    compensate: payments.refund\n", ""),), "uncompensated-effect", "transition 3 (`charge`)"),
    Mutant("uncompensated-reserve", "order", (("    compensate: inventory.release\n", ""),), "uncompensated-effect", "transition 2 (`reserve`)"),
    Mutant("irreversible-not-last", "refund", (("    from: approved\n    to: paid\n", "    from: approved\n    to: approved\n"),), "irreversible-not-last", "transition 3 (`pay`)"),
    # ---- permissions
    Mutant("ungranted-permission", "refund", (("    permission: refund.approve\n", "    permission: refund.aprove\n"),), "ungranted-permission", "transition 2 (`approve`)"),
    Mutant("unused-permission", "refund", (("  manager:  [refund.approve, refund.reject]", "  manager:  [refund.approve, refund.reject, refund.audit]"),), "unused-permission", "refund.audit", fails=False),
    Mutant("four-eyes-without-guard", "refund", (("    guard: actor != requested_by\n", ""),), "invariant", "four-eyes"),
    Mutant("reviewer-may-be-author", "deploy", (("    guard: actor != author\n", ""),), "invariant", "reviewer-is-not-author"),
    Mutant("separation-of-duties-by-role-only", "deploy", (
        ("    guard: actor != author\n", ""),
        ("  ci:       [deploy.report, deploy.retry, deploy.release]\n", "  ci:       [deploy.report, deploy.retry, deploy.release]\n  lead:     [deploy.submit, deploy.approve]\n"),
    ), "invariant", "reviewer-is-not-author"),
    # ---- data
    Mutant("dead-give-up", "deploy", (("    guard: attempts >= 3\n", "    guard: attempts > 3\n"),), "dead-transition", "transition 5 (`give_up`)"),
    Mutant("charge-never-possible", "order", (("    guard: total > 0\n", "    guard: total < 0\n"),), "dead-transition", "transition 3 (`charge`)"),
    Mutant("charged-unreachable", "order", (("    guard: total > 0\n", "    guard: total < 0\n"),), "data-unreachable-state", "charged"),
    Mutant("retry-escapes-domain", "deploy", (("    guard: attempts < 3\n", "    guard: attempts <= 3\n"),), "domain-escape", "transition 4 (`retry`): `attempts`"),
    Mutant("total-param-too-wide", "order", (("      total: {type: int, min: 1, max: 100000}", "      total: {type: int, min: 1, max: 200000}"),), "domain-escape", "transition 1 (`place`): `total`"),
    Mutant("overlapping-approvals", "refund", (
        ("  - event: pay\n", "  - event: approve\n    from: requested\n    to: rejected\n    permission: refund.approve\n    guard: amount > 100\n\n  - event: pay\n"),
    ), "nondeterminism", "transition 2 (`approve`) and transition 3 (`approve`) from `requested`"),
    # ---- invariants
    Mutant("refund-limit-raised", "refund", (("    guard: params.amount <= 5000\n", "    guard: params.amount <= 6000\n"),), "invariant", "refund-limit"),
    Mutant("pay-before-approve", "refund", (("    from: approved\n    to: paid\n", "    from: [requested, approved]\n    to: paid\n"),), "invariant", "pay-after-approve"),
    Mutant("charge-before-reserve", "order", (("    from: reserved\n    to: charged\n", "    from: [placed, reserved]\n    to: charged\n"),), "invariant", "charge-after-reserve"),
    Mutant("zero-total-order", "order", (("      total: {type: int, min: 1, max: 100000}", "      total: {type: int, min: 0, max: 100000}"),), "invariant", "placed-orders-have-a-total"),
    Mutant("more-retries", "deploy", (
        ("  attempts:     {type: int, min: 0, max: 3, initial: 0}", "  attempts:     {type: int, min: 0, max: 4, initial: 0}"),
        ("    guard: attempts < 3\n", "    guard: attempts < 4\n"),
    ), "invariant", "bounded-retries"),
    Mutant("reviewer-recorded-wrongly", "deploy", (("      reviewer: actor\n", "      reviewer: author\n"),), "invariant", "reviewer-is-not-author"),
    Mutant("release-without-approval", "deploy", (("    from: approved\n    to: released\n", "    from: [review, approved]\n    to: released\n"),), "invariant", "release-after-approve"),
    Mutant("never-invariant", "refund", (
        ("      amount: {type: int, min: 1, max: 10000}\n", "      amount: {type: int, min: 0, max: 10000}\n"),
        ("  - name: pay-after-approve\n", "  - name: no-empty-refunds\n    never: state == \"paid\" and amount == 0\n  - name: pay-after-approve\n"),
    ), "invariant", "no-empty-refunds"),
]


def mutate(mutant: Mutant) -> Spec:
    text = (EXAMPLES / f"{mutant.example}.yaml").read_text()
    for old, new in mutant.edits:
        assert text.count(old) == 1, f"{mutant.id}: edit target {old!r} must occur exactly once"
        text = text.replace(old, new)
    return loads(text, f"{mutant.example}-{mutant.id}.yaml")


REPORTS: dict[str, Report] = {}


def report_of(mutant: Mutant) -> Report:
    if mutant.id not in REPORTS:
        REPORTS[mutant.id] = verify(mutate(mutant))
    return REPORTS[mutant.id]


def test_the_suite_has_at_least_twenty_five_mutants_with_distinct_ids() -> None:
    assert len(MUTANTS) >= 25
    assert len({m.id for m in MUTANTS}) == len(MUTANTS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_mutant_is_flagged_by_the_right_rule_naming_the_right_part(mutant: Mutant) -> None:
    report = report_of(mutant)
    flagged = {(r.rule.name, r.subject) for r in report.results if r.outcome == "violated"}
    assert (mutant.rule, mutant.subject) in flagged, sorted(flagged)
    assert report.failed is mutant.fails
    assert not [r for r in report.results if r.outcome == "unknown"]


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.rule in ("invariant", "domain-escape", "nondeterminism")], ids=lambda m: m.id)
def test_data_and_permission_violations_come_with_a_counterexample_that_replays(mutant: Mutant) -> None:
    report = report_of(mutant)
    (result,) = [r for r in report.results if r.rule.name == mutant.rule and r.subject == mutant.subject]
    cex = result.counterexample
    assert cex is not None
    end = replay_counterexample(report.spec, cex)
    assert end.state in report.spec.state_map
    plan = cex.to_plan()
    assert plan["workflow"] == report.spec.name
    assert plan["steps"]


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.rule in ("invariant", "domain-escape", "nondeterminism", "dead-transition", "data-unreachable-state")], ids=lambda m: m.id)
def test_the_finding_points_at_the_offending_line(mutant: Mutant) -> None:
    report = report_of(mutant)
    (result,) = [r for r in report.results if r.rule.name == mutant.rule and r.subject == mutant.subject]
    assert result.location.line > 0
    assert result.location.file.endswith(f"{mutant.id}.yaml")


def test_four_eyes_counterexample_uses_one_person_holding_both_roles() -> None:
    mutant = next(m for m in MUTANTS if m.id == "four-eyes-without-guard")
    (result,) = [r for r in report_of(mutant).results if r.subject == "four-eyes" and r.outcome == "violated"]
    assert result.counterexample is not None
    steps = result.counterexample.steps
    assert [s.event for s in steps] == ["request", "approve"]
    assert steps[0].actor == steps[1].actor
    assert {"support", "manager"} <= set(steps[1].roles)


def test_exclusive_roles_restore_four_eyes_without_the_guard() -> None:
    text = (EXAMPLES / "refund.yaml").read_text().replace("    guard: actor != requested_by\n", "")
    text += "\nexclusive_roles:\n  - [support, manager]\n"
    report = verify(loads(text, "refund-exclusive.yaml"))
    (four_eyes,) = [r for r in report.results if r.subject == "four-eyes"]
    assert four_eyes.outcome == "proved"


def test_a_waiver_keeps_the_finding_but_does_not_fail_the_gate() -> None:
    text = (EXAMPLES / "order.yaml").read_text().replace("    compensate: payments.refund\n", "")
    text += "\nwaivers:\n  - check: uncompensated-effect\n    target: charge\n    reason: the payment provider voids uncaptured charges itself\n"
    report = verify(loads(text, "order-waived.yaml"))
    (finding,) = [r for r in report.results if r.rule.name == "uncompensated-effect" and r.outcome == "violated"]
    assert finding.waived == "the payment provider voids uncaptured charges itself"
    assert not report.failed


def test_every_invariant_of_the_examples_is_proved_not_bounded() -> None:
    for name in ("refund", "order", "deploy"):
        report = verify(loads((EXAMPLES / f"{name}.yaml").read_text(), f"{name}.yaml"))
        invariants = [r for r in report.results if r.rule.name == "invariant"]
        assert len(invariants) == len(report.spec.invariants)
        assert {r.outcome for r in invariants} == {"proved"}
        assert {r.bound for r in invariants} == {None}


def test_an_unknown_result_fails_the_gate_even_when_waived() -> None:
    from railguard.verifier.budget import Budget

    text = (EXAMPLES / "refund.yaml").read_text()
    text += "\nwaivers:\n  - check: invariant\n    target: refund-limit\n    reason: we accept the risk\n"
    report = verify(loads(text, "refund-waived.yaml"), Budget(rlimit=1))
    (limit,) = [r for r in report.results if r.subject == "refund-limit"]
    assert limit.outcome == "unknown"
    assert limit.waived == "we accept the risk"
    assert limit.failed
    assert report.failed
