"""Graphviz DOT for a :class:`~railguard.spec.diagram_model.Diagram` (its only input)."""

from __future__ import annotations

from collections.abc import Mapping

from .diagram_model import TRACE_COLOR, Diagram, DiagramEdge, step_marker

__all__ = ["RASTER_GLYPHS", "to_dot"]

_FONT = "Helvetica"
_COLORS = {
    "success": ("#2e7d32", "#e3f5e4"),
    "failure": ("#c62828", "#fdecea"),
    "normal": ("#37474f", "#ffffff"),
    "initial": ("#37474f", "#ffffff"),
}
_ERROR_COLOR = "#9e9e9e"
_IRREVERSIBLE_COLOR = "#d84315"
# Glyphs that common raster fonts (DejaVu) lack, and the stand-ins a PNG uses instead.
RASTER_GLYPHS = {"🔑": "⚷", "⏱": "◷"}


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
        attrs.update(color=TRACE_COLOR, fontcolor=TRACE_COLOR, penwidth=3.0)
        if edge.kind == "transition":
            attrs["style"] = "bold"
    if edge.guard is not None:
        attrs["tooltip"] = f"{edge.event} [{edge.guard}]"
    return attrs


