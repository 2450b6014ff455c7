"""State diagrams: the intermediate model, the DOT and Mermaid renderers, traces, and images."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from railguard.spec import Spec, SpecError, load, loads
from railguard.spec.diagram import (
    Diagram,
    DiagramEdge,
    DiagramError,
    Trace,
    TraceStep,
    diagram_model,
    load_trace,
    render,
    step_marker,
    to_dot,
    to_mermaid,
    trace_from_data,
    trace_path,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_NAMES = ("refund", "order", "deploy")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def example(name: str) -> Spec:
    return load(EXAMPLES / f"{name}.yaml")


def spec_from(text: str) -> Spec:
    return loads(textwrap.dedent(text))


def steps(*events: str) -> Trace:
    return Trace(tuple(TraceStep(event) for event in events))


def transition_edge(diagram: Diagram, source: str, event: str) -> DiagramEdge:
    (edge,) = [
        e
        for e in diagram.edges
        if e.kind == "transition" and e.source == source and e.event == event
    ]
    return edge


def dot_line(dot: str, source: str, target: str, needle: str) -> str:
    (line,) = [
        line
        for line in dot.splitlines()
        if line.strip().startswith(f'"{source}" -> "{target}"') and needle in line
    ]
    return line


TIMEOUTS = """
    railguard: 1
    name: approval
    roles:
      clerk: [a.submit, a.remind, a.decide]
    variables:
      reminded: {type: bool, initial: false}
    states:
      open:     {initial: true, timeout: {after: 15m, event: remind}}
      waiting:  {timeout: {after: 2h}}
      done:     {terminal: success}
      expired:  {terminal: failure}
      aborted:  {terminal: failure}
    on_error: aborted
    transitions:
      - event: remind
        from: open
        to: open
        permission: a.remind
        assign: {reminded: true}
      - event: submit
        from: open
        to: waiting
        permission: a.submit
      - event: decide
        from: waiting
        to: done
        permission: a.decide
"""


# --------------------------------------------------------------------------- every format


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_renders_to_dot_and_mermaid_text(name: str) -> None:
    spec = example(name)
    dot = render(spec, "dot").decode("utf-8")
    mermaid = render(spec, "mermaid").decode("utf-8")
    assert dot.startswith(f'digraph "{name}" {{')
    assert dot.rstrip().endswith("}")
    assert mermaid.startswith("stateDiagram-v2\n")
    assert f"[*] --> {spec.initial_state.name}" in mermaid.splitlines()[2]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_renders_to_an_svg_document(name: str) -> None:
    svg = render(example(name), "svg")
    root = ET.fromstring(svg)
    assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg")


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_renders_to_a_png_image(name: str) -> None:
    assert render(example(name), "png").startswith(PNG_MAGIC)


def test_a_traced_diagram_renders_to_svg_and_png_too() -> None:
    spec = example("refund")
    trace = steps("request", "approve", "pay")
    assert ET.fromstring(render(spec, "svg", trace)).tag.endswith("svg")
    assert render(spec, "png", trace).startswith(PNG_MAGIC)


def test_an_unknown_format_raises_a_diagram_error_naming_it() -> None:
    with pytest.raises(DiagramError, match="unknown diagram format `pdf`"):
        render(example("refund"), "pdf")


def test_a_missing_dot_executable_raises_a_diagram_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DiagramError, match="Graphviz `dot` is not installed"):
        render(example("refund"), "svg")
    # the text formats need no executable
    assert render(example("refund"), "dot").startswith(b"digraph")


def test_diagram_errors_are_spec_errors() -> None:
    assert issubclass(DiagramError, SpecError)


def test_a_spec_shows_itself_in_jupyter_as_svg_text() -> None:
    svg = example("refund")._repr_svg_()
    assert isinstance(svg, str)
    assert ET.fromstring(svg).tag.endswith("svg")
    assert "requested" in svg


# --------------------------------------------------------------------------- the model


def test_the_model_is_made_of_frozen_values() -> None:
    diagram = diagram_model(example("refund"))
    assert isinstance(diagram.nodes, tuple)
    assert isinstance(diagram.edges, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        diagram.nodes[0].kind = "success"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        diagram.edges[0].highlighted = (1,)  # type: ignore[misc]
    assert diagram_model(example("refund")) == diagram


def test_nodes_have_the_kinds_initial_normal_success_and_failure() -> None:
    diagram = diagram_model(example("refund"))
    assert {node.id: node.kind for node in diagram.nodes} == {
        "draft": "initial",
        "requested": "normal",
        "approved": "normal",
        "paid": "success",
        "rejected": "failure",
        "cancelled": "failure",
    }
    assert [node.id for node in diagram.nodes] == [s.name for s in example("refund").states]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_transition_is_one_edge_per_source_state(name: str) -> None:
    spec = example(name)
    diagram = diagram_model(spec)
    drawn = sorted(
        (e.transition or 0, e.source, e.target) for e in diagram.edges if e.kind == "transition"
    )
    expected = sorted((t.index, s, t.target) for t in spec.transitions for s in t.sources)
    assert drawn == expected


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_non_terminal_state_has_exactly_one_error_edge(name: str) -> None:
    spec = example(name)
    diagram = diagram_model(spec)
    for state in spec.states:
        errors = [e for e in diagram.edges_from(state.name) if e.kind == "error"]
        if state.is_terminal:
            assert errors == []
            assert diagram.edges_from(state.name) == ()
        else:
            assert len(errors) == 1
            assert errors[0].target == spec.error_target(state.name)
            assert errors[0].label == "error"
            assert errors[0].event == "error"


def test_edge_labels_show_event_guard_and_permission() -> None:
    diagram = diagram_model(example("refund"))
    approve = transition_edge(diagram, "requested", "approve")
    assert approve.label_lines == ("approve [actor != requested_by]", "🔑 refund.approve")
    assert approve.guard == "actor != requested_by"
    assert approve.permission == "refund.approve"
    reject = transition_edge(diagram, "approved", "reject")
    assert reject.label_lines == ("reject", "🔑 refund.reject")
    assert reject.guard is None


def test_effects_and_compensations_are_marked_in_labels() -> None:
    diagram = diagram_model(example("order"))
    charge = transition_edge(diagram, "reserved", "charge")
    assert charge.effect == "payments.charge"
    assert charge.compensate == "payments.refund"
    assert charge.label_lines == (
        "charge [total > 0]",
        "🔑 order.charge",
        "⚙ payments.charge",
        "↺ payments.refund",
    )
    assert not charge.irreversible


@pytest.mark.parametrize(
    ("name", "source", "event"),
    [
        ("refund", "approved", "pay"),
        ("order", "charged", "ship"),
        ("deploy", "approved", "release"),
    ],
)
def test_irreversible_edges_are_flagged_and_drawn_bold_and_red(
    name: str, source: str, event: str
) -> None:
    diagram = diagram_model(example(name))
    flagged = [e for e in diagram.edges if e.irreversible]
    assert [(e.source, e.event) for e in flagged] == [(source, event)]
    assert flagged[0].label_lines[-1] == "⚠ irreversible"
    line = dot_line(to_dot(diagram), source, flagged[0].target, f'label="{event}')
    assert 'style="bold"' in line
    assert 'color="#d84315"' in line


def test_long_guards_are_wrapped_over_several_lines() -> None:
    spec = spec_from(
        """
        railguard: 1
        name: wide
        roles: {r: [p]}
        variables:
          first_amount: {type: int, min: 0, max: 100, initial: 0}
          second_amount: {type: int, min: 0, max: 100, initial: 0}
        states:
          a: {initial: true}
          b: {terminal: success}
        transitions:
          - event: go
            from: a
            to: b
            permission: p
            guard: first_amount + second_amount <= 100 and first_amount >= second_amount
        """
    )
    edge = transition_edge(diagram_model(spec), "a", "go")
    head = edge.label_lines[:-1]
    assert len(head) > 1
    assert all(len(line) <= 48 for line in head)
    assert " ".join(head) == f"go [{edge.guard}]"


def test_a_timeout_without_an_event_is_a_timeout_edge_to_the_error_target() -> None:
    diagram = diagram_model(spec_from(TIMEOUTS))
    (timeout,) = [e for e in diagram.edges if e.kind == "timeout"]
    assert (timeout.source, timeout.target) == ("waiting", "aborted")
    assert timeout.label == "⏱ after 2h"
    assert timeout.timeout == "2h"
    line = dot_line(to_dot(diagram), "waiting", "aborted", "after 2h")
    assert 'style="dotted"' in line


def test_a_timeout_with_an_event_annotates_that_transition() -> None:
    diagram = diagram_model(spec_from(TIMEOUTS))
    remind = transition_edge(diagram, "open", "remind")
    assert remind.timeout == "15m"
    assert remind.label_lines[-1] == "⏱ after 15m"
    assert transition_edge(diagram, "open", "submit").timeout is None
    assert [e.source for e in diagram.edges if e.kind == "timeout"] == ["waiting"]


# --------------------------------------------------------------------------- DOT


def test_the_initial_state_has_an_entry_arrow_from_a_point() -> None:
    dot = to_dot(diagram_model(example("refund")))
    assert '"__start__" [shape="point"' in dot
    assert '  "__start__" -> "draft";' in dot.splitlines()


def test_failure_terminals_are_drawn_differently_from_success_terminals() -> None:
    dot = to_dot(diagram_model(example("refund")))
    nodes = {line.split()[0].strip('"'): line for line in dot.splitlines()[1:] if "[label=" in line}
    assert 'shape="doublecircle"' in nodes["paid"]
    assert 'color="#2e7d32"' in nodes["paid"]
    for failure in ("rejected", "cancelled"):
        assert 'shape="doubleoctagon"' in nodes[failure]
        assert 'color="#c62828"' in nodes[failure]
    assert "shape=" not in nodes["requested"]


def test_error_edges_are_dashed_and_grey_in_dot() -> None:
    dot = to_dot(diagram_model(example("refund")))
    line = dot_line(dot, "requested", "cancelled", 'label="error"')
    assert 'style="dashed"' in line
    assert 'color="#9e9e9e"' in line


def test_dot_quotes_and_escapes_labels() -> None:
    spec = spec_from(
        r"""
        railguard: 1
        name: quoting
        roles: {r: [p]}
        variables:
          note: {type: str, max_length: 20, initial: ""}
        states:
          a: {initial: true}
          b: {terminal: success}
        transitions:
          - event: go
            from: a
            to: b
            permission: p
            guard: 'note != "say \"hi\" \\ bye"'
        """
    )
    diagram = diagram_model(spec)
    guard = transition_edge(diagram, "a", "go").guard
    assert guard == r'note != "say \"hi\" \\ bye"'
    dot = to_dot(diagram)
    assert r'label="go [note != \"say \\\"hi\\\" \\\\ bye\"]\n🔑 p"' in dot
    assert ET.fromstring(render(spec, "svg")).tag.endswith("svg")


# --------------------------------------------------------------------------- Mermaid


def test_mermaid_marks_the_entry_and_the_terminals() -> None:
    lines = to_mermaid(diagram_model(example("refund"))).splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> draft" in lines
    for terminal in ("paid", "rejected", "cancelled"):
        assert f"    {terminal} --> [*]" in lines
    assert "    class paid success" in lines
    assert "    class rejected,cancelled failure" in lines
    assert any(line.startswith("    classDef success ") for line in lines)
    assert any(line.startswith("    classDef failure ") for line in lines)


def test_mermaid_labels_transitions_and_marks_error_edges() -> None:
    lines = to_mermaid(diagram_model(example("refund"))).splitlines()
    assert (
        "    requested --> approved : approve [actor != requested_by]<br/>🔑 refund.approve"
        in lines
    )
    assert "    requested --> cancelled : ↯ error" in lines
    assert sum(line.endswith(": ↯ error") for line in lines) == 3


def test_mermaid_escapes_characters_that_would_break_the_syntax() -> None:
    spec = spec_from(
        """
        railguard: 1
        name: symbols
        roles: {r: [p]}
        variables:
          n: {type: int, min: 0, max: 100, initial: 0}
          tag: {type: str, max_length: 10, initial: ""}
        states:
          a: {initial: true}
          b: {terminal: success}
        transitions:
          - event: go
            from: a
            to: b
            permission: p
            guard: 'n % 2 == 0 and n < 5 and tag in ["a;b", "#c"]'
        """
    )
    (line,) = [line for line in to_mermaid(diagram_model(spec)).splitlines() if "a --> b" in line]
    label = line.split(" : ", 1)[1]
    bare = re.sub(r"#\w+;", "", label).replace("<br/>", " ")
    for raw in '%<;"#':
        assert raw not in bare
    assert "n #37; 2 == 0 and n #lt; 5" in label
    assert "#quot;a#59;b#quot;" in label


def test_mermaid_aliases_state_names_that_are_mermaid_keywords() -> None:
    spec = spec_from(
        """
        railguard: 1
        name: keywords
        roles: {r: [p]}
        states:
          note: {initial: true}
          end: {terminal: success}
        transitions:
          - event: finish
            from: note
            to: end
            permission: p
        """
    )
    lines = to_mermaid(diagram_model(spec)).splitlines()
    assert '    state "note" as state_0' in lines
    assert '    state "end" as state_1' in lines
    assert "    [*] --> state_0" in lines
    assert "    state_0 --> state_1 : finish<br/>🔑 p" in lines


# --------------------------------------------------------------------------- traces


def test_the_refund_trace_highlights_exactly_its_three_edges_in_order() -> None:
    diagram = diagram_model(example("refund"), steps("request", "approve", "pay"))
    highlighted = [(e.source, e.target, e.event, e.highlighted) for e in diagram.highlighted_edges]
    assert highlighted == [
        ("draft", "requested", "request", (1,)),
        ("requested", "approved", "approve", (2,)),
        ("approved", "paid", "pay", (3,)),
    ]
    assert sum(1 for e in diagram.edges if e.highlighted) == 3
    assert diagram.visited == {"draft", "requested", "approved", "paid"}


def test_highlighted_edges_are_numbered_and_coloured_in_dot_and_mermaid() -> None:
    diagram = diagram_model(example("refund"), steps("request", "approve", "pay"))
    dot = to_dot(diagram)
    line = dot_line(dot, "requested", "approved", "approve")
    assert 'label="②\\napprove' in line
    assert "penwidth=3" in line
    assert 'color="#1565c0"' in line
    assert "①" in dot_line(dot, "draft", "requested", "request")
    assert "③" in dot_line(dot, "approved", "paid", "pay")
    mermaid = to_mermaid(diagram).splitlines()
    assert any(m.startswith("    requested --> approved : ② approve") for m in mermaid)
    assert "    class draft,requested,approved,paid traced" in mermaid


def test_an_untraced_diagram_highlights_nothing() -> None:
    diagram = diagram_model(example("refund"))
    assert diagram.highlighted_edges == ()
    assert diagram.visited == frozenset()
    assert "#1565c0" not in to_dot(diagram)
    assert "traced" not in to_mermaid(diagram)


def test_trace_path_maps_steps_to_transition_indices() -> None:
    assert trace_path(example("refund"), steps("request", "approve", "pay")) == [
        (1, 1),
        (2, 2),
        (3, 3),
    ]


def test_an_edge_taken_twice_lists_both_step_numbers() -> None:
    trace = steps("submit", "report_red", "retry", "report_red", "error")
    diagram = diagram_model(example("deploy"), trace)
    assert transition_edge(diagram, "testing", "report_red").highlighted == (2, 4)
    assert transition_edge(diagram, "red", "retry").highlighted == (3,)
    (error,) = [e for e in diagram.edges_from("red") if e.kind == "error"]
    assert error.highlighted == (5,)
    assert error.target == "aborted"
    assert trace_path(example("deploy"), trace)[-1] == (5, None)
    assert "②④" in dot_line(to_dot(diagram), "testing", "red", "report_red")


def test_a_timeout_step_follows_a_timeout_without_an_event() -> None:
    spec = spec_from(TIMEOUTS)
    trace = steps("remind", "submit", "timeout")
    assert trace_path(spec, trace) == [(1, 1), (2, 2), (3, None)]
    diagram = diagram_model(spec, trace)
    (timeout,) = [e for e in diagram.edges if e.kind == "timeout"]
    assert timeout.highlighted == (3,)
    assert transition_edge(diagram, "open", "remind").highlighted == (1,)


def test_a_step_given_its_target_picks_the_transition_into_that_state() -> None:
    spec = example("refund")
    trace = Trace((TraceStep("request"), TraceStep("reject", "requested", "rejected")), start=None)
    assert trace_path(spec, trace) == [(1, 1), (2, 4)]
    spec = spec_from(
        """
        railguard: 1
        name: branching
        roles: {r: [p]}
        variables:
          n: {type: int, min: 0, max: 10, initial: 0}
        states:
          a: {initial: true}
          low: {terminal: success}
          high: {terminal: success}
        transitions:
          - {event: go, from: a, to: low, permission: p, guard: n < 5}
          - {event: go, from: a, to: high, permission: p, guard: n >= 5}
        """
    )
    assert trace_path(spec, Trace((TraceStep("go", target="high"),))) == [(1, 2)]
    # without a target, the first transition in source order is taken
    assert trace_path(spec, steps("go")) == [(1, 1)]


def test_a_trace_may_start_in_another_state() -> None:
    trace = Trace((TraceStep("pay"),), start="approved")
    assert trace_path(example("refund"), trace) == [(1, 3)]
    diagram = diagram_model(example("refund"), trace)
    assert [e.event for e in diagram.highlighted_edges] == ["pay"]


def test_an_impossible_step_raises_a_diagram_error_naming_the_step() -> None:
    with pytest.raises(DiagramError) as caught:
        diagram_model(example("refund"), steps("request", "pay"))
    message = str(caught.value)
    assert message.startswith("step 2 (`pay`) is not possible from state `requested`")
    assert "`approve`" in message
    assert "\n" not in message


def test_a_step_after_a_terminal_state_raises_a_diagram_error() -> None:
    with pytest.raises(
        DiagramError, match=r"step 4 \(`cancel`\) is not possible: state `paid` is terminal"
    ):
        trace_path(example("refund"), steps("request", "approve", "pay", "cancel"))


def test_a_step_into_the_wrong_state_raises_a_diagram_error() -> None:
    trace = Trace((TraceStep("request", target="approved"),))
    with pytest.raises(DiagramError, match=r"step 1 \(`request`\) goes to `approved`"):
        trace_path(example("refund"), trace)


def test_a_step_from_the_wrong_state_raises_a_diagram_error() -> None:
    trace = Trace((TraceStep("request"), TraceStep("pay", source="approved")))
    with pytest.raises(
        DiagramError,
        match=r"step 2 \(`pay`\) leaves `approved`, but the trace is in state `requested`",
    ):
        trace_path(example("refund"), trace)


def test_a_trace_from_an_unknown_state_raises_a_diagram_error() -> None:
    with pytest.raises(DiagramError, match="unknown state `nowhere`"):
        trace_path(example("refund"), Trace((), start="nowhere"))


def test_a_bad_trace_makes_render_raise_too() -> None:
    with pytest.raises(DiagramError, match=r"step 1 \(`approve`\)"):
        render(example("refund"), "svg", steps("approve"))


def test_step_markers_are_circled_numbers_up_to_twenty() -> None:
    assert step_marker((1, 2, 3)) == "①②③"
    assert step_marker((20,)) == "⑳"
    assert step_marker((21,)) == "#21"


# --------------------------------------------------------------------------- trace files


def test_load_trace_reads_a_json_plan(tmp_path: Path) -> None:
    plan = {
        "workflow": "refund",
        "instance": "r-1",
        "steps": [
            {"event": "request", "params": {"amount": 120}},
            {"event": "approve"},
            {"event": "pay", "params": {}},
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    trace = load_trace(path)
    assert trace == steps("request", "approve", "pay")
    assert trace_path(example("refund"), trace) == [(1, 1), (2, 2), (3, 3)]


def test_load_trace_reads_a_yaml_counterexample(tmp_path: Path) -> None:
    path = tmp_path / "counterexample.yaml"
    path.write_text(
        textwrap.dedent(
            """
            start: requested
            steps:
              - {event: approve, from: requested, to: approved}
              - {event: error, from: approved, to: cancelled}
            """
        ),
        encoding="utf-8",
    )
    trace = load_trace(path)
    assert trace == Trace(
        (
            TraceStep("approve", "requested", "approved"),
            TraceStep("error", "approved", "cancelled"),
        ),
        start="requested",
    )
    assert trace_path(example("refund"), trace) == [(1, 2), (2, None)]


def test_trace_from_data_accepts_bare_event_names() -> None:
    assert trace_from_data(["request", "approve"]) == steps("request", "approve")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("request", "must be a mapping with `steps`"),
        ({"workflow": "refund"}, "needs `steps`"),
        ({"steps": [{"params": {}}]}, "step 1 must be a mapping with an `event` name"),
        ({"steps": ["request", {"event": "approve", "to": 3}]}, "step 2 has a `from` or `to`"),
        ({"steps": [], "start": 1}, "`start` must name a state"),
    ],
)
def test_malformed_trace_data_raises_a_diagram_error(data: object, message: str) -> None:
    with pytest.raises(DiagramError, match=message):
        trace_from_data(data)


def test_unreadable_trace_files_raise_a_diagram_error(tmp_path: Path) -> None:
    with pytest.raises(DiagramError, match="cannot read trace"):
        load_trace(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(DiagramError, match="is not valid JSON"):
        load_trace(broken)
