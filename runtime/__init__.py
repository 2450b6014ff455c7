"""railguard.runtime — deterministic, durable, audited execution of verified specs.

The :class:`Engine` runs instances of one spec on a :class:`Store` (SQLite by default,
PostgreSQL for many workers), asks a :class:`Directory` who holds which roles, calls
effect handlers with idempotency keys, and writes a hash-chained audit record for every
decision — including every refusal.
"""

from .audit import AuditRecord, Tamper, verify_chain
from .clock import Clock, ManualClock, SystemClock
from .directory import CallableDirectory, Directory, StaticDirectory, load_directory
from .effects import EffectCall, Effects, RetryPolicy
from .engine import Engine, Instance, StepResult
from .errors import (
    CertificateRequired,
    ConflictError,
    ExecutionError,
    InstanceExists,
    StoreError,
    UnknownInstance,
    UnvouchedRow,
)
from .lifecycle import RecordKind, Status
from .memory import MemoryMachine
from .replay import ReplayReport, replay_instance, replay_log
from .sqlite import SQLiteStore
from .store import InstanceRow, Store

__all__ = [
    "AuditRecord",
    "CallableDirectory",
    "CertificateRequired",
    "Clock",
    "ConflictError",
    "Directory",
    "EffectCall",
    "Effects",
    "Engine",
    "ExecutionError",
    "Instance",
    "InstanceExists",
    "InstanceRow",
    "ManualClock",
    "MemoryMachine",
    "RecordKind",
    "ReplayReport",
    "RetryPolicy",
    "SQLiteStore",
    "StaticDirectory",
    "Status",
    "StepResult",
    "Store",
    "StoreError",
    "SystemClock",
    "Tamper",
    "UnknownInstance",
    "UnvouchedRow",
    "load_directory",
    "replay_instance",
    "replay_log",
    "verify_chain",
]
