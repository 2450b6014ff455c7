"""State diagrams of a spec: an intermediate form of plain data, and renderers for it.

:func:`diagram_model` turns a :class:`~railguard.spec.model.Spec` (and optionally a
:class:`Trace`, such as a plan or a counterexample) into a :class:`Diagram` of frozen
nodes and edges. The renderers depend only on that form: :func:`to_dot` writes Graphviz
DOT, :func:`to_mermaid` writes a Mermaid ``stateDiagram-v2``, and :func:`render` returns
the bytes of any of them or of an SVG or PNG drawn by Graphviz ``dot``::

    spec = load("examples/refund.yaml")
    trace = Trace((TraceStep("request"), TraceStep("approve"), TraceStep("pay")))
    svg = render(spec, "svg", trace)

What is drawn:

- one node per state: the initial state gets an entry arrow, success terminals a green
  double circle, failure terminals a red double octagon;
- one edge per transition and source state, labelled with the event and ``[guard]``,
  the permission (``🔑 refund.approve``), the effect (``⚙ payments.refund``), its
  compensation (``↺ payments.release``), ``⚠ irreversible`` (drawn bold and red) and,
  when the source state's timeout fires that event, ``⏱ after 15m``;
- one dashed grey ``error`` edge from each non-terminal state to its error target
  (:meth:`Spec.error_target`), and a dotted timeout edge to the same target from each
  state whose timeout has no event;
- the steps of a trace as thick blue edges numbered ``①``, ``②``, ... in the order taken.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import graphviz
import yaml

from .dump import format_duration
from .errors import SpecError
from .model import Spec, Transition

__all__ = [
    "FORMATS",
    "Diagram",
    "DiagramEdge",
    "DiagramError",
    "DiagramNode",
    "EdgeKind",
    "NodeKind",
    "Trace",
    "TraceStep",
    "diagram_model",
    "load_trace",
    "render",
    "step_marker",
    "to_dot",
    "to_mermaid",
    "trace_from_data",
    "trace_path",
]

NodeKind = Literal["initial", "normal", "success", "failure"]
EdgeKind = Literal["transition", "error", "timeout"]

#: The formats :func:`render` produces.
FORMATS: tuple[str, ...] = ("dot", "mermaid", "svg", "png")

#: The pseudo-event of a trace step that takes the error exit.
ERROR_EVENT = "error"
#: The pseudo-event of a trace step that takes a timeout without an event.
TIMEOUT_EVENT = "timeout"


class DiagramError(SpecError):
    """A diagram could not be drawn: unknown format, no ``dot``, or a trace that does not fit."""


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class DiagramNode:
    """A state: ``id`` is the state name, ``kind`` says how it is drawn."""

    id: str
    label: str
    kind: NodeKind
    description: str = ""


@dataclass(frozen=True, slots=True)
class DiagramEdge:
    """An arrow between two states.

    ``kind`` is ``"transition"`` (``transition`` is then the spec's transition index),
    ``"error"`` (the error exit; ``event`` is ``"error"``) or ``"timeout"`` (a timeout without
    an event; ``event`` is ``"timeout"``). ``label`` is the text without trace marks, one
    line per item; ``highlighted`` lists the numbers of the trace steps that took this edge.
    """

    source: str
    target: str
    event: str
    label: str
    kind: EdgeKind = "transition"
    guard: str | None = None
    permission: str | None = None
    effect: str | None = None
    compensate: str | None = None
    irreversible: bool = False
    highlighted: tuple[int, ...] = ()
    transition: int | None = None
    timeout: str | None = None

    @property
    def label_lines(self) -> tuple[str, ...]:
        """The label split into its lines."""
        return tuple(self.label.split("\n"))


@dataclass(frozen=True, slots=True)
class Diagram:
    """A spec's state diagram as plain data: nodes in state order, edges in drawing order."""

    name: str
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]
    description: str = ""

    def node(self, id: str) -> DiagramNode:
        """The node of state ``id``; :class:`KeyError` if there is none."""
        for node in self.nodes:
            if node.id == id:
                return node
        raise KeyError(id)

    def edges_from(self, source: str) -> tuple[DiagramEdge, ...]:
        """The edges leaving ``source``, in drawing order."""
        return tuple(e for e in self.edges if e.source == source)

    @property
    def highlighted_edges(self) -> tuple[DiagramEdge, ...]:
        """The edges a trace took, ordered by their first step."""
        return tuple(
            sorted((e for e in self.edges if e.highlighted), key=lambda e: e.highlighted[0])
        )

    @property
    def visited(self) -> frozenset[str]:
        """The states a trace passed through (empty without a trace)."""
        return frozenset(s for e in self.edges if e.highlighted for s in (e.source, e.target))


# --------------------------------------------------------------------------- traces


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One step of a trace: an event, and optionally the states it should leave and enter."""

    event: str
    source: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    """A run to draw on the diagram; ``start`` is the first state (``None``: the initial state)."""

    steps: tuple[TraceStep, ...]
    start: str | None = None


@dataclass(frozen=True, slots=True)
class _Taken:
    """A step resolved against a spec: which edge it took."""

    step: int
    source: str
    target: str
    kind: EdgeKind
    transition: int | None


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace from a JSON or YAML file (by suffix; anything but ``.json`` is read as YAML).

    Two shapes are accepted, see :func:`trace_from_data`: a plan
    (``{"workflow": ..., "instance": ..., "steps": [{"event": ..., "params": {...}}]}``) or a
    counterexample (``{"start": ..., "steps": [{"event": ..., "from": ..., "to": ...}]}``).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DiagramError(f"cannot read trace `{file}`: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        what = "JSON" if file.suffix.lower() == ".json" else "YAML"
        raise DiagramError(f"trace `{file}` is not valid {what}") from exc
    return trace_from_data(data, str(file))


def trace_from_data(data: Any, source: str = "<trace>") -> Trace:
    """Build a :class:`Trace` from plain data: a mapping with ``steps`` and optional ``start``.

    A step is a mapping with ``event`` and optionally ``from`` and ``to`` (``params`` and any
    other key, such as ``actor``, are ignored: a diagram does not evaluate guards), or a bare
    event name. A bare list of steps is accepted too.
    """
    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, Mapping):
        raise DiagramError(f"trace `{source}` must be a mapping with `steps`")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list):
        raise DiagramError(f"trace `{source}` needs `steps`, a list of steps")
    start = data.get("start")
    if start is not None and not isinstance(start, str):
        raise DiagramError(f"trace `{source}`: `start` must name a state")
    steps: list[TraceStep] = []
    for number, raw in enumerate(raw_steps, start=1):
        if isinstance(raw, str):
            steps.append(TraceStep(raw))
            continue
        if not isinstance(raw, Mapping) or not isinstance(raw.get("event"), str):
            raise DiagramError(
                f"trace `{source}`: step {number} must be a mapping with an `event` name"
            )
        ends = [raw.get("from"), raw.get("to")]
        if any(end is not None and not isinstance(end, str) for end in ends):
            raise DiagramError(
                f"trace `{source}`: step {number} has a `from` or `to` that is not a state name"
            )
        steps.append(TraceStep(raw["event"], raw.get("from"), raw.get("to")))
    return Trace(tuple(steps), start)


def trace_path(spec: Spec, trace: Trace) -> list[tuple[int, int | None]]:
    """Map each step of ``trace`` onto ``spec`` as ``(step number, transition index)``, from 1.

    The walk starts at ``trace.start`` (default: the initial state). Each step takes a
    transition on its event from the current state; when the step names its target (``to``)
    only transitions into that state qualify, and when several still qualify the first in
    source order is taken (guards are not evaluated). A step whose event no transition from
    the current state carries may be ``"error"`` (the error exit) or, in a state whose timeout
    has no event, ``"timeout"``; both give ``None`` for the transition index.

    Raises :class:`DiagramError` naming the step when a step does not fit.
    """
    return [(taken.step, taken.transition) for taken in _walk(spec, trace)]


def _walk(spec: Spec, trace: Trace) -> list[_Taken]:
    current = trace.start if trace.start is not None else spec.initial_state.name
    if current not in spec.state_map:
        raise DiagramError(f"the trace starts in unknown state `{current}`")
    taken: list[_Taken] = []
    for number, step in enumerate(trace.steps, start=1):
        prefix = f"step {number} (`{step.event}`)"
        if step.source is not None and step.source != current:
            raise DiagramError(
                f"{prefix} leaves `{step.source}`, but the trace is in state `{current}`"
            )
        move = _move(spec, current, step, number, prefix)
        taken.append(move)
        current = move.target
    return taken


def _move(spec: Spec, current: str, step: TraceStep, number: int, prefix: str) -> _Taken:
    candidates = [t for t in spec.transitions_from(current) if t.event == step.event]
    if candidates:
        fitting = [t for t in candidates if step.target in (None, t.target)]
        if not fitting:
            targets = ", ".join(f"`{t.target}`" for t in candidates)
            raise DiagramError(
                f"{prefix} goes to `{step.target}`, "
                f"but from state `{current}` it leads to {targets}"
            )
        chosen = fitting[0]
        return _Taken(number, current, chosen.target, "transition", chosen.index)
    state = spec.state_map[current]
    if state.terminal is not None:
        raise DiagramError(f"{prefix} is not possible: state `{current}` is terminal")
    error_target = spec.error_target(current)
    special: EdgeKind | None = None
    if step.event == ERROR_EVENT:
        special = "error"
    elif step.event == TIMEOUT_EVENT and state.timeout is not None and state.timeout.event is None:
        special = "timeout"
    if special is None or error_target is None:
        possible = list(dict.fromkeys(t.event for t in spec.transitions_from(current)))
        if error_target is not None:
            possible.append(ERROR_EVENT)
        shown = ", ".join(f"`{e}`" for e in possible) or "no event"
        raise DiagramError(f"{prefix} is not possible from state `{current}`, which allows {shown}")
    if step.target not in (None, error_target):
        raise DiagramError(
            f"{prefix} goes to `{step.target}`, but the error exit of state `{current}` "
            f"leads to `{error_target}`"
        )
    return _Taken(number, current, error_target, special, None)


# --------------------------------------------------------------------------- building


def diagram_model(spec: Spec, trace: Trace | None = None) -> Diagram:
    """The diagram of ``spec``, with the steps of ``trace`` (if given) marked on its edges.

    Edges come in drawing order: for each state in declaration order, its transitions in
    source order, then its timeout edge (if any), then its error edge. Raises
    :class:`DiagramError` if the trace does not fit the spec (see :func:`trace_path`).
    """
    steps: dict[tuple[str, str, int | None], list[int]] = {}
    if trace is not None:
        for taken in _walk(spec, trace):
            steps.setdefault((taken.source, taken.kind, taken.transition), []).append(taken.step)

    nodes = tuple(
        DiagramNode(
            state.name,
            state.name,
            "initial" if state.initial else state.terminal or "normal",
            state.description,
        )
        for state in spec.states
    )
    edges: list[DiagramEdge] = []
    for state in spec.states:
        for t in spec.transitions_from(state.name):
            timeout = None
            if state.timeout is not None and state.timeout.event == t.event:
                timeout = format_duration(state.timeout.seconds)
            edges.append(
                _transition_edge(
                    state.name, t, timeout, steps.get((state.name, "transition", t.index), [])
                )
            )
        target = spec.error_target(state.name)
        if target is None:
            continue
        if state.timeout is not None and state.timeout.event is None:
            after = format_duration(state.timeout.seconds)
            edges.append(
                DiagramEdge(
                    state.name,
                    target,
                    TIMEOUT_EVENT,
                    f"⏱ after {after}",
                    "timeout",
                    highlighted=tuple(steps.get((state.name, "timeout", None), [])),
                    timeout=after,
                )
            )
        edges.append(
            DiagramEdge(
                state.name,
                target,
                ERROR_EVENT,
                "error",
                "error",
                highlighted=tuple(steps.get((state.name, "error", None), [])),
            )
        )
    return Diagram(spec.name, nodes, tuple(edges), spec.description)


#: Event-and-guard lines longer than this are wrapped at spaces.
_WRAP = 48


def _transition_edge(
    source: str, t: Transition, timeout: str | None, steps: Iterable[int]
) -> DiagramEdge:
    guard = t.guard.text if t.guard is not None else None
    head = t.event if guard is None else f"{t.event} [{guard}]"
    lines = textwrap.wrap(head, _WRAP, break_long_words=False, break_on_hyphens=False) or [head]
    lines.append(f"🔑 {t.permission}")
    if t.effect is not None:
        lines.append(f"⚙ {t.effect}")
    if t.compensate is not None:
        lines.append(f"↺ {t.compensate}")
    if t.irreversible:
        lines.append("⚠ irreversible")
    if timeout is not None:
        lines.append(f"⏱ after {timeout}")
    return DiagramEdge(
        source,
        t.target,
        t.event,
        "\n".join(lines),
        "transition",
        guard=guard,
        permission=t.permission,
        effect=t.effect,
        compensate=t.compensate,
        irreversible=t.irreversible,
        highlighted=tuple(steps),
        transition=t.index,
        timeout=timeout,
    )


def step_marker(steps: Sequence[int]) -> str:
    """``(1, 3)`` → ``"①③"``; numbers above 20 are written ``#21``."""
    return "".join(chr(0x2460 + n - 1) if 1 <= n <= 20 else f"#{n}" for n in steps)


# --------------------------------------------------------------------------- DOT

_FONT = "Helvetica"
_COLORS = {
    "success": ("#2e7d32", "#e3f5e4"),
    "failure": ("#c62828", "#fdecea"),
    "normal": ("#37474f", "#ffffff"),
    "initial": ("#37474f", "#ffffff"),
}
_ERROR_COLOR = "#9e9e9e"
_IRREVERSIBLE_COLOR = "#d84315"
_TRACE_COLOR = "#1565c0"
# Glyphs that common raster fonts (DejaVu) lack, and the stand-ins a PNG uses instead.
_RASTER_GLYPHS = {"🔑": "⚷", "⏱": "◷"}


def _dot_quote(text: str) -> str:
    """A DOT double-quoted string; newlines become centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_attrs(attrs: Mapping[str, str | float]) -> str:
    parts = []
    for key, value in attrs.items():
        text = _dot_quote(value) if isinstance(value, str) else f"{value:g}"
        parts.append(f"{key}={text}")
    return "[" + ", ".join(parts) + "]"


def to_dot(diagram: Diagram) -> str:
    """Graphviz DOT source for ``diagram`` (left to right; every id and label is quoted)."""
    ids = {node.id for node in diagram.nodes}
    entry = "__start__"
    while entry in ids:
        entry = f"_{entry}_"
    graph_attrs = {
        "rankdir": "LR",
        "fontname": _FONT,
        "label": diagram.name,
        "labelloc": "t",
        "tooltip": diagram.description or diagram.name,
    }
    node_attrs: dict[str, str | float] = {
        "shape": "box",
        "style": "rounded,filled",
        "fontname": _FONT,
        "fontsize": 12,
    }
    lines = [
        f"digraph {_dot_quote(diagram.name)} {{",
        f"  graph {_dot_attrs(graph_attrs)};",
        f"  node {_dot_attrs(node_attrs)};",
        f"  edge {_dot_attrs({'fontname': _FONT, 'fontsize': 10})};",
        f"  {_dot_quote(entry)} {_dot_attrs({'shape': 'point', 'width': 0.15, 'label': ''})};",
    ]
    visited = diagram.visited
    for node in diagram.nodes:
        color, fill = _COLORS[node.kind]
        attrs: dict[str, str | float] = {"label": node.label, "color": color, "fillcolor": fill}
        if node.kind == "success":
            attrs["shape"] = "doublecircle"
            attrs["style"] = "filled"
            attrs["fontcolor"] = color
        elif node.kind == "failure":
            attrs["shape"] = "doubleoctagon"
            attrs["style"] = "filled"
            attrs["fontcolor"] = color
        if node.id in visited:
            attrs["penwidth"] = 2.5
        if node.description:
            attrs["tooltip"] = node.description
        lines.append(f"  {_dot_quote(node.id)} {_dot_attrs(attrs)};")
    initial = [node.id for node in diagram.nodes if node.kind == "initial"]
    for node_id in initial:
        lines.append(f"  {_dot_quote(entry)} -> {_dot_quote(node_id)};")
    for edge in diagram.edges:
        ends = f"{_dot_quote(edge.source)} -> {_dot_quote(edge.target)}"
        lines.append(f"  {ends} {_dot_attrs(_dot_edge_attrs(edge))};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_edge_attrs(edge: DiagramEdge) -> dict[str, str | float]:
    marker = f"{step_marker(edge.highlighted)}\n" if edge.highlighted else ""
    attrs: dict[str, str | float] = {"label": marker + edge.label}
    if edge.kind == "error":
        attrs.update(style="dashed", color=_ERROR_COLOR, fontcolor=_ERROR_COLOR)
    elif edge.kind == "timeout":
        attrs.update(style="dotted", color=_ERROR_COLOR, fontcolor=_ERROR_COLOR)
    elif edge.irreversible:
        attrs.update(
            style="bold", color=_IRREVERSIBLE_COLOR, fontcolor=_IRREVERSIBLE_COLOR, penwidth=2.0
        )
    if edge.highlighted:
        attrs.update(color=_TRACE_COLOR, fontcolor=_TRACE_COLOR, penwidth=3.0)
        if edge.kind == "transition":
            attrs["style"] = "bold"
    if edge.guard is not None:
        attrs["tooltip"] = f"{edge.event} [{edge.guard}]"
    return attrs


# --------------------------------------------------------------------------- Mermaid

# Words with a meaning in stateDiagram-v2 that cannot be used as bare state ids.
_MERMAID_KEYWORDS = frozenset(
    {
        "state",
        "note",
        "end",
        "direction",
        "class",
        "classdef",
        "style",
        "as",
        "left",
        "right",
        "of",
        "over",
        "click",
        "hide",
        "graph",
        "statediagram",
        "default",
        "accdescr",
        "acctitle",
        "linkstyle",
        "callback",
        "call",
        "href",
        "fork",
        "join",
        "choice",
        "history",
    }
)
_MERMAID_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MERMAID_ENTITIES = {
    "#": "#35;",
    ";": "#59;",
    "<": "#lt;",
    ">": "#gt;",
    '"': "#quot;",
    "%": "#37;",
    "{": "#123;",
    "}": "#125;",
    ":": "#58;",
}


def _mermaid_text(text: str) -> str:
    """Text safe in a Mermaid label: specials as ``#code;`` entities, lines as ``<br/>``."""
    escaped = "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in text)
    return "<br/>".join(escaped.splitlines() or [""])


def _mermaid_ids(diagram: Diagram) -> dict[str, str]:
    ids: dict[str, str] = {}
    used = {n.id for n in diagram.nodes}
    for node in diagram.nodes:
        name = node.id
        if _MERMAID_ID.match(name) and name.lower() not in _MERMAID_KEYWORDS:
            ids[name] = name
            continue
        alias = f"state_{len(ids)}"
        while alias in used:
            alias = f"_{alias}"
        used.add(alias)
        ids[name] = alias
    return ids


def to_mermaid(diagram: Diagram) -> str:
    """Mermaid ``stateDiagram-v2`` source for ``diagram``.

    ``[*] --> initial`` marks the entry and ``terminal --> [*]`` each terminal; terminals get
    the classes ``success`` and ``failure``. Mermaid cannot style single arrows, so error
    edges are labelled ``↯ error``, timeouts ``⏱ after 15m``, irreversible steps carry
    ``⚠ irreversible``, and trace steps prefix their arrows with ``①``, ``②``, ... while the
    states they visit get the class ``traced``.
    """
    ids = _mermaid_ids(diagram)
    lines = ["stateDiagram-v2", "    direction LR"]
    for node in diagram.nodes:
        if ids[node.id] != node.id or node.label != node.id:
            lines.append(f'    state "{_mermaid_text(node.label)}" as {ids[node.id]}')
    for node in diagram.nodes:
        if node.kind == "initial":
            lines.append(f"    [*] --> {ids[node.id]}")
    for edge in diagram.edges:
        label = "↯ error" if edge.kind == "error" else edge.label
        if edge.highlighted:
            label = f"{step_marker(edge.highlighted)} {label}"
        lines.append(f"    {ids[edge.source]} --> {ids[edge.target]} : {_mermaid_text(label)}")
    for node in diagram.nodes:
        if node.kind in ("success", "failure"):
            lines.append(f"    {ids[node.id]} --> [*]")
    lines.append("")
    lines.append("    classDef success fill:#e3f5e4,stroke:#2e7d32,color:#2e7d32,stroke-width:2px")
    lines.append("    classDef failure fill:#fdecea,stroke:#c62828,color:#c62828,stroke-width:2px")
    for kind in ("success", "failure"):
        members = [ids[n.id] for n in diagram.nodes if n.kind == kind]
        if members:
            lines.append(f"    class {','.join(members)} {kind}")
    visited = [ids[n.id] for n in diagram.nodes if n.id in diagram.visited]
    if visited:
        lines.append(f"    classDef traced stroke:{_TRACE_COLOR},stroke-width:3px")
        lines.append(f"    class {','.join(visited)} traced")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- render


def render(spec: Spec, fmt: str, trace: Trace | None = None) -> bytes:
    """The diagram of ``spec``, with ``trace`` marked if given, as dot, mermaid, svg or png.

    Text formats are UTF-8 encoded. SVG and PNG are drawn by Graphviz ``dot``; a PNG writes
    ``⚷`` for ``🔑`` and ``◷`` for ``⏱``, which common raster fonts lack. Raises
    :class:`DiagramError` if ``fmt`` is unknown, ``dot`` is not installed or fails, or the
    trace does not fit the spec.
    """
    if fmt not in FORMATS:
        shown = ", ".join(f"`{f}`" for f in FORMATS)
        raise DiagramError(f"unknown diagram format `{fmt}`; expected one of {shown}")
    diagram = diagram_model(spec, trace)
    if fmt == "mermaid":
        return to_mermaid(diagram).encode("utf-8")
    dot = to_dot(diagram)
    if fmt == "dot":
        return dot.encode("utf-8")
    if fmt == "png":
        for glyph, stand_in in _RASTER_GLYPHS.items():
            dot = dot.replace(glyph, stand_in)
    try:
        data: bytes = graphviz.Source(dot).pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound as exc:
        raise DiagramError(
            f"cannot draw `{fmt}`: Graphviz `dot` is not installed or not on the PATH"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise DiagramError(
            f"Graphviz `dot` failed to draw `{fmt}` (exit status {exc.returncode})"
        ) from exc
    return data
