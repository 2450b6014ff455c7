"""Rendering reports: readable text (with colour on terminals) and versioned JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from railguard.spec import Location, Problem

from .results import Report, Result

__all__ = ["JSON_REPORT_VERSION", "FileOutcome", "exit_code", "to_json", "to_text"]

JSON_REPORT_VERSION = 1


@dataclass(frozen=True)
class FileOutcome:
    """What checking one file produced: a report, or the problems that made it unusable."""

    file: str
    report: Report | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def status(self) -> str:
        """``"error"`` (unusable input), ``"findings"`` (a check failed) or ``"clean"``."""
        if self.report is None:
            return "error"
        return "findings" if self.report.failed else "clean"


def exit_code(outcomes: Sequence[FileOutcome]) -> int:
    """2 if any input was unusable, else 1 if any check failed, else 0."""
    statuses = {o.status for o in outcomes}
    if "error" in statuses:
        return 2
    return 1 if "findings" in statuses else 0


def _location(loc: Location) -> dict[str, Any]:
    return {"file": loc.file, "line": loc.line or None, "column": loc.column or None}


def _result(result: Result) -> dict[str, Any]:
    return {
        "rule": result.rule.id,
        "name": result.rule.name,
        "family": result.rule.family,
        "subject": result.subject,
        "outcome": result.outcome,
        "severity": result.severity,
        "message": result.message,
        "location": _location(result.location),
        "bound": result.bound,
        "waived": result.waived,
    }


def to_json(outcomes: Sequence[FileOutcome], version: str) -> dict[str, Any]:
    """The JSON report (``railguard_report`` version :data:`JSON_REPORT_VERSION`)."""
    files = []
    for outcome in outcomes:
        entry: dict[str, Any] = {"file": outcome.file, "status": outcome.status}
        if outcome.report is None:
            entry["problems"] = [
                {"message": p.message, "location": _location(p.location)} for p in outcome.problems
            ]
        else:
            spec = outcome.report.spec
            entry["spec"] = spec.name
            entry["content_hash"] = spec.content_hash
            entry["results"] = [_result(r) for r in outcome.report.results]
        files.append(entry)
    return {
        "railguard_report": JSON_REPORT_VERSION,
        "tool": {"name": "railguard", "version": version},
        "exit_code": exit_code(outcomes),
        "files": files,
    }


_COLOURS = {"red": "31", "green": "32", "yellow": "33", "dim": "2", "bold": "1"}


def _paint(text: str, colour: str, enabled: bool) -> str:
    return f"\033[{_COLOURS[colour]}m{text}\033[0m" if enabled else text


def to_text(outcomes: Sequence[FileOutcome], *, colour: bool = False) -> str:
    """A report a person reads at a glance: one line per file, then one line per finding."""
    lines: list[str] = []
    for outcome in outcomes:
        if outcome.report is None:
            lines.append(_paint("✘ ", "red", colour) + f"{outcome.file}: unusable spec")
            lines.extend(f"  {p.location}: error: {p.message}" for p in outcome.problems)
            continue
        report = outcome.report
        proved = sum(1 for r in report.results if r.outcome == "proved")
        findings = report.findings
        mark = _paint("✘ ", "red", colour) if report.failed else _paint("✔ ", "green", colour)
        summary = f"{proved} checks proved"
        if findings:
            summary += f", {len(findings)} finding{'s' if len(findings) != 1 else ''}"
        short_hash = report.spec.content_hash[:19]
        lines.append(
            f"{mark}{outcome.file}  {_paint(report.spec.name, 'bold', colour)}  {_paint(short_hash, 'dim', colour)}  {summary}"
        )
        for result in findings:
            if result.waived is not None:
                tag = _paint("waived", "dim", colour)
                suffix = f" (waived: {result.waived})"
            elif result.severity == "warning":
                tag, suffix = _paint("warning", "yellow", colour), ""
            elif result.outcome == "unknown":
                tag, suffix = _paint("unknown", "yellow", colour), ""
            else:
                tag, suffix = _paint("violated", "red", colour), ""
            lines.append(
                f"  {result.location}: {tag} {result.rule.id} {result.rule.name}: {result.message}{suffix}"
            )
    return "\n".join(lines) + "\n"
