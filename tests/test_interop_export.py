"""Export to SCXML and ASL, and export -> import round trips: the unchanged export restores the
spec exactly; the document read by its structure alone has the same reachable state graph."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from railguard.spec import EvaluationError, Spec, Transition, evaluate, load, load_data
from railguard.spec.interop import FindingKind, ImportResult
from railguard.spec.interop.asl import import_asl_data
from railguard.spec.interop.asl_check import validate_asl
from railguard.spec.interop.export_asl import export_asl
from railguard.spec.interop.export_scxml import RG_NS, export_scxml
from railguard.spec.interop.scxml import import_scxml_text
from railguard.verifier import verify
from railguard.verifier.strategies import specs

from .conftest import CANONICAL, EXAMPLES


def constant_guard(t: Transition) -> bool | None:
    """The guard's value when it reads nothing (no guard: true), else None."""
    if t.guard is None:
        return True
    try:
        value = evaluate(t.guard.tree, {})
    except (EvaluationError, KeyError, TypeError, ArithmeticError):
        return None
    return value if isinstance(value, bool) else None


def reachable_edges(spec: Spec, start: str | None = None, *, first_match: bool = False, guards: bool = True) -> set[tuple[str, str, str]]:
    """(source, event, target) of every transition that can fire at all, from a state
    reachable in the graph. With `first_match`, a transition behind an earlier unguarded one
    of the same event and state is left out: SCXML takes the first in document order whatever
    the caller's permissions, where railguard takes the first *permitted* one."""
    seen = {start or spec.initial_state.name}
    todo = list(seen)
    edges = set()
    while todo:
        state = todo.pop()
        unguarded: set[str] = set()
        for t in spec.transitions_from(state):
            if (guards and constant_guard(t) is False) or (first_match and t.event in unguarded):
                continue
            if constant_guard(t) is True:
                unguarded.add(t.event)
            edges.add((state, t.event, t.target))
            if t.target not in seen:
                seen.add(t.target)
                todo.append(t.target)
    return edges


def verdicts(spec: Spec) -> dict[tuple[str, str], str]:
    return {(r.rule.id, r.subject): r.outcome for r in verify(spec).results}


@pytest.mark.parametrize("name", CANONICAL)
def test_an_unchanged_scxml_export_imports_back_to_the_same_spec(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    result = import_scxml_text(export_scxml(spec), f"{name}.scxml")
    assert result.spec == spec
    assert result.spec.content_hash == spec.content_hash
    assert verdicts(result.spec) == verdicts(spec)


@pytest.mark.parametrize("name", CANONICAL)
def test_an_unchanged_asl_export_is_valid_asl_and_imports_back_to_the_same_spec(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    document = json.loads(export_asl(spec))
    assert validate_asl(document) == []
    result = import_asl_data(document, f"{name}.asl.json")
    assert result.spec == spec
    assert verdicts(result.spec) == verdicts(spec)


def without_metadata_scxml(text: str) -> str:
    return re.sub(r"<rg:spec>.*?</rg:spec>", "", text, flags=re.DOTALL).replace(f'xmlns:rg="{RG_NS}"', "")


def structural_scxml(spec: Spec) -> ImportResult:
    """The export read by a tool that ignores railguard's metadata: flattened like any SCXML."""
    return import_scxml_text(without_metadata_scxml(export_scxml(spec)), f"{spec.name}.scxml")


def scxml_graph(result: ImportResult) -> set[tuple[str, str, str]]:
    """The re-imported graph in the original's names: the `start` step is dropped."""
    (first,) = [t.target for t in result.spec.transitions if t.event == "start" and t.sources == ("start",)]
    back = {name: source[0] for name, source in result.states.items() if len(source) == 1}
    return {(back[s], e, back[t]) for s, e, t in reachable_edges(result.spec, first)}


@pytest.mark.parametrize("name", CANONICAL)
def test_the_scxml_export_read_by_structure_alone_has_the_same_reachable_state_graph(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    result = structural_scxml(spec)
    assert scxml_graph(result) == reachable_edges(spec, first_match=True)
    terminals = {result.states[s.name][0]: s.terminal for s in result.spec.states if s.name in result.states}
    assert {k: v is not None for k, v in terminals.items()} == {s.name: s.terminal is not None for s in spec.states if s.name in terminals}


def asl_graph(spec: Spec, document: dict[str, Any]) -> set[tuple[str, str, str]]:
    """The ASL export read by structure: each step state `S / e #n` stands for a transition of
    event `e` from `S`; the graph is rebuilt from the steps the structural import can reach."""
    document = {**document, "Comment": "edited"}
    result = import_asl_data(document, f"{spec.name}.asl.json")
    assert result.of_kind(FindingKind.REFUSED) == ()
    by_railguard = {name: source[0] for name, source in result.states.items()}
    edges = set()
    for s, event, t in reachable_edges(result.spec):
        asl_name = by_railguard.get(s, "")
        step = re.fullmatch(r"(.+) / (.+) #\d+", asl_name)
        # The step's own event; its `_catch_` events are the error exit, implicit in railguard.
        if step is not None and event == result.events[asl_name]:
            edges.add((step.group(1), step.group(2), by_railguard.get(t, t)))
    return edges


@pytest.mark.parametrize("name", CANONICAL)
def test_the_asl_export_read_by_structure_alone_has_the_same_reachable_state_graph(name: str) -> None:
    spec = load(EXAMPLES / f"{name}.yaml")
    assert asl_graph(spec, json.loads(export_asl(spec))) == reachable_edges(spec)


def test_an_edited_export_is_imported_from_its_structure_and_says_so() -> None:
    spec = load(EXAMPLES / "order.yaml")
    edited = export_scxml(spec).replace('<transition event="ship" target="shipped"', '<transition event="ship" target="failed"')
    result = import_scxml_text(edited, "order.scxml")
    assert result.spec != spec
    assert any(f.construct == "rg:spec" for f in result.of_kind(FindingKind.OVER_APPROXIMATED))
    document = json.loads(export_asl(spec))
    document["States"]["placed / cancel #5"]["Next"] = "failed"
    assert import_asl_data(document, "order.asl.json").spec != spec


def proved_reachable(spec: Spec) -> set[str]:
    """The states the verifier proves reachable (data and guards taken into account)."""
    return {r.subject for r in verify(spec).results if r.rule.id == "RG401" and r.outcome == "proved"}


@pytest.mark.slow
@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
def test_generated_specs_round_trip_through_both_formats(document: dict[str, Any]) -> None:
    """Unchanged exports restore the spec exactly. Read by structure alone, each format
    invents no edge the spec's graph lacks and keeps every state the verifier proves reachable."""
    spec = load_data(document)
    assert import_scxml_text(export_scxml(spec), "generated.scxml").spec == spec
    asl = json.loads(export_asl(spec))
    assert validate_asl(asl) == []
    assert import_asl_data(asl, "generated.asl.json").spec == spec
    reachable = proved_reachable(spec)
    scxml = scxml_graph(structural_scxml(spec))
    assert scxml <= reachable_edges(spec, guards=False)
    asl_edges = asl_graph(spec, asl)
    assert asl_edges <= reachable_edges(spec, guards=False)
    # Error exits are implicit in railguard (and caught errors in the formats): their targets count.
    initial = {spec.initial_state.name} | {e for s in spec.states if (e := spec.error_target(s.name))}
    assert reachable <= initial | {t for _, _, t in asl_edges}
    if len({(t.event, t.permission) for t in spec.transitions}) == len(spec.events):
        # One permission per event: SCXML's first-match is railguard's, so no state is lost.
        assert reachable <= initial | {t for _, _, t in scxml}


@pytest.mark.parametrize("guard", ["params.flag == False", "params.flag == True", "not params.flag"])
def test_a_bool_param_compared_with_a_boolean_is_read_back_as_bool_by_structure(guard: str) -> None:
    # found by the generated round trip: `$states.input.params.flag = false` was read as a decimal
    spec = load_data({
        "railguard": 1, "name": "flags", "roles": {"r": ["p"]},
        "states": {"s1": {"initial": True}, "s2": {"terminal": "success"}},
        "transitions": [{"event": "e", "from": "s1", "to": "s2", "permission": "p", "params": {"flag": {"type": "bool"}}, "guard": guard}],
    })
    document = {**json.loads(export_asl(spec)), "Comment": "edited"}
    result = import_asl_data(document, "flags.asl.json")
    assert result.of_kind(FindingKind.REFUSED) == ()
    assert {p.type.kind for t in result.spec.transitions for p in t.params if "flag" in p.name} == {"bool"}
