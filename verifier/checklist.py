"""Which checks a spec gets, worked out from the spec alone: no solver, no Z3.

:func:`checklist` lists every (rule, subject) that :func:`~railguard.verifier.verify` reports
for a spec with the data checks on, without running a single solver query. Certificates use
it to see that a certificate covers every check this railguard runs, so that checking a
certificate before a run costs a graph walk rather than a verification.

- The structural, fail-closed and static permission checks are run for real (they are pure
  graph walks over the spec): their subjects are the offenders when there are any, so the
  list depends on their outcomes, and those are known without a solver.
- The data checks ask one question per subject whatever the answer: each state the graph
  reaches (but the initial one), each transition with a source the graph reaches, each pair
  of transitions on the same event from a common reachable source, each assignment, each
  invariant. This mirrors the goals of :mod:`railguard.verifier.properties`; a property test
  holds the two together on the examples and on generated specs.

Two kinds of result are not listed. ``RG901 unused-waiver`` is a warning about a waiver, not
a check, and which waivers are unused depends on the data checks' outcomes. ``RG400
data-checks`` replaces the data checks when a spec has no symbolic encoding; it is always
``unknown``, so a certificate that records it has already failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from railguard.spec import Spec, Transition

from . import results as R
from .structure import check_structure, reachable_states

__all__ = ["PlannedCheck", "checklist", "required_keys"]


@dataclass(frozen=True, slots=True)
class PlannedCheck:
    """One check a spec gets: its rule, its subject and the other names a waiver may use for
    the subject (a transition's event and index)."""

    rule: R.Rule
    subject: str
    aliases: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """``(rule id, subject)``, as a certificate records it."""
        return (self.rule.id, self.subject)


def checklist(spec: Spec, *, symbolic: bool = True) -> tuple[PlannedCheck, ...]:
    """Every check :func:`~railguard.verifier.verify` reports on ``spec`` (``symbolic``: with the
    data checks), in report order, without ``RG901`` waiver warnings."""
    planned = [PlannedCheck(r.rule, r.subject, r.aliases) for r in check_structure(spec)]
    if symbolic:
        planned.extend(_data_checks(spec))
    return tuple(planned)


def required_keys(spec: Spec) -> frozenset[tuple[str, str]]:
    """The ``(rule id, subject)`` of every check a certificate of ``spec`` must record."""
    return frozenset(check.key for check in checklist(spec))


def _data_checks(spec: Spec) -> list[PlannedCheck]:
    reached = reachable_states(spec)
    out = [
        PlannedCheck(R.DATA_UNREACHABLE_STATE, state.name)
        for state in spec.states
        if state.name in reached and not state.initial
    ]
    out.extend(
        PlannedCheck(R.DEAD_TRANSITION, t.label, (t.event, str(t.index)))
        for t in spec.transitions
        if any(source in reached for source in t.sources)
    )
    # Pairs on one event from one reachable source, in the order of the scan over (first,
    # second, source) that the data checks use; grouped first, so that a large spec costs the
    # pairs that exist rather than every pair of transitions.
    by_source: dict[tuple[str, str], list[Transition]] = {}
    for t in spec.transitions:
        for source in t.sources:
            if source in reached:
                by_source.setdefault((t.event, source), []).append(t)
    pairs = sorted(
        (first.index, second.index, first.sources.index(source), source)
        for (_, source), same in by_source.items()
        for position, first in enumerate(same)
        for second in same[position + 1 :]
    )
    for first_index, second_index, _, source in pairs:
        first, second = spec.transitions[first_index - 1], spec.transitions[second_index - 1]
        out.append(
            PlannedCheck(
                R.NONDETERMINISM,
                f"{first.label} and {second.label} from `{source}`",
                (second.event, str(second.index)),
            )
        )
    out.extend(
        PlannedCheck(R.DOMAIN_ESCAPE, f"{t.label}: `{name}`", (t.event, str(t.index)))
        for t in spec.transitions
        for name, _ in t.assign
    )
    out.extend(PlannedCheck(R.INVARIANT, inv.name) for inv in spec.invariants)
    return out
