"""The audit log: append-only, hash-chained records per instance.

Each record's hash is ``sha256(prev_hash + "\\n" + payload)`` where ``payload`` is the
canonical JSON of the record's fields; the first record of an instance chains from
:data:`GENESIS`. Changing any field of any record, its hash, or the order of records breaks
the chain at that record, which :func:`verify_chain` names.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .codec import canonical_json

__all__ = [
    "GENESIS",
    "SLOTS",
    "WALL_CLOCK_FIELDS",
    "AuditRecord",
    "Tamper",
    "Template",
    "chain",
    "recordable",
    "recordable_mapping",
    "seal",
    "seal_text",
    "verify_chain",
]

GENESIS = "0" * 64
#: The scanner ``json.loads`` runs (the C one where there is one): one JSON value from an index.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
#: Payload fields that carry wall-clock time; everything else is deterministic.
WALL_CLOCK_FIELDS = ("at",)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit record: its instance, position (``seq`` from 1), payload and chain hashes."""

    instance: str
    seq: int
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str
    #: The canonical text :func:`chain` hashed, with the payload object it was made from; used
    #: only while ``payload`` is still that very object (a copy made with another payload, by
    #: ``dataclasses.replace`` say, is encoded afresh).
    encoded: tuple[Mapping[str, Any], str] | None = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> str:
        return str(self.payload.get("kind", ""))

    def payload_json(self) -> str:
        """The payload's canonical JSON (what its hash covers)."""
        encoded = self.encoded
        if encoded is not None and encoded[0] is self.payload:
            return encoded[1]
        return canonical_json(dict(self.payload))

    def to_json(self) -> dict[str, Any]:
        """The record as one JSON Lines object."""
        return {"instance": self.instance, "seq": self.seq, "payload": dict(self.payload), "prev_hash": self.prev_hash, "hash": self.hash}


_new = object.__new__
_SET_RECORD = tuple(AuditRecord.__dict__[name].__set__ for name in AuditRecord.__dataclass_fields__)


def digest(prev_hash: str, payload_json: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{payload_json}".encode()).hexdigest()


def chain(instance: str, prev_hash: str, seq: int, payload: Mapping[str, Any]) -> AuditRecord:
    """Make the record that follows ``prev_hash`` at position ``seq``."""
    return seal(instance, prev_hash, seq, dict(payload))


def seal(instance: str, prev_hash: str, seq: int, body: dict[str, Any]) -> AuditRecord:
    """:func:`chain` of a payload dict the caller hands over and does not use again (its
    ``instance`` and ``seq`` are set in place, which spares a copy)."""
    body["instance"] = instance
    body["seq"] = seq
    text = canonical_json(body)
    # Round-trip through JSON so the stored payload equals what was hashed (and shares no
    # object with the caller's data). The text is one JSON object and nothing else, so the
    # scanner ``json.loads`` runs is called directly.
    return seal_text(instance, prev_hash, seq, text)


def seal_text(instance: str, prev_hash: str, seq: int, text: str, stored: dict[str, Any] | None = None) -> AuditRecord:
    """The record whose payload is the canonical JSON ``text`` (which names ``instance`` and
    ``seq``), following ``prev_hash``; its payload is decoded from the text, so the stored
    payload equals what was hashed — or is ``stored``, which the caller vouches is exactly
    what decoding ``text`` gives (fresh objects, keys in the text's order)."""
    # The text is one JSON object and nothing else, so the scanner ``json.loads`` runs is
    # called directly.
    if stored is None:
        stored = _scan(text, 0)[0]
    record: AuditRecord = _new(AuditRecord)
    s0, s1, s2, s3, s4, s5 = _SET_RECORD  # the frozen record made through its slots (one per step)
    s0(record, instance)
    s1(record, seq)
    s2(record, stored)
    s3(record, prev_hash)
    s4(record, digest(prev_hash, text))
    s5(record, (stored, text))
    return record


#: Placeholders for the values a :class:`Template` leaves open (NUL-delimited text, which a
#: template refuses to be made from if its fixed part holds one too).
SLOTS = tuple(f"\x00railguard-slot-{i}\x00" for i in range(8))
_SLOT_TEXT = tuple(canonical_json(slot) for slot in SLOTS)


@dataclass(frozen=True, slots=True)
class Template:
    """The canonical JSON of payloads that differ from each other only in a few values — the
    fixed text around those values, and the slot each gap takes.

    :meth:`fill` puts each open value's canonical JSON into its gap, which is byte for byte
    the canonical JSON of the whole payload with those values in place: a value is encoded the
    same nested as alone, and where it goes depends on the keys only (sorted), never on the
    values. The engine keeps one per kind of step, so a step encodes only what changes."""

    parts: tuple[str, ...]
    order: tuple[int, ...]
    #: ``parts`` with each gap as a ``%s`` (and ``%`` doubled): printf-style formatting, which
    #: does not parse field names the way ``str.format`` does (about half the cost per fill).
    pattern: str = field(init=False, compare=False, repr=False)
    #: The values in gap order, as a tuple: ``values[order[0]], values[order[1]], ...``.
    pick: Callable[[Sequence[str]], tuple[str, ...]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.parts) != len(self.order) + 1:
            raise ValueError(f"a template of {len(self.order)} slots needs {len(self.order) + 1} parts, not {len(self.parts)}")
        pattern = "%s".join(part.replace("%", "%%") for part in self.parts)
        object.__setattr__(self, "pattern", pattern)
        order = self.order
        pick: Callable[[Sequence[str]], tuple[str, ...]]
        if len(order) > 1:
            pick = operator.itemgetter(*order)
        else:  # itemgetter of one index gives the item itself, of none cannot be made
            pick = lambda values: tuple(values[i] for i in order)  # noqa: E731
        object.__setattr__(self, "pick", pick)

    @classmethod
    def of(cls, body: Mapping[str, Any], slots: int) -> Template | None:
        """The template of ``body``, which holds ``SLOTS[0]`` .. ``SLOTS[slots - 1]`` once each
        where open values go; None if its fixed text holds a slot's placeholder itself (it is
        then encoded whole, every time)."""
        text = canonical_json(dict(body))
        if any(text.count(marker) != (1 if i < slots else 0) for i, marker in enumerate(_SLOT_TEXT)):
            return None
        gaps = sorted((text.index(_SLOT_TEXT[i]), i) for i in range(slots))
        parts, end = [], 0
        for start, i in gaps:
            parts.append(text[end:start])
            end = start + len(_SLOT_TEXT[i])
        parts.append(text[end:])
        return cls(tuple(parts), tuple(i for _, i in gaps))

    def fill(self, values: Sequence[str]) -> str:
        """The payload's canonical JSON with ``values[i]`` (canonical JSON text) in slot ``i``."""
        if len(values) != len(self.order):
            raise ValueError(f"a template of {len(self.order)} slots was given {len(values)} values")
        return self.pattern % self.pick(values)


def recordable(value: Any) -> Any:
    """``value`` as the JSON data an audit record holds, encoded by the one value codec
    (:func:`railguard.spec.codec.canonical_json`); a value the codec cannot encode (an
    arbitrary object, a lone surrogate, a cycle, an integer too long to print) is recorded as
    ``{"unrecordable": <its type>}`` so that the record still says something was given."""
    try:
        text = canonical_json(value)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return {"unrecordable": type(value).__name__}
    return json.loads(text)


def recordable_mapping(values: Mapping[Any, Any]) -> dict[str, Any]:
    """Each entry of ``values`` as :func:`recordable` makes it, so that one value the codec
    cannot encode does not hide the others; keys become their recordable text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key if isinstance(key, str) and recordable(key) == key else f"<{type(key).__name__} {ascii(key)[:40]}>"
        out[name] = recordable(value)
    return out


@dataclass(frozen=True, slots=True)
class Tamper:
    """Where a chain breaks: the instance, the record's position and why."""

    instance: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"instance `{self.instance}`, record {self.seq}: {self.reason}"


def verify_chain(records: Iterable[AuditRecord]) -> Tamper | None:
    """Check every instance's chain in ``records`` (ordered by instance, then seq); return the
    first broken record, or ``None`` if every chain verifies."""
    heads: dict[str, tuple[int, str]] = {}
    for record in records:
        last_seq, last_hash = heads.get(record.instance, (0, GENESIS))
        if record.seq != last_seq + 1:
            return Tamper(record.instance, record.seq, f"expected record {last_seq + 1} here (a record was removed or reordered)")
        if record.prev_hash != last_hash:
            return Tamper(record.instance, record.seq, "its previous-hash does not match the record before it")
        if record.payload.get("instance") != record.instance or record.payload.get("seq") != record.seq:
            return Tamper(record.instance, record.seq, "its payload names a different instance or position")
        # always encoded afresh: a record's own cache must not vouch for it
        if digest(record.prev_hash, canonical_json(dict(record.payload))) != record.hash:
            return Tamper(record.instance, record.seq, "its contents do not match its hash")
        heads[record.instance] = (record.seq, record.hash)
    return None
