"""Audit integrity of a whole store: every hash chain, and every instance's row against it.

Each audit record carries the digest of the instance row it leaves behind (its ``row``
field, :func:`row_digest`: state, variables, status, pending work, owed compensations,
context, workflow, spec hash and version). :func:`vouch` checks one row against its log:
the chain verifies and its last record is at the row's version, is the row's audit head and
carries the row's digest. The engine runs it before it acts on a row it did not write
itself, so a row edited or inserted behind its back is refused before any effect runs.

:func:`verify_store` is what ``railguard audit verify`` runs: each instance's chain must verify
(:func:`railguard.runtime.audit.verify_chain`), each instance's version and audit head must be
its last record's position and hash (so a record added or removed behind the engine's back is
found), its last record must vouch for the row, an instance's records may change spec only
through a ``migrated`` record (and its row names the spec of its last record), no log may
belong to an instance that does not exist, and every payload must be readable. The first
problem found is named by instance and record position.
"""

from __future__ import annotations

import hashlib
import json.encoder
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from railguard.spec import Spec

from .audit import AuditRecord, Tamper, verify_chain
from .codec import canonical_json
from .errors import UnreadableRecord
from .migrate import spec_lineage
from .store import InstanceRow, Store

__all__ = ["ROW_FIELD", "IntegrityReport", "fields_digest", "row_digest", "verify_store", "vouch"]

#: The payload field of an audit record that holds the digest of the row after it.
ROW_FIELD = "row"
#: What canonical JSON makes of a lone str: json's string encoder (``ensure_ascii=False``).
_text = json.encoder.encode_basestring


def row_digest(row: InstanceRow | Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of what the engine acts on in ``row``: id,
    workflow, spec hash, state, variables, version, status, context, pending work and owed
    compensations (not the audit head, which is the record's own hash, nor the timestamps)."""
    return fields_digest(
        row.id, row.workflow, row.spec_hash, row.state, row.values, row.version, row.status, row.context, row.pending, row.compensations
    )


def fields_digest(
    id: str,
    workflow: str,
    spec_hash: str,
    state: str,
    values: Any,
    version: int,
    status: str,
    context: Any,
    pending: Any,
    compensations: Any,
    *,
    values_json: str | None = None,
) -> str:
    """:func:`row_digest` of the row with these fields (without building the row).

    The text hashed is the canonical JSON of the object with these ten keys; it is put
    together field by field in sorted key order, which is byte for byte what encoding the
    object whole gives (a nested value encodes as it does alone). ``values_json``, if given,
    must be ``canonical_json(values)`` — the engine encodes the values once for the row
    column and the digest."""
    text = "".join((
        '{"compensations":', "[]" if compensations == [] else canonical_json(compensations),
        ',"context":', "{}" if context.__class__ is dict and not context else canonical_json(context),
        ',"id":', _text(id) if id.__class__ is str else canonical_json(id),
        ',"pending":', "null" if pending is None else canonical_json(pending),
        ',"spec_hash":', _text(spec_hash) if spec_hash.__class__ is str else canonical_json(spec_hash),
        ',"state":', _text(state) if state.__class__ is str else canonical_json(state),
        ',"status":', _text(status) if isinstance(status, str) else canonical_json(status),
        ',"values":', canonical_json(values) if values_json is None else values_json,
        ',"version":', int.__repr__(version) if version.__class__ is int else canonical_json(version),
        ',"workflow":', _text(workflow) if workflow.__class__ is str else canonical_json(workflow),
        "}",
    ))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def vouch(row: InstanceRow, records: Sequence[AuditRecord], *, chained: bool = False) -> Tamper | None:
    """Whether ``records`` (the instance's log, oldest first) vouch for ``row``: ``None`` if
    so, else where and why not. ``chained``: the chain was verified already."""
    if not records:
        return Tamper(row.id, 1, "it is missing: no audit record vouches for the instance row (inserted behind the engine's back?)")
    found = None if chained else verify_chain(records)
    if found is not None:
        return found
    last = records[-1]
    if row.version > last.seq:
        return Tamper(row.id, last.seq + 1, f"it is missing: the instance is at version {row.version} but its log ends at record {last.seq}")
    if row.version < last.seq:
        return Tamper(row.id, row.version + 1, f"the instance ends at version {row.version}, so this record was added behind its back")
    if row.audit_head != last.hash:
        return Tamper(row.id, last.seq, "it is not the record the instance's audit head points to (the log was rewritten)")
    if last.payload.get(ROW_FIELD) != row_digest(row):
        return Tamper(row.id, last.seq, "it does not vouch for the instance row: the row was edited behind the engine's back")
    return None


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


def verify_store(store: Store, specs: Sequence[Spec] = ()) -> IntegrityReport:
    """Verify every audit chain in ``store`` and each instance's row against its last record;
    the log of each instance of one of ``specs`` (same name and content hash) must also
    replay under it (:func:`railguard.runtime.replay.replay_log`), which finds a record forged
    with its chain recomputed that the spec does not allow."""
    instances = store.instances()
    try:
        records = store.audit()
    except UnreadableRecord as exc:
        return IntegrityReport(Tamper(exc.instance, exc.seq, "its payload is not valid JSON"), 0, len(instances))
    found = verify_chain(records)
    if found is not None:
        return IntegrityReport(found, len(records), len(instances))
    logs: dict[str, list[AuditRecord]] = {}
    for record in records:
        logs.setdefault(record.instance, []).append(record)
    problem = _unvouched(store, instances, logs, specs)
    if problem is None:  # each instance changes spec only by a `migrated` record
        rows = {i: row for i in instances if (row := store.get(i)) is not None}
        problem = spec_lineage(records, rows)
    return IntegrityReport(problem, len(records), len(instances))


def _unvouched(store: Store, instances: list[str], logs: dict[str, list[AuditRecord]], specs: Sequence[Spec]) -> Tamper | None:
    by_hash = {spec.content_hash: spec for spec in specs}
    for instance in instances:
        row = store.get(instance)
        if row is None:  # pragma: no cover - removed while we read
            continue
        log = logs.get(instance, [])
        found = vouch(row, log, chained=True)
        if found is not None:
            return found
        spec = by_hash.get(row.spec_hash)
        if spec is not None and spec.name == row.workflow:
            from .replay import replay_log

            replayed = replay_log(spec, log, instance, specs=specs)
            if not replayed.ok:
                return Tamper(instance, replayed.seq or log[-1].seq, f"it does not follow from the records before it under spec `{spec.name}`: {replayed.mismatch}")
    known = set(instances)
    for instance, log in logs.items():
        if instance not in known:
            return Tamper(instance, 1, f"its instance does not exist (an orphaned log of {log[-1].seq} records)")
    return None
