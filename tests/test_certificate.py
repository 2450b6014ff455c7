"""Certificates: issue, JSON round trip, fingerprint, and every reason to refuse one."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from railguard import __version__
from railguard.cli import main
from railguard.spec import Spec, load, load_data, loads
from railguard.verifier import Report, verify
from railguard.verifier.budget import Budget
from railguard.verifier.certificate import (
    CERTIFICATE_VERSION,
    Certificate,
    CertificateError,
    issue,
    load_certificate,
    required_checks,
    sign,
    verify_certificate,
)
from railguard.verifier.checklist import checklist
from railguard.verifier.keys import TrustSet, generate_key, write_key_pair
from railguard.verifier.results import SYMBOLIC, UNUSED_WAIVER
from railguard.verifier.strategies import specs

from .conftest import CANONICAL, EXAMPLES, ROOT

WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = generate_key()
TRUST = TrustSet.of([KEY])
MUTATED = (EXAMPLES / "deploy.yaml").read_text().replace("guard: attempts < 3", "guard: attempts <= 3")
WAIVER = "\nwaivers:\n  - check: domain-escape\n    target: retry\n    reason: the CI retries at most twice in practice\n"


@pytest.fixture(scope="module")
def refund() -> Spec:
    return load(EXAMPLES / "refund.yaml")


@pytest.fixture(scope="module")
def certificate(refund: Spec) -> Certificate:
    return issue(verify(refund), Budget(), now=WHEN)


def test_a_certificate_records_every_check_and_passes_for_a_clean_spec(
    refund: Spec, certificate: Certificate
) -> None:
    assert certificate.spec_name == "refund"
    assert certificate.content_hash == refund.content_hash
    assert certificate.railguard_version == __version__
    assert certificate.created == "2025-01-02T03:04:05+00:00"
    assert certificate.passed is True
    assert certificate.symbolic is True
    assert {r.outcome for r in certificate.results} == {"proved"}
    assert {r.key for r in certificate.results} == required_checks(refund)
    assert verify_certificate(refund, sign(certificate, KEY), TRUST)[0] is True


def test_a_certificate_round_trips_through_json(certificate: Certificate, tmp_path: Path) -> None:
    data = json.loads(certificate.dumps())
    assert data["railguard_certificate"] == CERTIFICATE_VERSION
    assert data["fingerprint"] == certificate.fingerprint
    again = Certificate.loads(certificate.dumps())
    assert again == certificate
    assert again.fingerprint == certificate.fingerprint
    path = tmp_path / "refund.cert.json"
    path.write_text(certificate.dumps())
    assert load_certificate(path) == certificate


def test_the_fingerprint_ignores_the_declared_time_but_not_the_outcomes(certificate: Certificate) -> None:
    assert certificate.fingerprint.startswith("sha256:")
    assert replace(certificate, created="2030-01-01T00:00:00+00:00").fingerprint == certificate.fingerprint
    first = certificate.results[0]
    changed = replace(certificate, results=(replace(first, outcome="unknown"), *certificate.results[1:]))
    assert changed.fingerprint != certificate.fingerprint


def test_a_certificate_with_a_tampered_hash_is_rejected(refund: Spec, certificate: Certificate) -> None:
    forged = replace(certificate, content_hash="sha256:" + "0" * 64)
    valid, reason = verify_certificate(refund, forged)
    assert valid is False
    assert reason.startswith("the spec changed since the certificate was issued")
    assert refund.content_hash in reason


def test_a_certificate_file_edited_after_issue_is_rejected(refund: Spec, certificate: Certificate) -> None:
    data = certificate.to_json()
    data["results"][0]["outcome"] = "proved"
    data["content_hash"] = refund.content_hash
    data["passed"] = True
    data["budget"]["rlimit"] = 1
    valid, reason = verify_certificate(refund, Certificate.from_json(data))
    assert valid is False
    assert "fingerprint does not match" in reason


def test_a_certificate_is_rejected_once_the_spec_changes(certificate: Certificate) -> None:
    text = (EXAMPLES / "refund.yaml").read_text().replace("params.amount <= 5000", "params.amount <= 4000")
    valid, reason = verify_certificate(loads(text), certificate)
    assert valid is False
    assert "content hash" in reason


def test_a_certificate_of_a_spec_with_a_failing_check_is_rejected() -> None:
    spec = loads(MUTATED)
    cert = issue(verify(spec), now=WHEN)
    assert cert.passed is False
    valid, reason = verify_certificate(spec, cert)
    assert valid is False
    assert reason.startswith(
        "the certificate records 1 failed check (violated), the first being `RG404 domain-escape` for "
    )


def test_a_waived_finding_keeps_the_certificate_valid_and_keeps_its_reason() -> None:
    spec = loads(MUTATED + WAIVER)
    cert = issue(verify(spec), now=WHEN)
    (waived,) = [r for r in cert.results if r.waived is not None]
    assert (waived.rule, waived.outcome) == ("RG404", "violated")
    assert waived.waived == "the CI retries at most twice in practice"
    valid, reason = verify_certificate(spec, sign(cert, KEY), TRUST)
    assert valid is True
    assert reason.endswith(f"1 waived, signed by `{KEY.id}`")


def test_a_certificate_with_unknown_results_is_rejected(refund: Spec) -> None:
    cert = issue(verify(refund, Budget(rlimit=1)), Budget(rlimit=1), now=WHEN)
    assert cert.budget.rlimit == 1
    assert cert.passed is False
    valid, reason = verify_certificate(refund, cert)
    assert valid is False
    assert "(unknown)" in reason


def test_a_structure_only_certificate_never_authorises_execution(refund: Spec) -> None:
    report = verify(refund, symbolic=False)
    honest = issue(report, symbolic=False, now=WHEN)
    assert honest.passed is True
    valid, reason = verify_certificate(refund, honest)
    assert valid is False
    assert "`--no-data`" in reason
    # A certificate that claims the data checks ran but lacks them is caught by coverage.
    lying = issue(report, symbolic=True, now=WHEN)
    valid, reason = verify_certificate(refund, lying)
    assert valid is False
    missing = len(required_checks(refund) - {r.key for r in lying.results})
    assert missing > 0
    assert reason.startswith(f"the certificate does not cover {missing} checks that this railguard runs")


def test_a_certificate_from_another_major_version_is_rejected(refund: Spec, certificate: Certificate) -> None:
    valid, reason = verify_certificate(refund, replace(certificate, railguard_version="99.0.0"))
    assert valid is False
    assert "railguard 99.0.0" in reason


@pytest.mark.parametrize("name", CANONICAL)
def test_the_required_checks_are_the_checks_a_full_run_reports(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    assert required_checks(spec) == {(r.rule.id, r.subject) for r in verify(spec).results}


def test_the_required_checks_do_not_depend_on_the_outcomes() -> None:
    spec = loads(MUTATED)
    assert required_checks(spec) == {(r.rule.id, r.subject) for r in verify(spec).results}


def _reported(report: Report) -> list[tuple[str, str, tuple[str, ...]]]:
    """Rule, subject and aliases of a report's checks, in order, without waiver warnings."""
    return [(r.rule.id, r.subject, r.aliases) for r in report.results if r.rule is not UNUSED_WAIVER]


def _listed(spec: Spec, *, symbolic: bool = True) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.rule.id, c.subject, c.aliases) for c in checklist(spec, symbolic=symbolic)]


def _assert_checklist_matches(spec: Spec, report: Report) -> None:
    if any(r.rule is SYMBOLIC for r in report.results):
        # No symbolic encoding: one unknown RG400 stands for the data checks (a certificate
        # that records it has failed), and the structural checks are listed exactly.
        assert _reported(report) == [*_listed(spec, symbolic=False), (SYMBOLIC.id, spec.name, ())]
        assert {r.outcome for r in report.results if r.rule is SYMBOLIC} == {"unknown"}
    else:
        assert _reported(report) == _listed(spec)


@pytest.mark.parametrize("name", CANONICAL)
def test_the_checklist_lists_in_order_what_verify_reports_on_the_examples(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    _assert_checklist_matches(spec, verify(spec))
    assert _listed(spec, symbolic=False) == _reported(verify(spec, symbolic=False))


def test_the_checklist_lists_the_offenders_of_failed_structural_checks() -> None:
    text = (EXAMPLES / "refund.yaml").read_text().replace(
        "  rejected:  {terminal: failure}", "  rejected:  {terminal: failure}\n  limbo: {}"
    )
    spec = loads(text)
    keys = {check.key for check in checklist(spec)}
    assert ("RG101", "limbo") in keys
    assert ("RG101", spec.name) not in keys
    _assert_checklist_matches(spec, verify(spec))


GENERATED = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@GENERATED
@given(specs(max_states=5, max_transitions=7))
def test_the_checklist_lists_what_verify_reports_on_generated_specs(document: dict[str, object]) -> None:
    spec = load_data(document)
    _assert_checklist_matches(spec, verify(spec))


@pytest.mark.slow
@settings(GENERATED, max_examples=60)
@given(specs(sets=True, decimals=True))
def test_the_checklist_does_not_depend_on_how_far_the_solver_got(document: dict[str, object]) -> None:
    spec = load_data(document)
    _assert_checklist_matches(spec, verify(spec, Budget(rlimit=1)))


def test_checking_a_certificate_loads_no_solver(certificate: Certificate, tmp_path: Path) -> None:
    path = tmp_path / "refund.cert.json"
    path.write_text(sign(certificate, KEY).dumps())
    _, public = write_key_pair(KEY, tmp_path / "key")
    program = (
        "import sys, json\n"
        "from railguard.spec import load\n"
        "from railguard.verifier.certificate import load_certificate, verify_certificate\n"
        "from railguard.verifier.keys import TrustSet\n"
        f"valid, reason = verify_certificate(load({str(EXAMPLES / 'refund.yaml')!r}), load_certificate({str(path)!r}), TrustSet.load([{str(public)!r}]))\n"
        "print(json.dumps({'valid': valid, 'loaded': sorted(m for m in ('z3', 'networkx') if m in sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {"valid": True, "loaded": []}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a railguard certificate"),
        ('{"railguard_certificate": 7}', "format version `7` is not supported"),
        ('{"railguard_certificate": 1}', "has no `budget` field"),
    ],
)
def test_a_malformed_certificate_is_a_certificate_error(text: str, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        Certificate.loads(text)


def test_a_certificate_with_an_unknown_outcome_is_a_certificate_error(certificate: Certificate) -> None:
    data = certificate.to_json()
    data["results"][0]["outcome"] = "maybe"
    with pytest.raises(CertificateError, match="unknown outcome `maybe`"):
        Certificate.from_json(data)


# --------------------------------------------------------------------------- the command line


def test_check_writes_a_certificate_that_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = tmp_path / "refund.cert.json"
    spec = str(EXAMPLES / "refund.yaml")
    assert main(["keys", "generate", str(tmp_path / "ci.key")]) == 0
    assert main(["check", spec, "--certificate", str(cert), "--sign-key", str(tmp_path / "ci.key")]) == 0
    assert "wrote certificate" in capsys.readouterr().err
    assert main(["certificate", "verify", spec, str(cert), "--trust", str(tmp_path / "ci.key.pub")]) == 0
    assert capsys.readouterr().out.startswith("✔ the certificate is valid for `refund`")


def test_rlimit_one_exits_one_with_unknowns_and_a_certificate_that_does_not_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = tmp_path / "refund.cert.json"
    spec = str(EXAMPLES / "refund.yaml")
    assert main(["check", spec, "--rlimit", "1", "--format", "json", "--certificate", str(cert)]) == 1
    report = json.loads(capsys.readouterr().out)
    outcomes = [r["outcome"] for r in report["files"][0]["results"]]
    assert "unknown" in outcomes
    assert "violated" not in outcomes
    assert json.loads(cert.read_text())["passed"] is False
    assert main(["certificate", "verify", spec, str(cert)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("✘ the certificate records")
    assert "(unknown)" in out
    assert len(out.strip().splitlines()) == 1


def test_certificate_verify_rejects_a_certificate_for_a_changed_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "refund.yaml"
    spec.write_text((EXAMPLES / "refund.yaml").read_text())
    cert = tmp_path / "refund.cert.json"
    assert main(["check", str(spec), "--certificate", str(cert)]) == 0
    spec.write_text(spec.read_text().replace("<= 5000", "<= 4000"))
    capsys.readouterr()
    assert main(["certificate", "verify", str(spec), str(cert)]) == 1
    assert "the spec changed since the certificate was issued" in capsys.readouterr().out


def test_a_no_data_certificate_does_not_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = tmp_path / "refund.cert.json"
    spec = str(EXAMPLES / "refund.yaml")
    assert main(["check", spec, "--no-data", "--certificate", str(cert)]) == 0
    assert json.loads(cert.read_text())["symbolic"] is False
    assert main(["certificate", "verify", spec, str(cert)]) == 1
    assert "`--no-data`" in capsys.readouterr().out


def test_certificate_verify_exits_two_for_unusable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(EXAMPLES / "refund.yaml")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{oops")
    assert main(["certificate", "verify", spec, str(garbage)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["certificate", "verify", spec, str(tmp_path / "missing.json")]) == 2
    assert "cannot read the certificate" in capsys.readouterr().err
    assert main(["certificate", "verify", str(tmp_path / "missing.yaml"), str(garbage)]) == 2


def test_check_certificate_needs_exactly_one_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLES), "--certificate", str(tmp_path / "c.json")]) == 2
    assert "exactly one spec" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_the_readme_certificate_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Certificates", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})


def test_a_certificate_with_a_waived_structural_finding_covers_that_finding() -> None:
    text = (EXAMPLES / "refund.yaml").read_text().replace(
        "  rejected:  {terminal: failure}", "  rejected:  {terminal: failure}\n  limbo: {}"
    )
    spec = loads(text + "\nwaivers:\n  - check: unreachable-state\n    target: limbo\n    reason: kept for the migration\n")
    cert = issue(verify(spec), now=WHEN)
    assert ("RG101", "limbo") in required_checks(spec)
    assert verify_certificate(spec, sign(cert, KEY), TRUST) == (
        True, f"the certificate is valid for `refund` ({spec.content_hash}): {len(cert.results)} checks passed, 1 waived, signed by `{KEY.id}`"
    )
    dropped = replace(cert, results=tuple(r for r in cert.results if r.key != ("RG101", "limbo")))
    valid, reason = verify_certificate(spec, dropped)
    assert valid is False
    assert reason.endswith("the first being `RG101` for `limbo`")
