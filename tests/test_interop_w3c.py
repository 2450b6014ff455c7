"""The W3C SCXML tests (python-statemachine's copy): imported, then verified — `pass` reachable,
`fail` unreachable — for every test about control flow and every test imported exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from railguard.spec.interop import FindingKind, ImportResult, InteropError
from railguard.spec.interop.scxml import import_scxml
from railguard.verifier import verify

from .test_interop_scxml import corpus

_COND = re.compile(r'cond="([^"]*)"')


def is_control_flow(text: str) -> bool:
    """No data model beyond `In()` (raise, log and done events are control flow)."""
    if re.search(r"<(data|assign|script|send|foreach|invoke|cancel|donedata)\b|_event", text):
        return False
    return all(
        not re.sub(r"""In\(\s*['"][^'"]*['"]\s*\)|&amp;&amp;|\|\||!|\s|true|false|\(|\)""", "", cond)
        for cond in _COND.findall(text)
    )


def w3c_tests() -> list[Path]:
    """The test documents (sub-documents that tests invoke have no `pass` state and are left out)."""
    return sorted(p for p in corpus("scxml-w3c").rglob("test*.scxml") if "sub" not in p.stem)


def verdict(result: ImportResult) -> tuple[bool, bool]:
    """(`pass` proved reachable, `fail` proved unreachable) by the verifier."""
    by_source = {source: name for name, source in result.states.items() if len(source) == 1}
    passed, failed = by_source.get(("pass",)), by_source.get(("fail",))
    outcomes = {r.subject: r.outcome for r in verify(result.spec).results if r.rule.id == "RG401"}
    reachable = passed is not None and outcomes.get(passed) == "proved"
    # A configuration the flattening never reached is not a state at all: unreachable by construction.
    unreachable = failed is None or outcomes.get(failed) == "violated"
    return reachable, unreachable


def test_every_control_flow_w3c_test_proves_pass_reachable_and_fail_unreachable() -> None:
    control = [p for p in w3c_tests() if is_control_flow(p.read_text(encoding="utf-8"))]
    assert len(control) >= 10
    verdicts = {p.name: verdict(import_scxml(str(p))) for p in control}
    assert {name: v for name, v in verdicts.items() if v != (True, True)} == {}


def test_a_w3c_test_about_a_failing_path_is_caught_by_the_verifier(tmp_path: Path) -> None:
    """The same check is able to fail: send the test's success path to `fail`."""
    source = corpus("scxml-w3c") / "mandatory" / "test144.scxml"
    broken = tmp_path / "test144.scxml"
    broken.write_text(source.read_text(encoding="utf-8").replace('event="bar" target="pass"', 'event="bar" target="fail"'), encoding="utf-8")
    assert verdict(import_scxml(str(broken))) == (False, False)


@pytest.mark.slow
def test_every_w3c_test_imported_without_approximation_is_proved_and_the_rest_are_counted() -> None:
    counts = {"exact-proved": 0, "approximated-proved": 0, "approximated-open": 0, "refused": 0}
    exact_failures: dict[str, tuple[bool, bool]] = {}
    for path in w3c_tests():
        try:
            result = import_scxml(str(path))
        except InteropError:
            counts["refused"] += 1
            continue
        approximated = bool(result.of_kind(FindingKind.OVER_APPROXIMATED) or result.of_kind(FindingKind.REFUSED))
        outcome = verdict(result)
        if not approximated:
            if outcome == (True, True):
                counts["exact-proved"] += 1
            else:
                exact_failures[path.name] = outcome
        elif outcome == (True, True):
            counts["approximated-proved"] += 1
        else:
            counts["approximated-open"] += 1
    assert exact_failures == {}
    assert sum(counts.values()) == len(w3c_tests())
    assert counts["exact-proved"] >= 25
    assert counts["exact-proved"] + counts["approximated-proved"] >= 60
