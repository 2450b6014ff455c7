"""Certificates: the record that a spec, byte for byte, passed every check.

A :class:`Certificate` pins the spec's content hash, the railguard version and the solver
budget, and lists every check with its outcome (waived findings with their reason). It is
plain JSON (``railguard_certificate: 1``) and has a stable :attr:`~Certificate.fingerprint`
over everything but its declared creation time. The runtime calls :func:`verify_certificate`
before it runs a spec; ``railguard certificate verify SPEC FILE`` does the same from a shell.

A certificate names the key that signed it (``key_id``) and carries an Ed25519
``signature`` over its canonical content (:func:`sign`, :mod:`railguard.verifier.keys`). A
certificate is valid for a spec when it is signed by a key of the verifier's trust set, the
hashes match, it was issued by the same major
version of railguard, every check it records passed (proved, waived, or only a warning — an
``unknown`` never passes), it was issued with the data checks on, and it covers every check
that this version of railguard runs on the spec. Checking a certificate runs no solver and
does not import Z3: the checks a spec gets are listed from the spec alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from railguard import __version__
from railguard.spec import Spec
from railguard.spec.codec import canonical_json

from .budget import Budget
from .checklist import required_keys
from .errors import VerifierError
from .keys import SigningKey, TrustSet
from .results import Outcome, Report

__all__ = [
    "CERTIFICATE_VERSION",
    "Certificate",
    "CertificateError",
    "CertifiedCheck",
    "issue",
    "load_certificate",
    "required_checks",
    "sign",
    "verify_certificate",
]

#: Version of the certificate's JSON shape (its ``railguard_certificate`` field).
CERTIFICATE_VERSION = 1
#: What a certificate's signature is over (see :meth:`railguard.verifier.keys.SigningKey.sign`).
SIGNATURE_DOMAIN = "certificate v1"


class CertificateError(VerifierError):
    """A certificate file is unreadable or not a railguard certificate (unusable input)."""


@dataclass(frozen=True, slots=True)
class CertifiedCheck:
    """One check a certificate records: rule id and name, subject, outcome, bound, waiver."""

    rule: str
    name: str
    subject: str
    outcome: Outcome
    bound: int | None = None
    waived: str | None = None
    severity: Literal["error", "warning"] = "error"

    @property
    def failed(self) -> bool:
        """Violated or unknown, not waived and not a warning (as :attr:`Result.failed`)."""
        return self.outcome != "proved" and self.waived is None and self.severity == "error"

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.subject)


@dataclass(frozen=True)
class Certificate:
    """What ``railguard check --certificate`` issues for one spec.

    ``created`` is the declared wall-clock time of issue (ISO 8601, UTC); it is informative
    only and left out of :attr:`fingerprint`. ``symbolic`` is false for a certificate issued
    with ``--no-data``, which never authorises execution. ``declared_fingerprint`` is the
    fingerprint read from a file, if any, so that an edited file is caught. ``key_id`` and
    ``signature`` are the signing key's id and its signature over :meth:`signed_text`
    (``None`` for an unsigned certificate, which never authorises execution).
    """

    spec_name: str
    content_hash: str
    railguard_version: str
    created: str
    budget: Budget
    results: tuple[CertifiedCheck, ...]
    passed: bool
    symbolic: bool = True
    declared_fingerprint: str | None = field(default=None, compare=False, repr=False)
    key_id: str | None = None
    signature: str | None = field(default=None, repr=False)

    def _content(self) -> dict[str, Any]:
        return {
            "railguard_certificate": CERTIFICATE_VERSION,
            "spec_name": self.spec_name,
            "content_hash": self.content_hash,
            "railguard_version": self.railguard_version,
            "symbolic": self.symbolic,
            "budget": asdict(self.budget),
            "passed": self.passed,
            "results": [asdict(r) for r in self.results],
        }

    @property
    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of everything but ``created``: the same
        checks with the same outcomes on the same spec give the same fingerprint."""
        canonical = json.dumps(self._content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def signed_text(self) -> str:
        """What the signature covers: the canonical JSON of the content (everything the
        fingerprint covers) and the key id."""
        return canonical_json({"content": self._content(), "key_id": self.key_id})

    @property
    def failures(self) -> tuple[CertifiedCheck, ...]:
        return tuple(r for r in self.results if r.failed)

    def to_json(self) -> dict[str, Any]:
        """The certificate as JSON data, with its ``created`` time and ``fingerprint``."""
        content = self._content()
        content["created"] = self.created
        content["fingerprint"] = self.fingerprint
        if self.key_id is not None:
            content["key_id"] = self.key_id
        if self.signature is not None:
            content["signature"] = self.signature
        return content

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: object) -> Certificate:
        """Read a certificate from JSON data; raise :class:`CertificateError` unless it is a
        well-formed certificate of a format version this railguard reads."""
        if not isinstance(data, dict) or "railguard_certificate" not in data:
            raise CertificateError("this is not a railguard certificate: it has no `railguard_certificate` field")
        version = data["railguard_certificate"]
        if version != CERTIFICATE_VERSION:
            raise CertificateError(f"certificate format version `{version}` is not supported; this railguard reads version {CERTIFICATE_VERSION}")
        try:
            budget_data = _typed(data, "budget", dict)
            known = {f.name for f in fields(Budget)}
            unknown = sorted(set(budget_data) - known)
            if unknown:
                raise CertificateError(f"the certificate's budget has unknown field `{unknown[0]}`")
            for name, value in budget_data.items():
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise CertificateError(f"the certificate's budget field `{name}` must be an integer")
            results = tuple(_check(item) for item in _typed(data, "results", list))
            fingerprint = data.get("fingerprint")
            if fingerprint is not None and not isinstance(fingerprint, str):
                raise CertificateError("the certificate's `fingerprint` must be a string")
            key = data.get("key_id")
            signature = data.get("signature")
            if not isinstance(key, str | None) or not isinstance(signature, str | None):
                raise CertificateError("the certificate's `key_id` and `signature` must be strings")
            return cls(
                spec_name=_typed(data, "spec_name", str),
                content_hash=_typed(data, "content_hash", str),
                railguard_version=_typed(data, "railguard_version", str),
                created=_typed(data, "created", str),
                budget=Budget(**budget_data),
                results=results,
                passed=_typed(data, "passed", bool),
                symbolic=_typed(data, "symbolic", bool),
                declared_fingerprint=fingerprint,
                key_id=key,
                signature=signature,
            )
        except (TypeError, ValueError) as exc:
            raise CertificateError(f"the certificate is malformed: {exc}") from None

    @classmethod
    def loads(cls, text: str) -> Certificate:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CertificateError(f"the certificate is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_json(data)


def _typed(data: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in data:
        raise CertificateError(f"the certificate has no `{key}` field")
    value = data[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise CertificateError(f"the certificate's `{key}` must be a {kind.__name__}")
    return value


def _check(item: object) -> CertifiedCheck:
    if not isinstance(item, dict):
        raise CertificateError("each of the certificate's `results` must be an object")
    outcome = _typed(item, "outcome", str)
    if outcome not in ("proved", "violated", "unknown"):
        raise CertificateError(f"unknown outcome `{outcome}` in the certificate")
    severity = item.get("severity", "error")
    if severity not in ("error", "warning"):
        raise CertificateError(f"unknown severity `{severity}` in the certificate")
    bound = item.get("bound")
    waived = item.get("waived")
    if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
        raise CertificateError("a result's `bound` must be an integer or null")
    if waived is not None and not isinstance(waived, str):
        raise CertificateError("a result's `waived` must be a string or null")
    return CertifiedCheck(
        rule=_typed(item, "rule", str),
        name=_typed(item, "name", str),
        subject=_typed(item, "subject", str),
        outcome=cast(Outcome, outcome),
        bound=bound,
        waived=waived,
        severity=severity,
    )


def load_certificate(path: str | Path) -> Certificate:
    """Read a certificate file; raise :class:`CertificateError` if it is unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise CertificateError(f"cannot read the certificate `{path}`: {reason}") from None
    return Certificate.loads(text)


def issue(
    report: Report,
    budget: Budget | None = None,
    *,
    symbolic: bool = True,
    now: datetime | None = None,
) -> Certificate:
    """The certificate of ``report``, checked under ``budget`` (``symbolic=False`` when the
    data checks were off). ``now`` is the declared time of issue (default: the clock)."""
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    checks = tuple(
        CertifiedCheck(r.rule.id, r.rule.name, r.subject, r.outcome, r.bound, r.waived, r.severity)
        for r in report.results
    )
    return Certificate(
        spec_name=report.spec.name,
        content_hash=report.spec.content_hash,
        railguard_version=__version__,
        created=when,
        budget=budget or Budget(),
        results=checks,
        passed=not report.failed,
        symbolic=symbolic,
    )


def sign(cert: Certificate, key: SigningKey) -> Certificate:
    """``cert`` signed by ``key``: it names the key's id and carries its signature over
    :meth:`Certificate.signed_text`."""
    named = replace(cert, key_id=key.id, signature=None)
    return replace(named, signature=key.sign(SIGNATURE_DOMAIN, named.signed_text()))


def required_checks(spec: Spec) -> frozenset[tuple[str, str]]:
    """The (rule id, subject) of every check this railguard runs on ``spec``, structure and
    data alike, worked out from the spec without a solver (see
    :mod:`railguard.verifier.checklist`)."""
    return required_keys(spec)


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _describe(check: CertifiedCheck) -> str:
    return f"`{check.rule} {check.name}` for `{check.subject}`"


def verify_certificate(spec: Spec, cert: Certificate, trusted: TrustSet | None = None) -> tuple[bool, str]:
    """Whether ``cert`` authorises running ``spec``, and why (one sentence either way).

    Deny by default: without a ``trusted`` set of keys no certificate is accepted, since
    anyone who can write the file could have written it. The content is checked first, so
    the reason names what is wrong with an edited certificate; then the signature."""
    ok, reason = _verify_content(spec, cert)
    if not ok:
        return ok, reason
    if not trusted:
        return False, "no trusted keys are configured, so the certificate's signature cannot be checked (give the issuer's public key with `--trust KEY.pub`)"
    problem = trusted.check(SIGNATURE_DOMAIN, cert.signed_text(), cert.key_id, cert.signature)
    if problem is not None:
        return False, f"the certificate is not vouched for: {problem}"
    return True, f"{reason}, signed by `{cert.key_id}`"


def _verify_content(spec: Spec, cert: Certificate) -> tuple[bool, str]:
    if cert.declared_fingerprint is not None and cert.declared_fingerprint != cert.fingerprint:
        return False, "the certificate was edited after it was issued: its fingerprint does not match its content"
    if _major(cert.railguard_version) != _major(__version__):
        return False, f"the certificate was issued by railguard {cert.railguard_version}, whose major version differs from this railguard ({__version__})"
    if cert.content_hash != spec.content_hash:
        return False, f"the spec changed since the certificate was issued: the spec's content hash is {spec.content_hash}, the certificate's is {cert.content_hash}"
    if not cert.symbolic:
        return False, "the certificate was issued without the data checks (`--no-data`), so it proves no invariant and cannot authorise execution"
    failures = cert.failures
    if failures:
        kinds = sorted({f.outcome for f in failures})
        return False, f"the certificate records {len(failures)} failed check{'s' if len(failures) != 1 else ''} ({' and '.join(kinds)}), the first being {_describe(failures[0])} ({failures[0].outcome})"
    if not cert.passed:
        return False, "the certificate records that the spec did not pass its checks"
    missing = sorted(required_checks(spec) - {r.key for r in cert.results})
    if missing:
        rule, subject = missing[0]
        return False, f"the certificate does not cover {len(missing)} check{'s' if len(missing) != 1 else ''} that this railguard runs, the first being `{rule}` for `{subject}`"
    waived = sum(1 for r in cert.results if r.outcome != "proved" and r.waived is not None)
    note = f", {waived} waived" if waived else ""
    return True, f"the certificate is valid for `{spec.name}` ({spec.content_hash}): {len(cert.results)} checks passed{note}"
