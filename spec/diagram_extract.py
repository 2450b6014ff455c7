"""Extracting a state diagram from a spec: a :class:`Diagram`, with a trace marked on it.

:func:`diagram_model` turns a :class:`~railguard.spec.model.Spec` (and optionally a
:class:`Trace`, such as a plan or a counterexample) into the intermediate form of
:mod:`railguard.spec.diagram_model`. What is drawn:

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

Traces are read from plans and counterexamples by :func:`load_trace` and
:func:`trace_from_data`, and mapped onto a spec's transitions by :func:`trace_path`.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .diagram_model import (
    ERROR_EVENT,
    TIMEOUT_EVENT,
    Diagram,
    DiagramEdge,
    DiagramError,
    DiagramNode,
    EdgeKind,
    Trace,
    TraceStep,
)
from .dump import format_duration
from .errors import LoadError
from .limits import MAX_BYTES
from .model import Spec, Transition
from .source import read_text

__all__ = ["diagram_model", "load_trace", "trace_from_data", "trace_path"]


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
        with file.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DiagramError(f"cannot read trace `{file}`: {exc.strerror or exc}") from exc
    what = "JSON" if file.suffix.lower() == ".json" else "YAML"
    if len(raw) > MAX_BYTES:
        raise DiagramError(f"trace `{file}` is larger than {MAX_BYTES:,} bytes")
    try:
        # The spec reader's bounds hold for traces too (aliases, nesting, numbers, texts).
        data = read_text(raw.decode("utf-8-sig"), str(file), what.lower()).data
    except UnicodeDecodeError as exc:
        raise DiagramError(f"trace `{file}` is not valid {what}: it is not UTF-8 text") from exc
    except LoadError as exc:
        reason = exc.problems[0].message
        raise DiagramError(f"trace `{file}` is not valid {what}: {reason}") from exc
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
