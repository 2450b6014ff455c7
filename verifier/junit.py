"""JUnit XML output, for CI systems that show test reports (GitLab, Jenkins, Azure, …).

One ``<testsuite>`` per spec file and one ``<testcase>`` per result: ``classname`` is the spec
name and the rule family (``refund.data``), ``name`` the rule and its subject. A violation or
an ``unknown`` is a ``<failure>`` (the counterexample as numbered steps in its text), a waived
finding is ``<skipped>`` with the waiver's reason, and a file that could not be loaded is a
suite with one ``<error>``. Warnings and bounded proofs pass, with a note in ``system-out``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from railguard.spec import Spec

from .report import FileOutcome, plan_lines
from .results import Result

__all__ = ["to_junit"]


def _case(suite: ET.Element, result: Result, spec: Spec) -> str:
    """Add the test case of ``result``; returns ``"failure"``, ``"skipped"`` or ``"passed"``."""
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"{spec.name}.{result.rule.family}",
        name=f"{result.rule.id} {result.rule.name}: {result.subject}",
        file=result.location.file,
    )
    if result.location.line:
        case.set("line", str(result.location.line))
    bound = "" if result.bound is None else f" (bounded: runs of up to {result.bound} steps)"
    if result.outcome != "proved" and result.waived is not None:
        ET.SubElement(case, "skipped", message=f"waived: {result.waived}")
        return "skipped"
    if result.failed:
        lines = [f"{result.location}: {result.message}{bound}"]
        if result.outcome == "unknown":
            lines.append("unknown: the solver could not decide this check; unknown fails the gate")
        if result.counterexample is not None:
            lines.append("counterexample:")
            lines.extend(f"  {line}" for line in plan_lines(result.counterexample.to_plan(), spec))
        failure = ET.SubElement(
            case, "failure", message=f"{result.outcome}: {result.message}", type=result.outcome
        )
        failure.text = "\n".join(lines)
        return "failure"
    if result.outcome != "proved":
        ET.SubElement(case, "system-out").text = f"warning: {result.message}"
    elif bound:
        ET.SubElement(case, "system-out").text = f"proved{bound}: {result.message}"
    return "passed"


def to_junit(outcomes: Sequence[FileOutcome], version: str) -> str:
    """The JUnit XML report of checking ``outcomes`` (UTF-8, with an XML declaration)."""
    root = ET.Element("testsuites", name="railguard check")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for outcome in outcomes:
        suite = ET.SubElement(root, "testsuite", name=outcome.file)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="railguard.version", value=version)
        if outcome.report is None:
            case = ET.SubElement(suite, "testcase", classname="railguard.load", name="load", file=outcome.file)
            error = ET.SubElement(case, "error", message="unusable spec", type="unusable")
            error.text = "\n".join(f"{p.location}: error: {p.message}" for p in outcome.problems)
            counts["tests"], counts["errors"] = 1, 1
        else:
            spec = outcome.report.spec
            ET.SubElement(properties, "property", name="spec", value=spec.name)
            ET.SubElement(properties, "property", name="content_hash", value=spec.content_hash)
            for result in outcome.report.results:
                verdict = _case(suite, result, spec)
                counts["tests"] += 1
                if verdict == "failure":
                    counts["failures"] += 1
                elif verdict == "skipped":
                    counts["skipped"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
