"""The structural checks walk plain adjacency sets for speed; these tests hold them to the
plain networkx definitions (descendants, ancestors on the graph with and without error
exits) on generated specs and on the edge cases of error exits."""

from __future__ import annotations

from typing import Any

import networkx as nx
from hypothesis import HealthCheck, given, settings

from railguard.spec import LoadError, Spec, load_data, loads
from railguard.verifier import structure
from railguard.verifier.strategies import specs


def _reference(spec: Spec) -> dict[str, Any]:
    graph = nx.DiGraph()
    graph.add_nodes_from(s.name for s in spec.states)
    ordinary = nx.DiGraph()
    ordinary.add_nodes_from(s.name for s in spec.states)
    for t in spec.transitions:
        for source in t.sources:
            graph.add_edge(source, t.target)
            ordinary.add_edge(source, t.target)
    for state in spec.states:
        target = spec.error_target(state.name)
        if target is not None:
            graph.add_edge(state.name, target)
    start = spec.initial_state.name
    reached = {start} | nx.descendants(graph, start)
    finish: set[str] = set()
    fail: set[str] = set()
    for state in spec.terminal_states:
        finish |= {state.name} | nx.ancestors(ordinary, state.name)
        if state.terminal == "failure":
            fail |= {state.name} | nx.ancestors(graph, state.name)
    return {
        "reachable_states": reached,
        "unreachable_states": [s.name for s in spec.states if s.name not in reached],
        "trap_states": [
            s.name for s in spec.states if s.name in reached and s.terminal is None and s.name not in finish
        ],
        "unreachable_success_terminals": [
            s.name for s in spec.states if s.terminal == "success" and s.name not in reached
        ],
        "failure_reachable_states": fail,
    }


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(max_states=8, max_transitions=12))
def test_the_graph_checks_match_the_networkx_definitions(document: dict[str, object]) -> None:
    try:
        spec = load_data(document)
    except LoadError:
        return
    reference = _reference(spec)
    for name, expected in reference.items():
        assert getattr(structure, name)(spec) == expected, name
    found = structure.check_structure(spec)
    assert [r.subject for r in found if r.rule.name == "trap-state" and r.outcome == "violated"] == reference["trap_states"]
    assert [r.subject for r in found if r.rule.name == "unreachable-state" and r.outcome == "violated"] == reference["unreachable_states"]


def test_an_error_exit_is_no_way_out_but_the_same_ordinary_edge_is() -> None:
    spec = loads(
        """
railguard: 1
name: exits
roles:
  clerk: [go]
states:
  start: {initial: true}
  stuck: {}
  giving_up: {}
  done: {terminal: success}
  failed: {terminal: failure}
on_error: failed
transitions:
  - {event: go, from: start, to: stuck, permission: go}
  - {event: quit, from: start, to: giving_up, permission: go}
  - {event: fail, from: giving_up, to: failed, permission: go}
  - {event: finish, from: start, to: done, permission: go}
"""
    )
    # `stuck` reaches `failed` only by its error exit; `giving_up` has an ordinary transition
    # along the very same edge.
    assert structure.trap_states(spec) == ["stuck"]
    traps = [r.subject for r in structure.check_structure(spec) if r.rule.name == "trap-state" and r.outcome == "violated"]
    assert traps == ["stuck"]
