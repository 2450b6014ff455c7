"""SARIF 2.1.0 output, for code-scanning dashboards (GitHub, Azure DevOps, IDE viewers).

One run; ``tool.driver.rules`` lists every rule of :data:`~.results.RULES` with its stable id.
Only findings become SARIF results — proved checks do not. A violation and an ``unknown``
are both ``level: error`` (``unknown`` fails the gate; its message says so), warnings are
``warning``, and a waived finding stays a result with an ``inSource`` suppression carrying the
waiver's reason. A counterexample becomes a ``codeFlow``: one thread-flow location per step,
on the line of the transition it fired, with the variables after the step as its state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from railguard.spec import Location, Spec

from .report import FileOutcome, exit_code, plain, step_line
from .results import RULES, Result, Rule

__all__ = ["INFORMATION_URI", "SARIF_SCHEMA", "SARIF_VERSION", "rule_level", "to_sarif"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://railguard.dev"
SRCROOT = "%SRCROOT%"

#: Rules whose findings are warnings (they never fail the gate); every other rule is an error.
WARNING_RULES = frozenset({"RG302", "RG901"})

#: What each rule means and how to fix a finding: the rule's SARIF ``fullDescription``.
_DETAILS: dict[str, str] = {
    "RG101": "A state that no run can reach is dead code in the workflow; it usually means a missing transition or a typo in a `to:`. Add a transition into it or remove it.",
    "RG102": "A trap state can only be left by an error exit: an instance that enters it can never finish normally. Add an ordinary transition towards a terminal.",
    "RG103": "A workflow needs a success terminal that some run reaches; otherwise nothing it does can ever complete.",
    "RG104": "Terminal states end an instance; a transition out of one would reopen a finished instance.",
    "RG201": "Every non-terminal state needs an error exit to a failure terminal (`on_error`, globally or per state) so that a failed effect, an expired timeout or an operator abort always has somewhere safe to go.",
    "RG202": "When a failure terminal can follow an effect, the effect must declare a `compensate` handler (or be marked `irreversible`) so that rollback is possible.",
    "RG203": "An irreversible effect is the point of no return: it may only enter a success terminal, so that nothing after it can fail. Waive it with a written reason when that is intended.",
    "RG301": "A transition whose permission no role grants can never be fired by anyone (deny by default). Grant the permission to a role, or use `public`.",
    "RG302": "A permission that a role grants but no transition uses is harmless but usually a typo. This is a warning and never fails the gate.",
    "RG400": "The data checks need a symbolic encoding of the spec (Z3); when it cannot be built they cannot run, and the result is unknown.",
    "RG401": "Taking guards and data into account, every state must be reachable; a state reachable only in the graph is dead once the guards are considered.",
    "RG402": "Every transition must be able to fire in some reachable configuration; a dead guard is almost always a mistake.",
    "RG403": "Two transitions on the same event from the same state must never be enabled together, so that the engine's choice is determined by the spec.",
    "RG404": "Every assignment must keep its variable inside the declared domain (`min`, `max`, `max_length`, `max_size`) in every reachable configuration.",
    "RG501": "Each declared invariant (`always`, `never`, `precedes`) must hold in every reachable configuration; a violation comes with a counterexample run.",
    "RG901": "A waiver that matches no finding is stale: remove it or fix its check or target. This is a warning and never fails the gate.",
}


def rule_level(rule: Rule) -> str:
    """The rule's default SARIF level: ``warning`` for warning rules, else ``error``."""
    return "warning" if rule.id in WARNING_RULES else "error"


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _descriptor(rule: Rule) -> dict[str, Any]:
    summary = _sentence(rule.summary)
    details = _DETAILS.get(rule.id, "")
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": f"{summary} {details}".strip()},
        "defaultConfiguration": {"level": rule_level(rule)},
        "help": {"text": f"{summary} {details}".strip()},
        "properties": {"family": rule.family, "tags": ["railguard", rule.family]},
    }


def _artifact(file: str, root: Path) -> dict[str, str]:
    """A relative ``uri`` under ``%SRCROOT%`` when ``file`` lies under ``root``, else an
    absolute ``file:`` URI."""
    path = Path(file)
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        relative = absolute.resolve().relative_to(root.resolve())
    except ValueError:
        return {"uri": absolute.resolve().as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": SRCROOT}


def _physical(artifact: dict[str, str], loc: Location) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": dict(artifact)}
    if loc.line:
        region: dict[str, int] = {"startLine": loc.line}
        if loc.column:
            region["startColumn"] = loc.column
        physical["region"] = region
    return physical


def _state(values: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return {name: {"text": _text(value)} for name, value in values.items()}


def _text(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _step_location(spec: Spec, step: Mapping[str, Any], index: int | None) -> Location:
    if index is not None:
        return spec.location("transitions", index - 1)
    if step["event"] == "error":
        for path in (("states", step["to"]), ("on_error",)):
            found = spec.location(*path)
            if found.line:
                return found
    return spec.location("states", step["to"])


def _code_flow(result: Result, spec: Spec, artifact: dict[str, str]) -> dict[str, Any]:
    assert result.counterexample is not None
    cex = result.counterexample
    plan = cex.to_plan()
    initial = {k: plain(v) for k, v in spec.initial_values().items()}
    initial.update(plan["context"])
    start = spec.initial_state.name
    locations: list[dict[str, Any]] = [
        {
            "location": {
                "physicalLocation": _physical(artifact, spec.location("states", start)),
                "message": {"text": f"0. start in `{start}`"},
            },
            "state": _state(initial),
            "executionOrder": 0,
            "importance": "unimportant",
        }
    ]
    steps = [*cex.steps, *([cex.final] if cex.final is not None else [])]
    before: dict[str, Any] = initial
    for number, (step, data) in enumerate(zip(steps, plan["steps"], strict=True), 1):
        text = step_line(number, data, before)
        entry: dict[str, Any] = {
            "location": {
                "physicalLocation": _physical(artifact, _step_location(spec, data, step.transition)),
                "message": {"text": text},
            },
            "executionOrder": number,
            "importance": "essential" if data.get("violation") else "important",
        }
        if data.get("values"):
            entry["state"] = _state(data["values"])
            before = data["values"]
        locations.append(entry)
    return {
        "message": {"text": f"a run of {len(steps)} step{'s' if len(steps) != 1 else ''} that violates {result.rule.name} for {result.subject}"},
        "threadFlows": [{"initialState": _state(initial), "locations": locations}],
    }


def _message(result: Result) -> str:
    text = result.message
    if result.outcome == "unknown":
        text = f"unknown: {result.rule.name} could not be decided for {result.subject}: {text}; an unknown result is not a proof and fails the gate"
    if result.bound is not None:
        text += f" (bounded: runs of up to {result.bound} steps)"
    if result.waived is not None:
        text += f" (waived: {result.waived})"
    return text


def _fingerprint(spec: Spec, result: Result) -> str:
    key = "\0".join((spec.name, result.rule.id, result.subject))
    return hashlib.sha256(key.encode()).hexdigest()


def _result(result: Result, spec: Spec, artifact: dict[str, str], index: int) -> dict[str, Any]:
    level = "warning" if result.severity == "warning" else "error"
    sarif: dict[str, Any] = {
        "ruleId": result.rule.id,
        "ruleIndex": index,
        "level": level,
        "message": {"text": _message(result)},
        "locations": [{"physicalLocation": _physical(artifact, result.location)}],
        "partialFingerprints": {"railguardFinding/v1": _fingerprint(spec, result)},
        "properties": {
            "outcome": result.outcome,
            "bound": result.bound,
            "subject": result.subject,
            "spec": spec.name,
            "contentHash": spec.content_hash,
        },
    }
    if result.counterexample is not None:
        sarif["codeFlows"] = [_code_flow(result, spec, artifact)]
        sarif["properties"]["counterexample"] = result.counterexample.to_plan()
    if result.waived is not None:
        sarif["suppressions"] = [{"kind": "inSource", "justification": result.waived}]
    return sarif


def to_sarif(
    outcomes: Sequence[FileOutcome], version: str, *, root: str | Path | None = None
) -> dict[str, Any]:
    """The SARIF 2.1.0 log of checking ``outcomes``; spec paths are made relative to ``root``
    (default: the working directory) under ``%SRCROOT%``.

    Files that could not be loaded become error notifications of the invocation (with their
    locations), and the invocation records the exit code.
    """
    base = Path.cwd() if root is None else Path(root)
    rules = sorted(RULES.values(), key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(rules)}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    artifacts: list[dict[str, Any]] = []
    for outcome in outcomes:
        artifact = _artifact(outcome.file, base)
        listed = {"location": dict(artifact), "roles": ["analysisTarget"]}
        if listed not in artifacts:
            artifacts.append(listed)
        if outcome.report is None:
            notifications.extend(
                {
                    "level": "error",
                    "message": {"text": f"{outcome.file}: unusable spec: {p.message}"},
                    "locations": [{"physicalLocation": _physical(artifact, p.location)}],
                }
                for p in outcome.problems
            )
            continue
        spec = outcome.report.spec
        for result in outcome.report.results:
            if result.is_finding:
                results.append(_result(result, spec, artifact, index[result.rule.id]))
    code = exit_code(outcomes)
    invocation: dict[str, Any] = {"executionSuccessful": code != 2, "exitCode": code}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "railguard",
                        "version": version,
                        "semanticVersion": version,
                        "informationUri": INFORMATION_URI,
                        "rules": [_descriptor(r) for r in rules],
                    }
                },
                "invocations": [invocation],
                "artifacts": artifacts,
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
