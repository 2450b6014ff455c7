"""The intermediate form of a state diagram: plain frozen data, nothing else.

:mod:`railguard.spec.diagram_extract` builds a :class:`Diagram` from a spec (and a
:class:`Trace`); the renderers (:mod:`railguard.spec.diagram_dot`,
:mod:`railguard.spec.diagram_mermaid`) read only this form, so what a diagram shows is
decided once, here and in the extractor, and every output format shows the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import SpecError

__all__ = [
    "ERROR_EVENT",
    "TIMEOUT_EVENT",
    "TRACE_COLOR",
    "Diagram",
    "DiagramEdge",
    "DiagramError",
    "DiagramNode",
    "EdgeKind",
    "NodeKind",
    "Trace",
    "TraceStep",
    "step_marker",
]

NodeKind = Literal["initial", "normal", "success", "failure"]
EdgeKind = Literal["transition", "error", "timeout"]

#: The colour of a trace's steps, the same in every renderer.
TRACE_COLOR = "#1565c0"

#: The pseudo-event of a trace step that takes the error exit.
ERROR_EVENT = "error"
#: The pseudo-event of a trace step that takes a timeout without an event.
TIMEOUT_EVENT = "timeout"


class DiagramError(SpecError):
    """A diagram could not be drawn: unknown format, no ``dot``, or a trace that does not fit."""


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


def step_marker(steps: Sequence[int]) -> str:
    """``(1, 3)`` → ``"①③"``; numbers above 20 are written ``#21``."""
    return "".join(chr(0x2460 + n - 1) if 1 <= n <= 20 else f"#{n}" for n in steps)


