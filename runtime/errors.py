"""The exception base of :mod:`railguard.runtime`."""

from __future__ import annotations

from railguard.spec.errors import RailguardError

__all__ = [
    "CertificateRequired",
    "ConflictError",
    "ExecutionError",
    "InstanceExists",
    "StoreError",
    "UnknownInstance",
    "UnreadableRecord",
    "UnvouchedRow",
]


class ExecutionError(RailguardError):
    """Base of every error raised by :mod:`railguard.runtime`."""


class CertificateRequired(ExecutionError):
    """The spec has no valid certificate and the caller did not opt out."""


class StoreError(ExecutionError):
    """The state store failed or holds data it cannot read."""


class ConflictError(StoreError):
    """Another writer changed the instance first (optimistic versioning)."""


class UnknownInstance(ExecutionError):
    """No instance has the given id."""


class UnvouchedRow(ExecutionError):
    """An instance row that its audit log does not vouch for (edited or inserted behind the
    engine's back): the engine refuses to act on it."""


class InstanceExists(ExecutionError):
    """An instance with the given id already exists."""


class UnreadableRecord(StoreError):
    """An audit record whose payload the store cannot read (not JSON): named by instance and
    position."""

    def __init__(self, instance: str, seq: int) -> None:
        super().__init__(f"audit record {seq} of instance `{instance}` is not valid JSON")
        self.instance = instance
        self.seq = seq
