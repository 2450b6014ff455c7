"""Rendering reports: readable text (with colour on terminals) and versioned JSON.

The JSON report is plain data with a published JSON Schema (:func:`report_json_schema`);
SARIF and JUnit XML live in :mod:`.sarif` and :mod:`.junit`. Every renderer reads the same
:class:`FileOutcome` records, and :func:`exit_code` is the one place that turns them into
the gate's answer: an ``unknown`` result fails the gate exactly like a violation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from railguard.spec import Location, Problem, Spec

from .results import Report, Result

__all__ = [
    "JSON_REPORT_VERSION",
    "REPORT_SCHEMA_ID",
    "FileOutcome",
    "exit_code",
    "plain",
    "plan_lines",
    "report_json_schema",
    "step_line",
    "to_json",
    "to_text",
]

#: Version of the JSON report's shape; bumped whenever a field changes meaning or goes away.
JSON_REPORT_VERSION = 2
REPORT_SCHEMA_ID = f"https://railguard.dev/schema/report-{JSON_REPORT_VERSION}.json"


@dataclass(frozen=True)
class FileOutcome:
    """What checking one file produced: a report, or the problems that made it unusable."""

    file: str
    report: Report | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def status(self) -> str:
        """``"error"`` (unusable input), ``"findings"`` (a check failed or is unknown) or
        ``"clean"``."""
        if self.report is None:
            return "error"
        return "findings" if self.report.failed else "clean"


def exit_code(outcomes: Sequence[FileOutcome]) -> int:
    """2 if any input was unusable, else 1 if any check failed or is unknown, else 0.

    ``unknown`` counts as failed (:attr:`Result.failed`): a check the solver could not decide
    never lets the gate pass.
    """
    statuses = {o.status for o in outcomes}
    if "error" in statuses:
        return 2
    return 1 if "findings" in statuses else 0


# --------------------------------------------------------------------------- plain values


def plain(value: object) -> Any:
    """A spec value as JSON data: decimals as strings (exact), sets as sorted lists."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted((plain(v) for v in value), key=repr)
    return value


def _show(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {_show(v)}" for k, v in values.items())


def step_line(number: int, step: Mapping[str, Any], before: Mapping[str, Any]) -> str:
    """One step of a plan (``Counterexample.to_plan()`` data) as a line a person reads:
    ``1. request by user1 [support] {amount: 5001} → requested (amount = 5001)``; the values
    in parentheses are those the step changed, compared with ``before``."""
    event = step["event"]
    if event == "error" and "actor" not in step:
        text = f"{number}. error exit"
    else:
        text = f"{number}. {event}"
        actor = step.get("actor")
        if actor is not None:
            text += f" by {actor}"
            roles = step.get("roles") or []
            if roles:
                text += " [" + ", ".join(roles) + "]"
        params = step.get("params") or {}
        if params:
            text += " {" + _pairs(params) + "}"
    text += f" → {step['to']}"
    values = step.get("values") or {}
    changed = {k: v for k, v in values.items() if k not in before or before[k] != v}
    if changed:
        text += " (" + ", ".join(f"{k} = {_show(v)}" for k, v in changed.items()) + ")"
    if step.get("violation"):
        text += " ← the violating step"
    return text


def plan_lines(plan: Mapping[str, Any], spec: Spec | None = None) -> list[str]:
    """A counterexample plan as numbered lines (the context first, when it has any)."""
    lines: list[str] = []
    context = plan.get("context") or {}
    if context:
        lines.append("context: " + _pairs(context))
    before: dict[str, Any] = {}
    if spec is not None:
        before = {k: plain(v) for k, v in spec.initial_values().items()}
    before.update(context)
    for number, step in enumerate(plan.get("steps") or [], 1):
        lines.append(step_line(number, step, before))
        if not step.get("violation"):
            before = dict(step.get("values") or before)
    return lines


# --------------------------------------------------------------------------- JSON


def _location(loc: Location) -> dict[str, Any]:
    return {"file": loc.file, "line": loc.line or None, "column": loc.column or None}


#: Witnesses of this many steps or more are left out of the JSON report, and so are all
#: witnesses once a file's report holds ``MAX_WITNESS_TOTAL`` witness steps: one run shows
#: thousands of states of a large workflow, and a plan per state would grow with the square
#: of its length. The result's message still gives the run's length.
MAX_WITNESS_STEPS = 100
MAX_WITNESS_TOTAL = 20_000


def _results(results: Sequence[Result]) -> list[dict[str, Any]]:
    out = []
    total = 0
    for result in results:
        shown = result.witness is not None and len(result.witness.steps) < MAX_WITNESS_STEPS and total + len(result.witness.steps) <= MAX_WITNESS_TOTAL
        if shown and result.witness is not None:
            total += len(result.witness.steps)
        out.append(_result(result, witness=shown))
    return out


def _result(result: Result, *, witness: bool = True) -> dict[str, Any]:
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
        "counterexample": result.counterexample.to_plan() if result.counterexample else None,
        "witness": result.witness.to_plan() if result.witness is not None and witness else None,
        "invariant": result.invariant,
    }


def _summary(outcomes: Sequence[FileOutcome]) -> dict[str, int]:
    counts = {"files": len(outcomes), "unusable": 0, "proved": 0, "violated": 0, "unknown": 0}
    counts.update({"waived": 0, "warnings": 0, "bounded": 0})
    for outcome in outcomes:
        if outcome.report is None:
            counts["unusable"] += 1
            continue
        for r in outcome.report.results:
            counts[r.outcome] += 1
            if r.outcome != "proved" and r.waived is not None:
                counts["waived"] += 1
            elif r.outcome != "proved" and r.severity == "warning":
                counts["warnings"] += 1
            if r.bound is not None:
                counts["bounded"] += 1
    return counts


def to_json(outcomes: Sequence[FileOutcome], version: str) -> dict[str, Any]:
    """The JSON report (``railguard_report`` version :data:`JSON_REPORT_VERSION`), valid
    against :func:`report_json_schema`."""
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
            entry["results"] = _results(outcome.report.results)
        files.append(entry)
    return {
        "$schema": REPORT_SCHEMA_ID,
        "railguard_report": JSON_REPORT_VERSION,
        "tool": {"name": "railguard", "version": version},
        "exit_code": exit_code(outcomes),
        "summary": _summary(outcomes),
        "files": files,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the JSON report, version :data:`JSON_REPORT_VERSION`.

    A fresh dict on every call. Counterexample plans are described loosely (their shape is
    owned by :meth:`Counterexample.to_plan`); everything else is closed.
    """
    count = {"type": "integer", "minimum": 0}
    location = {
        "description": "Where in the spec source: 1-based line and column, null when unknown.",
        "type": "object",
        "required": ["file", "line", "column"],
        "additionalProperties": False,
        "properties": {
            "file": {"type": "string"},
            "line": _nullable({"type": "integer", "minimum": 1}),
            "column": _nullable({"type": "integer", "minimum": 1}),
        },
    }
    step = {
        "description": "One step: the event, who fired it with which roles and params, the "
        "state it reached and the variables after it; `violation` marks the violating step.",
        "type": "object",
        "required": ["event", "to", "values"],
        "properties": {
            "event": {"type": "string"},
            "actor": {"type": ["string", "null"]},
            "roles": {"type": "array", "items": {"type": "string"}},
            "params": {"type": "object"},
            "to": {"type": "string"},
            "values": {"type": "object"},
            "violation": {"const": True},
        },
    }
    plan = {
        "description": "A concrete run from the initial state, re-checked against the spec: "
        "a replayable test plan (`railguard render --trace` draws it).",
        "type": "object",
        "required": ["workflow", "context", "steps"],
        "properties": {
            "workflow": {"type": "string"},
            "context": {"type": "object"},
            "principals": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}},
        },
    }
    result = {
        "description": "The outcome of one rule on one subject.",
        "type": "object",
        "additionalProperties": False,
        "required": [
            "rule",
            "name",
            "family",
            "subject",
            "outcome",
            "severity",
            "message",
            "location",
            "bound",
            "waived",
            "counterexample",
            "witness",
            "invariant",
        ],
        "properties": {
            "rule": {"description": "Stable rule id.", "type": "string", "pattern": "^RG[0-9]{3}$"},
            "name": {"description": "The rule's short name.", "type": "string"},
            "family": {"type": "string"},
            "subject": {"description": "The state, transition, property or spec checked.", "type": "string"},
            "outcome": {
                "description": "`unknown` means the solver gave up: it fails the gate.",
                "enum": ["proved", "violated", "unknown"],
            },
            "severity": {
                "description": "`warning` findings never fail the gate.",
                "enum": ["error", "warning"],
            },
            "message": {"type": "string"},
            "location": {"$ref": "#/$defs/location"},
            "bound": _nullable(count)
            | {"description": "For bounded results: the run length up to which it holds."},
            "waived": {
                "description": "The waiver's written reason when the finding is waived.",
                "type": ["string", "null"],
            },
            "counterexample": _nullable({"$ref": "#/$defs/plan"})
            | {"description": "A run that violates the property."},
            "witness": _nullable({"$ref": "#/$defs/plan"})
            | {"description": f"A run that shows a reachability property (null for runs of {MAX_WITNESS_STEPS} steps or more, and once a file's witnesses hold {MAX_WITNESS_TOTAL:,} steps)."},
            "invariant": {
                "description": "An inductive invariant the solver found, in the spec's expression language.",
                "type": ["string", "null"],
            },
        },
    }
    problem = {
        "type": "object",
        "additionalProperties": False,
        "required": ["message", "location"],
        "properties": {"message": {"type": "string"}, "location": {"$ref": "#/$defs/location"}},
    }
    checked = {
        "description": "A spec that loaded and was checked.",
        "type": "object",
        "additionalProperties": False,
        "required": ["file", "status", "spec", "content_hash", "results"],
        "properties": {
            "file": {"type": "string"},
            "status": {"enum": ["clean", "findings"]},
            "spec": {"type": "string"},
            "content_hash": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            "results": {"type": "array", "items": {"$ref": "#/$defs/result"}},
        },
    }
    unusable = {
        "description": "A file that could not be loaded: every problem found, located.",
        "type": "object",
        "additionalProperties": False,
        "required": ["file", "status", "problems"],
        "properties": {
            "file": {"type": "string"},
            "status": {"const": "error"},
            "problems": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/problem"}},
        },
    }
    summary_keys = ["files", "unusable", "proved", "violated", "unknown", "waived", "warnings", "bounded"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": REPORT_SCHEMA_ID,
        "title": "railguard check report",
        "description": "The report of `railguard check --format json`, version "
        f"{JSON_REPORT_VERSION}.",
        "type": "object",
        "additionalProperties": False,
        "required": ["railguard_report", "tool", "exit_code", "summary", "files"],
        "properties": {
            "$schema": {"const": REPORT_SCHEMA_ID},
            "railguard_report": {"const": JSON_REPORT_VERSION},
            "tool": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "version"],
                "properties": {"name": {"const": "railguard"}, "version": {"type": "string"}},
            },
            "exit_code": {
                "description": "0 clean, 1 a check failed or is unknown, 2 unusable input.",
                "enum": [0, 1, 2],
            },
            "summary": {
                "description": "Counts over every file: results by outcome, and of the "
                "findings those waived or only warnings.",
                "type": "object",
                "additionalProperties": False,
                "required": summary_keys,
                "properties": dict.fromkeys(summary_keys, count),
            },
            "files": {
                "type": "array",
                "items": {"oneOf": [{"$ref": "#/$defs/checked"}, {"$ref": "#/$defs/unusable"}]},
            },
        },
        "$defs": {
            "location": location,
            "step": step,
            "plan": plan,
            "result": result,
            "problem": problem,
            "checked": checked,
            "unusable": unusable,
        },
    }


# --------------------------------------------------------------------------- text

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "dim": "2", "bold": "1"}


def _paint(text: str, colour: str, enabled: bool) -> str:
    return f"\033[{_COLOURS[colour]}m{text}\033[0m" if enabled else text


def _counts(report: Report) -> str:
    results = report.results
    proved = [r for r in results if r.outcome == "proved"]
    bounded = sum(1 for r in proved if r.bound is not None)
    parts = [f"{len(proved)} proved" + (f" ({bounded} bounded)" if bounded else "")]
    kinds = {
        "violated": sum(1 for r in results if r.failed and r.outcome == "violated"),
        "unknown": sum(1 for r in results if r.failed and r.outcome == "unknown"),
        "waived": sum(1 for r in results if r.outcome != "proved" and r.waived is not None),
        "warning": sum(
            1 for r in results if r.outcome != "proved" and r.waived is None and r.severity == "warning"
        ),
    }
    for kind, n in kinds.items():
        if n:
            parts.append(f"{n} {kind}" + ("s" if kind == "warning" and n != 1 else ""))
    text = ", ".join(parts)
    if not any(r.rule.family in ("data", "properties") for r in results):
        text += " (structure only: no data checks)"
    return text


def _bound(result: Result) -> str:
    if result.bound is None:
        return ""
    if result.outcome == "proved":
        return f" (bounded: proved for runs of up to {result.bound} steps only)"
    return f" (bounded: runs of up to {result.bound} steps)"


def _finding_lines(result: Result, spec: Spec, colour: bool) -> list[str]:
    suffix = _bound(result)
    if result.outcome == "proved":
        tag = _paint("bounded", "dim", colour)
    elif result.waived is not None:
        tag = _paint("waived", "dim", colour)
        suffix += f" (waived: {result.waived})"
    elif result.severity == "warning":
        tag = _paint("warning", "yellow", colour)
    elif result.outcome == "unknown":
        tag = _paint("unknown", "yellow", colour)
        suffix += " (not proved: unknown fails the gate; raise --budget, --rlimit or --timeout)"
    else:
        tag = _paint("violated", "red", colour)
    # An unknown's message is generic ("ran out of budget"): name what was not decided.
    about = f" ({result.subject})" if result.outcome == "unknown" and result.subject not in result.message else ""
    lines = [f"  {result.location}: {tag} {result.rule.id} {result.rule.name}{about}: {result.message}{suffix}"]
    if result.counterexample is not None and result.outcome != "proved":
        lines.extend(f"      {line}" for line in plan_lines(result.counterexample.to_plan(), spec))
    return lines


def to_text(outcomes: Sequence[FileOutcome], *, colour: bool = False) -> str:
    """A report a person reads at a glance: one line per file, then one line per finding
    (counterexamples as numbered steps under it), and bounded proofs with their bound."""
    lines: list[str] = []
    for outcome in outcomes:
        if outcome.report is None:
            lines.append(_paint("✘ ", "red", colour) + f"{outcome.file}: unusable spec")
            lines.extend(f"  {p.location}: error: {p.message}" for p in outcome.problems)
            continue
        report = outcome.report
        mark = _paint("✘ ", "red", colour) if report.failed else _paint("✔ ", "green", colour)
        short_hash = report.spec.content_hash[:19]
        lines.append(
            f"{mark}{outcome.file}  {_paint(report.spec.name, 'bold', colour)}  {_paint(short_hash, 'dim', colour)}  {_counts(report)}"
        )
        for result in report.results:
            if result.is_finding or result.bound is not None:
                lines.extend(_finding_lines(result, report.spec, colour))
    return "\n".join(lines) + "\n"
