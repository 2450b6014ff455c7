"""The exception base of :mod:`railguard.verifier`."""

from __future__ import annotations

__all__ = ["VerifierError"]


class VerifierError(Exception):
    """Base of every error raised by :mod:`railguard.verifier`."""
