"""The exception base of :mod:`railguard.verifier`."""

from __future__ import annotations

from railguard.spec.errors import RailguardError

__all__ = ["VerifierError"]


class VerifierError(RailguardError):
    """Base of every error raised by :mod:`railguard.verifier`."""
