"""Trust: signed certificates, and every forgery of one that someone with write access to the
files could try, refused by `verify_certificate`, `certificate verify` and the engine."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from railguard.cli import main
from railguard.runtime import CertificateRequired, Engine, ManualClock, SQLiteStore
from railguard.spec import Spec, load, loads
from railguard.verifier import verify
from railguard.verifier.certificate import Certificate, issue, sign, verify_certificate
from railguard.verifier.keys import (
    KeyFileError,
    TrustSet,
    generate_key,
    load_public_key,
    load_signing_key,
    write_key_pair,
)

from .conftest import EXAMPLES
from .fakes import PEOPLE, Ledger

WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
CI = generate_key()
OTHER = generate_key()
TRUST = TrustSet.of([CI.public])
#: deploy with a guard that lets `attempts` escape its domain: its check is violated
BROKEN = (EXAMPLES / "deploy.yaml").read_text().replace("guard: attempts < 3", "guard: attempts <= 3")


@pytest.fixture(scope="module")
def refund() -> Spec:
    return load(EXAMPLES / "refund.yaml")


@pytest.fixture(scope="module")
def broken() -> Spec:
    return loads(BROKEN)


@pytest.fixture(scope="module")
def signed(refund: Spec) -> Certificate:
    return sign(issue(verify(refund), now=WHEN), CI)


@pytest.fixture(scope="module")
def failed(broken: Spec) -> Certificate:
    """The honest, signed certificate of a spec that failed a check."""
    cert = sign(issue(verify(broken), now=WHEN), CI)
    assert not cert.passed
    return cert


def _forge_passing(cert: Certificate) -> dict[str, Any]:
    """The certificate's JSON edited to record every check as proved and the spec as passed."""
    data = cert.to_json()
    for result in data["results"]:
        result["outcome"] = "proved"
    data["passed"] = True
    return data


def _engine(spec: Spec, **kw: Any) -> Engine:
    return Engine(spec, SQLiteStore(":memory:"), PEOPLE, effects=Ledger().effects(spec), clock=ManualClock(), **kw)


# --------------------------------------------------------------------------- signing


def test_a_signed_certificate_names_its_key_and_verifies_against_the_trust_set(refund: Spec, signed: Certificate) -> None:
    assert signed.key_id == CI.id
    assert CI.id.startswith("ed25519:")
    valid, reason = verify_certificate(refund, signed, TRUST)
    assert valid is True
    assert reason.endswith(f"signed by `{CI.id}`")
    again = Certificate.loads(signed.dumps())
    assert (again.key_id, again.signature) == (signed.key_id, signed.signature)
    assert verify_certificate(refund, again, TRUST)[0] is True


def test_without_a_trust_set_no_certificate_is_accepted(refund: Spec, signed: Certificate) -> None:
    for trusted in (None, TrustSet.of([])):
        valid, reason = verify_certificate(refund, signed, trusted)
        assert valid is False
        assert reason.startswith("no trusted keys are configured")


def test_an_unsigned_certificate_is_refused(refund: Spec) -> None:
    unsigned = issue(verify(refund), now=WHEN)
    valid, reason = verify_certificate(refund, unsigned, TRUST)
    assert (valid, reason) == (False, "the certificate is not vouched for: it is not signed")


def test_a_trust_set_of_several_keys_accepts_each_during_a_rotation(refund: Spec, signed: Certificate) -> None:
    rotated = sign(issue(verify(refund), now=WHEN), OTHER)
    both = TrustSet.of([CI.public, OTHER.public])
    assert verify_certificate(refund, signed, both)[0] is True
    assert verify_certificate(refund, rotated, both)[0] is True
    assert verify_certificate(refund, rotated, TRUST)[0] is False


# --------------------------------------------------------------------------- forgeries


def test_an_edited_certificate_is_refused(broken: Spec, failed: Certificate) -> None:
    forged = Certificate.from_json(_forge_passing(failed))
    valid, reason = verify_certificate(broken, forged, TRUST)
    assert valid is False
    assert "fingerprint does not match" in reason


def test_an_edited_and_refingerprinted_certificate_is_refused(broken: Spec, failed: Certificate) -> None:
    data = _forge_passing(failed)
    data["fingerprint"] = Certificate.from_json({**data, "fingerprint": None}).fingerprint
    forged = Certificate.from_json(data)
    assert forged.declared_fingerprint == forged.fingerprint
    valid, reason = verify_certificate(broken, forged, TRUST)
    assert (valid, reason) == (False, f"the certificate is not vouched for: its signature is not a valid signature by key `{CI.id}` of its content")


def test_an_edited_certificate_with_its_fingerprint_removed_is_refused(broken: Spec, failed: Certificate) -> None:
    data = _forge_passing(failed)
    del data["fingerprint"]
    forged = Certificate.from_json(data)
    valid, reason = verify_certificate(broken, forged, TRUST)
    assert valid is False
    assert reason.startswith("the certificate is not vouched for: its signature is not a valid signature")


def test_a_certificate_signed_by_an_untrusted_key_is_refused(broken: Spec, failed: Certificate) -> None:
    forged = sign(Certificate.from_json({**_forge_passing(failed), "fingerprint": None}), OTHER)
    valid, reason = verify_certificate(broken, forged, TRUST)
    assert (valid, reason) == (False, f"the certificate is not vouched for: it is signed by key `{OTHER.id}`, which is not in the trust set")


def test_a_signature_taken_from_another_specs_certificate_is_refused(broken: Spec, failed: Certificate, signed: Certificate) -> None:
    data = _forge_passing(failed)
    data["fingerprint"] = None
    data["key_id"], data["signature"] = signed.key_id, signed.signature
    forged = Certificate.from_json(data)
    valid, reason = verify_certificate(broken, forged, TRUST)
    assert valid is False
    assert "its signature is not a valid signature" in reason


def test_a_signature_over_a_certificate_never_verifies_as_another_kind_of_thing(signed: Certificate) -> None:
    assert TRUST.check("certificate v1", signed.signed_text(), signed.key_id, signed.signature) is None
    assert TRUST.check("checkpoint v1", signed.signed_text(), signed.key_id, signed.signature) is not None
    assert TRUST.check("certificate v1", signed.signed_text(), signed.key_id, "not base64!") is not None


# --------------------------------------------------------------------------- the engine


def test_the_engine_runs_a_spec_only_with_a_certificate_signed_by_a_trusted_key(refund: Spec, signed: Certificate) -> None:
    engine = _engine(refund, certificate=signed, trusted_keys=[CI.public])
    start = engine.start("r1", "sam").records[0].payload
    assert start["certificate"] == {"verified": True, "certificate": signed.fingerprint, "key_id": CI.id}
    with pytest.raises(CertificateRequired, match="no trusted keys are configured"):
        _engine(refund, certificate=signed)
    with pytest.raises(CertificateRequired, match="not in the trust set"):
        _engine(refund, certificate=signed, trusted_keys=TrustSet.of([OTHER]))


def test_the_engine_refuses_every_forged_certificate(broken: Spec, failed: Certificate, signed: Certificate) -> None:
    edited = _forge_passing(failed)
    refingerprinted = {**edited, "fingerprint": Certificate.from_json({**edited, "fingerprint": None}).fingerprint}
    stripped = {k: v for k, v in edited.items() if k != "fingerprint"}
    untrusted = sign(Certificate.from_json({**edited, "fingerprint": None}), OTHER).to_json()
    borrowed = {**refingerprinted, "key_id": signed.key_id, "signature": signed.signature}
    for data in (edited, refingerprinted, stripped, untrusted, borrowed):
        with pytest.raises(CertificateRequired):
            _engine(broken, certificate=Certificate.from_json(data), trusted_keys=TRUST)


def test_an_unsigned_certificate_runs_only_through_the_audited_opt_out(refund: Spec) -> None:
    unsigned = issue(verify(refund), now=WHEN)
    with pytest.raises(CertificateRequired, match="it is not signed"):
        _engine(refund, certificate=unsigned, trusted_keys=TRUST)
    engine = _engine(refund, allow_unverified="unsigned certificate, local run")
    assert engine.start("r1", "sam").records[0].payload["certificate"] == {"verified": False, "opt_out": "unsigned certificate, local run"}


# --------------------------------------------------------------------------- key files and the command line


def test_a_key_pair_round_trips_through_its_files(tmp_path: Path) -> None:
    private, public = write_key_pair(CI, tmp_path / "ci.key")
    assert public == tmp_path / "ci.key.pub"
    assert os.stat(private).st_mode & 0o777 == 0o600
    assert load_signing_key(private).id == CI.id
    assert TrustSet.load([public]).keys.keys() == {CI.id}
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_pair(OTHER, private)
    with pytest.raises(KeyFileError, match="is not an unencrypted PEM private key"):
        load_signing_key(public)
    with pytest.raises(KeyFileError, match="cannot read the public key"):
        load_public_key(tmp_path / "missing.pub")


def test_keys_generate_check_sign_and_certificate_verify_with_trust(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(EXAMPLES / "refund.yaml")
    key, cert = tmp_path / "ci.key", tmp_path / "refund.cert.json"
    assert main(["keys", "generate", str(key)]) == 0
    assert main(["keys", "generate", str(key)]) == 2  # never overwrites a key
    assert main(["check", spec, "--no-data", "--certificate", str(tmp_path / "nodata.json"), "--sign-key", str(key)]) == 0
    assert main(["check", spec, "--certificate", str(cert), "--sign-key", str(key)]) == 0
    data = json.loads(cert.read_text())
    assert data["key_id"] == load_signing_key(key).id
    capsys.readouterr()
    assert main(["certificate", "verify", spec, str(cert)]) == 1
    assert main(["certificate", "verify", spec, str(cert), "--trust", f"{key}.pub"]) == 0
    other = tmp_path / "other.key"
    assert main(["keys", "generate", str(other)]) == 0
    assert main(["certificate", "verify", spec, str(cert), "--trust", f"{other}.pub"]) == 1
    assert main(["certificate", "verify", spec, str(cert), "--trust", f"{other}.pub", "--trust", f"{key}.pub"]) == 0
    data["results"][0]["outcome"] = "unknown"
    data["fingerprint"] = replace(Certificate.from_json(data), declared_fingerprint=None).fingerprint
    cert.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["certificate", "verify", spec, str(cert), "--trust", f"{key}.pub"]) == 1
    assert main(["certificate", "verify", spec, str(cert), "--trust", str(key)]) == 2  # a private key is not a public key
    assert "is not a PEM public key" in capsys.readouterr().err
