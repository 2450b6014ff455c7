"""State diagrams of a spec: extract, an intermediate form of plain data, renderers.

The pipeline has three stages, each in its own module:

1. extract (:mod:`railguard.spec.diagram_extract`): :func:`diagram_model` turns a spec and an
   optional :class:`Trace` (a plan or a counterexample) into a :class:`Diagram`;
2. the intermediate form (:mod:`railguard.spec.diagram_model`): frozen nodes and edges, plain
   data that says everything a drawing shows;
3. renderers, which read only that form: :func:`to_dot` (Graphviz DOT,
   :mod:`railguard.spec.diagram_dot`) and :func:`to_mermaid` (Mermaid ``stateDiagram-v2``,
   :mod:`railguard.spec.diagram_mermaid`); SVG and PNG are DOT drawn by Graphviz ``dot``.

:func:`render` runs the pipeline and returns the bytes of any format::

    spec = load("examples/refund.yaml")
    trace = Trace((TraceStep("request"), TraceStep("approve"), TraceStep("pay")))
    svg = render(spec, "svg", trace)

Every name is importable from this module, as before the split.
"""

from __future__ import annotations

import subprocess

from .diagram_dot import RASTER_GLYPHS, to_dot
from .diagram_extract import diagram_model, load_trace, trace_from_data, trace_path
from .diagram_mermaid import to_mermaid
from .diagram_model import (
    Diagram,
    DiagramEdge,
    DiagramError,
    DiagramNode,
    EdgeKind,
    NodeKind,
    Trace,
    TraceStep,
    step_marker,
)
from .model import Spec

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

#: The formats :func:`render` produces.
FORMATS: tuple[str, ...] = ("dot", "mermaid", "svg", "png")


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
        for glyph, stand_in in RASTER_GLYPHS.items():
            dot = dot.replace(glyph, stand_in)
    import graphviz  # only images need it

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
