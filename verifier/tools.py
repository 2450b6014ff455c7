"""Tool definitions for LLM APIs, generated from a spec, so a planner is constrained before it
speaks.

One tool per event (its params typed from their declared types and domains, its description
from the spec) and one ``submit_plan`` tool taking a whole plan (see
:mod:`railguard.verifier.plans`). Formats:

- ``openai``: Chat Completions function tools in strict mode — every object has
  ``additionalProperties: false``, every property is ``required``, optional params are
  ``[type, "null"]`` (``null`` means "use the default"), and only keywords strict mode accepts
  are used (a string's length bound becomes a ``pattern``; set uniqueness is described).
- ``anthropic``: Messages API tools with ``input_schema``.
- ``mcp``: Model Context Protocol tools with ``inputSchema`` and honest annotations:
  ``readOnlyHint`` for a step with no effect that changes no variable and keeps the state,
  ``destructiveHint`` for an irreversible step, ``idempotentHint`` for a step that leaves the
  instance as it was (a self-loop without effect or assignment).
- ``json-schema``: the plain JSON Schema of each tool's input.

Tool names fit ``[A-Za-z0-9_-]{1,64}``. An event's tool is named after the event (event ids
are already letters, digits and ``_``); a name longer than 64 characters is cut to 55 and
given ``_`` plus 8 hex digits of its SHA-256, and an event named ``submit_plan`` is offered as
``event_submit_plan``. :func:`tool_names` returns the mapping from tool name back to event.
``roles`` lists only the events those roles may ever fire (some transition they are permitted).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from railguard.spec.model import Spec, Transition
from railguard.spec.semantics import permitted

from .plans import event_signature, params_schema, plan_schema

__all__ = ["FORMATS", "SUBMIT_PLAN", "TOOL_NAME", "ToolFormat", "event_for_tool", "fit_tool_name", "tool_names", "tools"]

ToolFormat = Literal["openai", "anthropic", "mcp", "json-schema"]
FORMATS: tuple[ToolFormat, ...] = ("openai", "anthropic", "mcp", "json-schema")
SUBMIT_PLAN: Final = "submit_plan"
TOOL_NAME: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")


def _tool_name(event: str) -> str:
    if event == SUBMIT_PLAN:
        return f"event_{SUBMIT_PLAN}"
    return fit_tool_name(event)


def fit_tool_name(text: str) -> str:
    """``text`` as a tool name every LLM API takes (``[A-Za-z0-9_-]{1,64}``): itself if it
    fits, else its first 55 characters with others replaced by ``_``, then ``_`` and 8 hex
    digits of its SHA-256 (so different texts keep different names)."""
    if TOOL_NAME.fullmatch(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[:55]}_{digest}"


def _events(spec: Spec, roles: Iterable[str] | None) -> tuple[str, ...]:
    if roles is None:
        return spec.events
    held = frozenset(roles)
    return tuple(e for e in spec.events if any(t.event == e and permitted(spec, t, held) for t in spec.transitions))


def tool_names(spec: Spec, roles: Iterable[str] | None = None) -> dict[str, str]:
    """Tool name → event, for the events offered (all, or those ``roles`` may ever fire)."""
    return {_tool_name(event): event for event in _events(spec, roles)}


def event_for_tool(spec: Spec, name: str) -> str | None:
    """The event a tool name stands for (``None`` for ``submit_plan`` or an unknown name)."""
    return tool_names(spec).get(name)


def _transitions(spec: Spec, event: str) -> list[Transition]:
    return [t for t in spec.transitions if t.event == event]


def _description(spec: Spec, event: str) -> str:
    ts = _transitions(spec, event)
    told = next((t.description for t in ts if t.description), "")
    moves = "; ".join(f"from {', '.join(f'`{s}`' for s in t.sources)} to `{t.target}`" for t in ts)
    parts = [told or f"Fire `{event}` on a `{spec.name}` instance.", f"Moves {moves}."]
    guards = [t.guard.text for t in ts if t.guard is not None]
    if guards:
        parts.append("Allowed only when " + " or ".join(f"`{g}`" for g in guards) + ".")
    if any(t.irreversible for t in ts):
        parts.append("Irreversible.")
    parts.append("Runs as you; the gate checks every call.")
    return " ".join(parts)


def _annotations(spec: Spec, event: str) -> dict[str, Any]:
    ts = _transitions(spec, event)
    keeps = all(t.is_self_loop and t.effect is None and not t.assign for t in ts)
    return {
        "title": event.replace("_", " "),
        "readOnlyHint": keeps,
        "destructiveHint": any(t.irreversible for t in ts),
        "idempotentHint": keeps,
        "openWorldHint": any(t.effect is not None for t in ts),
    }


def _plan_description(spec: Spec) -> str:
    text = spec.description or f"the `{spec.name}` workflow"
    return (
        f"Submit a whole plan for {text.rstrip('.')}: the steps, in order. It is admitted only if "
        "every step is allowed for you from the state the steps before it reach; otherwise the "
        "answer says which step fails, why, and what you may do instead."
    )


def tools(spec: Spec, fmt: ToolFormat, *, roles: Iterable[str] | None = None, submit_plan: bool = True) -> list[dict[str, Any]]:
    """The tool definitions of ``spec`` in ``fmt``: one per event (those ``roles`` may ever
    fire, when given), then ``submit_plan`` (unless ``submit_plan`` is false)."""
    strict = fmt == "openai"
    events = _events(spec, roles)
    entries: list[tuple[str, str, dict[str, Any], Mapping[str, Any] | None]] = []
    for event in events:
        schema = params_schema(event_signature(spec, event), strict=strict)
        entries.append((_tool_name(event), _description(spec, event), schema, _annotations(spec, event)))
    if submit_plan:
        plan = plan_schema(spec, events=events, strict=strict)
        plan.pop("$schema", None)
        plan.pop("title", None)
        entries.append((SUBMIT_PLAN, _plan_description(spec), plan, None))
    out: list[dict[str, Any]] = []
    for name, description, schema, hints_of in entries:
        if fmt == "openai":
            out.append({"type": "function", "function": {"name": name, "description": description, "parameters": schema, "strict": True}})
        elif fmt == "anthropic":
            out.append({"name": name, "description": description, "input_schema": schema})
        elif fmt == "mcp":
            hints = dict(hints_of) if hints_of is not None else {"title": "submit plan", "readOnlyHint": False, "destructiveHint": any(t.irreversible for t in spec.transitions), "idempotentHint": False, "openWorldHint": any(t.effect is not None for t in spec.transitions)}
            out.append({"name": name, "description": description, "inputSchema": schema, "annotations": hints})
        else:
            out.append({"name": name, "description": description, "schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}})
    return out
