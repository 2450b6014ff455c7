"""Running the checks on a spec and applying its waivers."""

from __future__ import annotations

from dataclasses import replace

from railguard.spec import Spec

from . import results as R
from .budget import Budget
from .properties import check_symbolic
from .results import Report, Result
from .structure import check_structure

__all__ = ["apply_waivers", "verify"]


def verify(spec: Spec, budget: Budget | None = None, *, symbolic: bool = True) -> Report:
    """Check ``spec``: structure, fail-closed and static permissions first (networkx), then the
    data checks and properties (Z3) unless ``symbolic`` is false; waivers applied."""
    results = check_structure(spec)
    if symbolic:
        results.extend(check_symbolic(spec, budget))
    return Report(spec, tuple(apply_waivers(spec, results)))


def apply_waivers(spec: Spec, results: list[Result]) -> list[Result]:
    """Mark violations matched by a waiver (same rule id or name, same subject or alias) as
    waived with the waiver's reason; report waivers that match nothing as warnings."""
    used: set[int] = set()
    out: list[Result] = []
    for result in results:
        marked = result
        if result.outcome != "proved":
            for number, waiver in enumerate(spec.waivers):
                if waiver.check not in (result.rule.id, result.rule.name):
                    continue
                if waiver.target in (result.subject, *result.aliases):
                    used.add(number)
                    marked = replace(result, waived=waiver.reason)
                    break
        out.append(marked)
    for number, waiver in enumerate(spec.waivers):
        if number not in used:
            out.append(
                Result(
                    R.UNUSED_WAIVER,
                    f"waiver {number + 1}",
                    "violated",
                    f"waiver {number + 1} (`{waiver.check}` for `{waiver.target}`) matches no finding; remove it or fix its check or target",
                    spec.location("waivers", number),
                    severity="warning",
                )
            )
    return out
