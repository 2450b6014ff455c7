"""Audit integrity of a whole store: every hash chain, and every instance's row against it.

:func:`verify_store` is what ``railguard audit verify`` runs: each instance's chain must verify
(:func:`railguard.runtime.audit.verify_chain`), each instance's version and audit head must be
its last record's position and hash (so a record added or removed behind the engine's back is
found), no log may belong to an instance that does not exist, and every payload must be
readable. The first problem found is named by instance and record position.
"""

from __future__ import annotations

from dataclasses import dataclass

from .audit import GENESIS, Tamper, verify_chain
from .errors import UnreadableRecord
from .store import Store

__all__ = ["IntegrityReport", "verify_store"]


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """The outcome of :func:`verify_store`: the first broken record (``None`` if every chain
    verifies and ends at its instance's head) and how many records and instances were read."""

    tamper: Tamper | None
    records: int
    instances: int

    @property
    def ok(self) -> bool:
        return self.tamper is None


def verify_store(store: Store) -> IntegrityReport:
    """Verify every audit chain in ``store`` and each instance's head against its last record."""
    instances = store.instances()
    try:
        records = store.audit()
    except UnreadableRecord as exc:
        return IntegrityReport(Tamper(exc.instance, exc.seq, "its payload is not valid JSON"), 0, len(instances))
    found = verify_chain(records)
    if found is not None:
        return IntegrityReport(found, len(records), len(instances))
    last: dict[str, tuple[int, str]] = {}
    for record in records:
        last[record.instance] = (record.seq, record.hash)
    return IntegrityReport(_head_mismatch(store, instances, last), len(records), len(instances))


def _head_mismatch(store: Store, instances: list[str], last: dict[str, tuple[int, str]]) -> Tamper | None:
    for instance in instances:
        row = store.get(instance)
        if row is None:  # pragma: no cover - removed while we read
            continue
        seq, head = last.get(instance, (0, GENESIS))
        if row.version > seq:
            return Tamper(instance, seq + 1, f"it is missing: the instance is at version {row.version} but its log ends at record {seq}")
        if row.version < seq:
            return Tamper(instance, row.version + 1, f"the instance ends at version {row.version}, so this record was added behind its back")
        if row.audit_head != head:
            return Tamper(instance, seq, "it is not the record the instance's audit head points to (the log was rewritten)")
    known = set(instances)
    for instance, (seq, _) in last.items():
        if instance not in known:
            return Tamper(instance, 1, f"its instance does not exist (an orphaned log of {seq} records)")
    return None
