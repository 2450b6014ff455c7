"""Interop: importing other tools' workflow formats into railguard specs, and exporting back.

Every importer returns an :class:`ImportResult`: the spec it built and a report of what it
did with each construct of the source — ``mapped`` (same behaviour), ``over-approximated``
(more behaviour than the source, so proofs stay sound but may be weaker) or ``refused``
(not imported; the importer raises :class:`InteropError` when nothing usable is left) — each
with the source location. Nothing is dropped in silence.

Formats: :mod:`.scxml` (W3C SCXML, flattened), :mod:`.asl` (Amazon States Language, validated
by :mod:`.asl_check`), and the exporters :mod:`.export_scxml` and :mod:`.export_asl`. The
command line reaches them through the tables of :mod:`railguard.interop_cli`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from railguard.spec.errors import Location, SpecError
from railguard.spec.model import Spec

__all__ = ["Finding", "FindingKind", "ImportResult", "InteropError"]

_NOWHERE = Location()


class InteropError(SpecError):
    """A source document could not be imported, or a spec cannot be exported to a format."""


class FindingKind(StrEnum):
    """What an importer did with one construct of the source document."""

    MAPPED = "mapped"
    OVER_APPROXIMATED = "over-approximated"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Finding:
    """One construct of the source and what became of it, in one sentence."""

    kind: FindingKind
    construct: str
    message: str
    location: Location = _NOWHERE


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The imported spec and the report of every construct that was mapped, over-approximated
    or refused."""

    spec: Spec
    findings: tuple[Finding, ...] = ()
    #: railguard state -> the source states it stands for (a flattened configuration, or the
    #: source state of the same name); empty when the importer keeps names one to one.
    states: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: source event name -> railguard event name, where they differ or were derived.
    events: Mapping[str, str] = field(default_factory=dict)

    def of_kind(self, kind: FindingKind) -> tuple[Finding, ...]:
        """The findings of one kind, in source order."""
        return tuple(f for f in self.findings if f.kind is kind)
