"""Signing keys: Ed25519 key pairs, key ids, signatures and the trust set that accepts them.

The cryptography is the ``cryptography`` package's Ed25519; nothing here is hand-written
crypto. A private key is a PEM file (PKCS #8, unencrypted, mode 0600) that only the issuer
(CI) holds; its public key is a PEM file (``KEY.pub``) that the runtime holds. A key's id
is ``ed25519:`` and the first 16 bytes of the SHA-256 of its raw public key, in hex: a
signature names the key id that made it, so a trust set of several keys (key rotation)
knows which one to check it with.

Every signature covers a *domain* (what is signed: a certificate, a checkpoint) and the
message, so a signature over one kind of thing never verifies as another.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import VerifierError

__all__ = [
    "KeyFileError",
    "SigningKey",
    "TrustSet",
    "generate_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "write_key_pair",
]


class KeyFileError(VerifierError):
    """A key file is unreadable or not an Ed25519 key (unusable input)."""


def key_id(public: Ed25519PublicKey) -> str:
    """``ed25519:<32 hex digits>``: the first 16 bytes of the SHA-256 of the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def _message(domain: str, message: str) -> bytes:
    return f"railguard {domain}\n".encode() + message.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key and its id: what signs certificates and checkpoints."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def id(self) -> str:
        return key_id(self.public)

    def sign(self, domain: str, message: str) -> str:
        """The base64 signature of ``message`` in ``domain``."""
        return base64.b64encode(self.private.sign(_message(domain, message))).decode("ascii")


@dataclass(frozen=True, slots=True)
class TrustSet:
    """The public keys a verifier accepts signatures from, by key id (several during a key
    rotation). An empty trust set accepts nothing."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def of(cls, keys: Iterable[Ed25519PublicKey | SigningKey]) -> TrustSet:
        publics = [k.public if isinstance(k, SigningKey) else k for k in keys]
        return cls({key_id(k): k for k in publics})

    @classmethod
    def load(cls, paths: Iterable[str | os.PathLike[str]]) -> TrustSet:
        """The trust set of the public key files at ``paths``."""
        return cls.of(load_public_key(p) for p in paths)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def check(self, domain: str, message: str, key: str | None, signature: str | None) -> str | None:
        """``None`` if ``signature`` is a valid signature of ``message`` in ``domain`` by the
        trusted key ``key``; else why not, in one sentence."""
        if not key or not signature:
            return "it is not signed"
        public = self.keys.get(key)
        if public is None:
            return f"it is signed by key `{key}`, which is not in the trust set"
        try:
            raw = base64.b64decode(signature.encode("ascii"), validate=True)
            public.verify(raw, _message(domain, message))
        except (InvalidSignature, ValueError, UnicodeError):
            return f"its signature is not a valid signature by key `{key}` of its content"
        return None


def generate_key() -> SigningKey:
    """A new random Ed25519 key."""
    return SigningKey(Ed25519PrivateKey.generate())


def write_key_pair(key: SigningKey, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the private key to ``path`` (mode 0600, never overwriting) and its public key to
    ``path.pub``; return both paths."""
    private = Path(path)
    public = private.with_name(private.name + ".pub")
    for target in (private, public):
        if target.exists():
            raise KeyFileError(f"`{target}` already exists; a key file is never overwritten")
    pem = key.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public.write_bytes(key.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read the {what} `{os.fspath(path)}`: {(exc.strerror or 'unreadable').lower()}") from None


def load_signing_key(path: str | os.PathLike[str]) -> SigningKey:
    """Read a private key file that ``railguard keys generate`` wrote."""
    data = _read(path, "signing key")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"`{os.fspath(path)}` is not an unencrypted PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"`{os.fspath(path)}` is not an Ed25519 private key")
    return SigningKey(private)


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read a public key file (``KEY.pub``)."""
    data = _read(path, "public key")
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise KeyFileError(f"`{os.fspath(path)}` is not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise KeyFileError(f"`{os.fspath(path)}` is not an Ed25519 public key")
    return public
