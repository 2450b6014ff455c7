"""How a spec is authorised to run: a certificate signed by a trusted key, or an audited opt-out.

The one check the engine and ``migrate run`` make before they act (DESIGN §3, §5b).
"""

from __future__ import annotations

from typing import Any

from railguard.spec import Spec

from .errors import CertificateRequired

__all__ = ["certificate_note"]

def certificate_note(
    spec: Spec, certificate: Any, trusted_keys: Any, allow_unverified: str | None, *, what: str = "spec"
) -> dict[str, Any]:
    """What the audit log records of how ``spec`` is authorised: a certificate signed by a key
    of ``trusted_keys`` (a :class:`~railguard.verifier.keys.TrustSet` or public keys), or an
    opt-out with a written reason. Raises :class:`CertificateRequired` otherwise; ``what``
    names the spec in the message (``"NEW spec"`` for a migration's target)."""
    if certificate is None:
        if allow_unverified is None or not allow_unverified.strip():
            raise CertificateRequired(
                f"{what} `{spec.name}` ({spec.content_hash[:19]}) has no certificate: "
                "run `railguard check --certificate FILE` or opt out with a written reason"
            )
        return {"verified": False, "opt_out": allow_unverified.strip()}
    from railguard.verifier.certificate import verify_certificate
    from railguard.verifier.keys import TrustSet

    trusted = trusted_keys if isinstance(trusted_keys, TrustSet) else TrustSet.of(trusted_keys or ())
    ok, reason = verify_certificate(spec, certificate, trusted)
    if not ok:
        raise CertificateRequired(f"the certificate does not admit {what} `{spec.name}`: {reason}")
    return {"verified": True, "certificate": getattr(certificate, "fingerprint", None), "key_id": getattr(certificate, "key_id", None)}
