"""SCXML import: the flattening rule on small statecharts, and the scxml-scripts corpus run
through railguard's runtime (each expected configuration reached)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from railguard.runtime import Engine, SQLiteStore, StaticDirectory
from railguard.spec import Spec
from railguard.spec.interop import FindingKind, ImportResult, InteropError
from railguard.spec.interop.scxml import import_scxml, import_scxml_text
from railguard.spec.semantics import Fired, fire

from .conftest import ROOT


def corpus(name: str) -> Path:
    """The corpus folder `name` beside the checkout (CI) or in /work/shared; skip visibly if absent."""
    for base in (ROOT.parent / "shared", Path("/work/shared")):
        folder = base / "corpora" / name
        if folder.is_dir():
            return folder
    pytest.skip(f"corpus `{name}` not found beside the checkout or in /work/shared")


def doc(body: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f'<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"{extra}>{body}</scxml>'


class Runner:
    """Runs an imported statechart on the real engine and reads back its SCXML configuration."""

    def __init__(self, result: ImportResult) -> None:
        self.result = result
        self.engine = Engine(result.spec, SQLiteStore(":memory:"), StaticDirectory({"u": ["caller"]}), allow_unverified="interop test")
        self.engine.start("i", "u")
        self.state = self.engine.fire("i", "start", "u").state

    @property
    def configuration(self) -> set[str]:
        return set(self.result.states.get(self.state, ()))

    def send(self, name: str, values: bool = False) -> set[str]:
        """Fire the railguard event of SCXML event `name` (longest matching descriptor); an event
        no transition names is discarded, as SCXML discards it."""
        matching = [d for d in self.result.events if name == d or name.startswith(d + ".")]
        if matching:
            self.state = self.engine.fire("i", self.result.events[max(matching, key=len)], "u").state
        return self.configuration

    def values(self) -> dict[str, Any]:
        return dict(self.engine.get("i").values)


def test_a_parallel_state_with_compound_regions_flattens_to_its_product() -> None:
    result = import_scxml_text(doc("""
      <parallel id="p">
        <state id="x"><state id="x1"><transition event="a" target="x2"/></state><state id="x2"/></state>
        <state id="y"><state id="y1"><transition event="a" target="y2"/></state><state id="y2"/></state>
      </parallel>"""))
    run = Runner(result)
    assert run.configuration == {"x1", "y1"}
    assert run.send("a") == {"x2", "y2"}
    assert sorted(result.states.values()) == [("x1", "y1"), ("x2", "y2")]


def test_history_restores_the_remembered_configuration() -> None:
    result = import_scxml_text(doc("""
      <state id="s" initial="s1">
        <history id="h"><transition target="s1"/></history>
        <state id="s1"><transition event="next" target="s2"/></state>
        <state id="s2"/>
        <transition event="out" target="o"/>
      </state>
      <state id="o"><transition event="back" target="h"/></state>"""))
    run = Runner(result)
    assert [run.send(e) for e in ("next", "out", "back")] == [{"s2"}, {"o"}, {"s2"}]
    assert any(f.construct == "history" and f.kind is FindingKind.MAPPED for f in result.findings)


def test_eventless_transitions_raise_and_in_run_to_a_stable_configuration() -> None:
    result = import_scxml_text(doc("""
      <parallel id="p">
        <state id="l"><state id="l1"><transition event="go" target="l2"/></state>
          <state id="l2"><onentry><raise event="ping"/></onentry></state></state>
        <state id="r"><state id="r1"><transition event="ping" target="r2"/></state>
          <state id="r2"><transition cond="In('l2')" target="r3"/></state><state id="r3"/></state>
      </parallel>"""))
    run = Runner(result)
    assert run.send("go") == {"l2", "r3"}


def test_a_targetless_transition_runs_its_actions_without_leaving_the_state() -> None:
    result = import_scxml_text(doc("""
      <datamodel><data id="n" expr="0"/></datamodel>
      <state id="a"><onexit><assign location="n" expr="100"/></onexit>
        <transition event="tick"><assign location="n" expr="n + 1"/></transition>
        <transition event="tock" cond="n &gt;= 2" target="b"/></state>
      <final id="b"/>""", datamodel="ecmascript"))
    run = Runner(result)
    run.send("tock")
    assert run.configuration == {"a"}
    run.send("tick")
    run.send("tick")
    assert (run.configuration, run.values()["n"]) == ({"a"}, 2)
    assert run.send("tock") == {"b"}
    assert run.values()["n"] == 100
    assert result.spec.state_map[run.state].terminal == "success"
    assert result.spec.variable_map["n"].type.kind == "int"


def test_a_data_branch_becomes_guarded_transitions_with_composed_assignments() -> None:
    result = import_scxml_text(doc("""
      <datamodel><data id="x" expr="1"/></datamodel>
      <state id="a">
        <transition event="e" cond="x &lt; 3" target="a"><assign location="x" expr="x * 2"/></transition>
        <transition event="e" target="b"/></state>
      <state id="b"/>""", datamodel="ecmascript"))
    on_e = [t for t in result.spec.transitions if t.event == "e"]
    assert sorted((t.guard.text if t.guard else "", t.target) for t in on_e) == [("not x < 3", "b"), ("x < 3", "a")]
    run = Runner(result)
    assert [run.send("e") for _ in range(3)] == [{"a"}, {"a"}, {"b"}]


def test_scripts_and_sends_are_reported_as_over_approximated() -> None:
    result = import_scxml_text(doc("""
      <datamodel><data id="x" expr="1"/></datamodel>
      <state id="a"><onentry><script>x = x + 1</script><send event="later" delay="1s"/></onentry>
        <transition event="later" cond="x == 2" target="b"/></state>
      <state id="b"/>""", datamodel="python"))
    kinds = {(f.construct, f.kind) for f in result.findings}
    assert {("script", FindingKind.OVER_APPROXIMATED), ("send", FindingKind.OVER_APPROXIMATED)} <= kinds
    assert "x" not in result.spec.variable_map
    assert all(f.location.line > 0 for f in result.findings if f.construct in ("script", "send"))


def test_a_statechart_beyond_the_size_bound_is_refused_with_one_sentence() -> None:
    regions = "".join(
        f'<state id="r{i}"><state id="r{i}a"><transition event="t{i}" target="r{i}b"/></state>'
        f'<state id="r{i}b"><transition event="t{i}" target="r{i}a"/></state></state>'
        for i in range(12)
    )
    with pytest.raises(InteropError, match="more than 100 configurations") as info:
        import_scxml_text(doc(f'<parallel id="p">{regions}</parallel>'), max_states=100)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("body", "message"), [
    ('<state id="a"><transition event="e" target="nowhere"/></state>', "target `nowhere` names no state"),
    ('<state id="a"/><state id="a"/>', "declared twice"),
    ('<state id="a"><transition target="b"/></state><state id="b"><transition target="a"/></state>', "eventless loop"),
])
def test_broken_statecharts_are_refused_naming_the_defect(body: str, message: str) -> None:
    with pytest.raises(InteropError, match=re.escape(message)):
        import_scxml_text(doc(body))


def test_an_imported_statechart_keeps_railguards_rules() -> None:
    result = import_scxml_text(doc('<state id="a"><transition event="e" target="b"/></state><final id="b"/>'))
    spec: Spec = result.spec
    assert spec.on_error == "aborted"
    assert spec.state_map["aborted"].terminal == "failure"
    assert all(t.permission in spec.permissions for t in spec.transitions)
    assert spec.role_map["caller"].permissions == ("start", "e")
    custom = import_scxml_text(doc('<state id="a"><transition event="e" target="b"/></state><final id="b"/>'), roles={"clerk": ["start", "e"]})
    assert [r.name for r in custom.spec.roles] == ["clerk"]


# --------------------------------------------------------------------------- corpus

_COND = re.compile(r'cond="([^"]*)"')


def is_pure_control_flow(text: str) -> bool:
    """No data model beyond `In()`: no data, assign, script, send, foreach, invoke, `_event`."""
    if re.search(r"<(data|assign|script|send|foreach|invoke|cancel)\b|_event", text):
        return False
    return all(
        not re.sub(r"""In\(\s*['"][^'"]*['"]\s*\)|&amp;&amp;|\|\||!|\s|true|false|\(|\)""", "", cond)
        for cond in _COND.findall(text)
    )


def run_script(path: Path, expectations: dict[str, Any] | None = None) -> str | None:
    """Import `path`, run its `.json` script; None when every configuration matched, else why not."""
    result = import_scxml(str(path))
    script = expectations or json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    run = Runner(result)
    if run.configuration != set(script["initialConfiguration"]):
        return f"initial configuration {sorted(run.configuration)}, expected {sorted(script['initialConfiguration'])}"
    for n, step in enumerate(script["events"]):
        got = run.send(step["event"]["name"])
        if got != set(step["nextConfiguration"]):
            return f"after event {n + 1} (`{step['event']['name']}`): {sorted(got)}, expected {sorted(step['nextConfiguration'])}"
    return None


def corpus_scripts() -> list[Path]:
    return sorted(corpus("scxml-scripts").rglob("*.scxml"))


def test_every_pure_control_flow_machine_of_scxml_scripts_reaches_each_expected_configuration() -> None:
    pure = [p for p in corpus_scripts() if is_pure_control_flow(p.read_text(encoding="utf-8"))]
    failures = {p.name: why for p in pure if (why := run_script(p)) is not None}
    assert failures == {}
    assert len(pure) >= 90


def contains_script(result: ImportResult, script: dict[str, Any], sent: tuple[str, ...] = ()) -> bool:
    """Whether some choice of the `unknown_<n>` params (the over-approximated conditions), with
    any of the `sent` events (over-approximated `<send>`s) arriving in between, reproduces every
    configuration of the script: the imported behaviour contains the real run."""
    spec = result.spec
    roles = frozenset({"caller"})

    def event_of(name: str) -> str | None:
        descriptors = [d for d in result.events if name == d or name.startswith(d + ".")]
        return result.events[max(descriptors, key=len)] if descriptors else None

    spontaneous = [e for e in (event_of(n) for n in sent) if e is not None]

    def closure(frontier: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        seen = {(s, repr(sorted(v.items()))): (s, v) for s, v in frontier}
        layer = frontier
        for _ in range(4):
            layer = [n for s, v in layer for e in spontaneous for n in successors(s, v, e)]
            layer = [n for n in layer if (n[0], repr(sorted(n[1].items()))) not in seen]
            seen.update({(s, repr(sorted(v.items()))): (s, v) for s, v in layer})
        return list(seen.values())

    def successors(state: str, values: dict[str, Any], event: str) -> list[tuple[str, dict[str, Any]]]:
        names = sorted({p.name for t in spec.transitions if t.event == event for p in t.params})
        found = []
        for bits in itertools.product((False, True), repeat=len(names)):
            outcome = fire(spec, state, values, event, "u", roles, dict(zip(names, bits, strict=True)))
            found.append((outcome.target, dict(outcome.values)) if isinstance(outcome, Fired) else (state, values))
        return found

    def matching(frontier: list[tuple[str, dict[str, Any]]], expected: list[str]) -> list[tuple[str, dict[str, Any]]]:
        kept = [(s, v) for s, v in frontier if set(result.states.get(s, ())) == set(expected)]
        return list({(s, repr(sorted(v.items()))): (s, v) for s, v in kept}.values())

    frontier = matching(successors(spec.initial_state.name, spec.initial_values(), "start"), script["initialConfiguration"])
    for step in script["events"]:
        frontier = closure(frontier)
        event = event_of(step["event"]["name"])
        if event is not None:
            frontier = [n for s, v in frontier for n in successors(s, v, event)]
        frontier = matching(frontier, step["nextConfiguration"])
        if not frontier:
            return False
    return True


def test_scxml_scripts_machines_with_data_run_exactly_or_contain_the_expected_run() -> None:
    """Machines with a data model: imported exactly, the runtime reaches each configuration;
    imported with over-approximations, the spec's behaviour contains the expected run."""
    outcomes: dict[str, str] = {}
    for path in corpus_scripts():
        if is_pure_control_flow(path.read_text(encoding="utf-8")):
            continue
        key = f"{path.parent.name}/{path.name}"
        try:
            result = import_scxml(str(path))
        except InteropError:
            outcomes[key] = "refused"
            continue
        script = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if not (result.of_kind(FindingKind.OVER_APPROXIMATED) or result.of_kind(FindingKind.REFUSED)):
            if run_script(path) is None:
                outcomes[key] = "exact"
            elif "legacySemantics" in script and run_script(path, script["legacySemantics"]) is None:
                outcomes[key] = "w3c-lcca"
            else:
                outcomes[key] = "exact-differs"
        else:
            sent = tuple(re.findall(r"""<send\b[^>]*\bevent(?:expr="'|=")([^"']+)""", path.read_text(encoding="utf-8")))
            outcomes[key] = "contained" if contains_script(result, script, sent) else "approximation-misses"
    assert {k for k, v in outcomes.items() if v == "w3c-lcca"} == {"more-parallel/test10.scxml", "more-parallel/test10b.scxml"}
    assert {k for k, v in outcomes.items() if v == "exact-differs"} == set()
    assert {k for k, v in outcomes.items() if v == "approximation-misses"} <= ERROR_EVENT_TESTS
    assert sum(v == "exact" for v in outcomes.values()) >= 4
    assert sum(v == "contained" for v in outcomes.values()) >= 25
    # An eventless loop counting a symbolic value up to 100 may diverge: refused, not truncated.
    assert {k for k, v in outcomes.items() if v == "refused"} == {"targetless-transition/test0.scxml"}


#: Scripts that expect `error.execution` (or delayed delivery order), which the import does not model.
ERROR_EVENT_TESTS = {
    "assign/assign_invalid.scxml", "data/data_invalid.scxml", "error/error.scxml",
}
