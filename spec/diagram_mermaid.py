"""Mermaid ``stateDiagram-v2`` for a :class:`~railguard.spec.diagram_model.Diagram` (its only input)."""

from __future__ import annotations

import re

from .diagram_model import TRACE_COLOR, Diagram, step_marker

__all__ = ["to_mermaid"]

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
        lines.append(f"    classDef traced stroke:{TRACE_COLOR},stroke-width:3px")
        lines.append(f"    class {','.join(visited)} traced")
    return "\n".join(lines) + "\n"


