"""Plans as data: what a planner (a language model) proposes, and its JSON Schema.

A plan is ``{"workflow": ..., "instance": ..., "steps": [{"event": ..., "params": {...}}]}``
and nothing else. ``instance`` is optional; each step's ``params`` is optional (``{}``). A
param value is JSON data as the event's signature types it (decimals as strings or integers,
sets as arrays), or ``{"$open": true}``: a value not known until run time, which admission
checks for *every* value of the param's domain.

The acting principal is never part of a plan: it is the authenticated caller, passed beside
the plan. A plan that names an ``actor``, ``roles`` or any field not listed here — at the top
or in a step — is refused as unusable (:class:`PlanError`), as is JSON that is not a plan.
Checking what the steps *mean* (events, params, guards) is admission's job
(:mod:`railguard.verifier.admission`), which rejects with a reason a model can act on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from railguard.spec.codec import encode_value
from railguard.spec.model import Spec
from railguard.spec.source import JSONProblem, lone_surrogate, strict_json
from railguard.spec.types import Type

from .errors import VerifierError

__all__ = [
    "MAX_PLAN_BYTES",
    "MAX_PLAN_DEPTH",
    "OPEN",
    "Open",
    "Plan",
    "PlanError",
    "PlanStep",
    "event_signature",
    "loads_plan",
    "param_schema",
    "parse_plan",
    "plan_schema",
]

#: A plan's JSON text may be at most this long (bytes of UTF-8).
MAX_PLAN_BYTES: Final = 8_000_000
#: JSON nested deeper than this is not a plan (a plan needs five levels; sets one more).
MAX_PLAN_DEPTH: Final = 16

PLAN_FIELDS: Final = ("workflow", "instance", "steps")
STEP_FIELDS: Final = ("event", "params")
#: Fields a plan may never carry: who acts is decided by authentication, not by the model.
IDENTITY_FIELDS: Final = frozenset({"actor", "roles", "role", "principal", "user", "as", "on_behalf_of"})


class PlanError(VerifierError):
    """A plan is unusable: not JSON, not shaped like a plan, or naming who acts.

    ``code`` is ``not-json``, ``not-a-plan``, ``identity`` (it names an actor or roles),
    ``too-deep`` or ``too-large`` (more than :data:`MAX_PLAN_BYTES` of text); ``path`` is where in the plan, as keys and indexes.
    """

    def __init__(self, code: str, message: str, path: tuple[str | int, ...] = ()) -> None:
        self.code = code
        self.message = message
        self.path = path
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Open:
    """The marker of a param left open: its value is known only at run time."""

    def __repr__(self) -> str:
        return "OPEN"


#: The one open-param marker (``{"$open": true}`` in JSON).
OPEN: Final = Open()


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One proposed step: an event and its params (JSON values, or :data:`OPEN`)."""

    event: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def open_params(self) -> tuple[str, ...]:
        """The names of the params left open, in order."""
        return tuple(name for name, value in self.params.items() if value is OPEN)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "params": {k: _json_param(v) for k, v in self.params.items()}}


@dataclass(frozen=True, slots=True)
class Plan:
    """A proposed sequence of steps for ``workflow`` (on ``instance``, if it names one)."""

    workflow: str
    steps: tuple[PlanStep, ...]
    instance: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON data (the inverse of :func:`parse_plan`)."""
        data: dict[str, Any] = {"workflow": self.workflow, "steps": [s.to_json() for s in self.steps]}
        if self.instance is not None:
            data["instance"] = self.instance
        return data


def _json_param(value: Any) -> Any:
    if value is OPEN:
        return {"$open": True}
    if isinstance(value, Decimal | frozenset):
        return encode_value(value)
    return value


def _show(name: object) -> str:
    text = str(name)
    return text if len(text) <= 40 else text[:40] + "…"


def _refuse_fields(data: Mapping[str, Any], allowed: tuple[str, ...], where: str, path: tuple[str | int, ...]) -> None:
    for key in data:
        if not isinstance(key, str) or key in allowed:
            continue
        if key.strip().lower() in IDENTITY_FIELDS:
            raise PlanError(
                "identity",
                f"{where} names `{key}`, but who acts is the authenticated caller: remove the `{key}` field",
                (*path, key),
            )
        raise PlanError("not-a-plan", f"{where} has an unknown field `{_show(key)}` (allowed: {', '.join(allowed)})", (*path, key))


def _unusable_text(data: Any, limit: int) -> tuple[str, str] | None:
    """``("too-deep", "")`` if ``data`` nests more than ``limit`` levels, ``("not-unicode",
    text)`` for the first string (key or value) that is not valid Unicode (a lone surrogate),
    else ``None``; one walk, without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if type(item) is str:
            if not item.isascii() and lone_surrogate(item) is not None:
                return ("not-unicode", item)
        elif isinstance(item, dict):
            if depth > limit:
                return ("too-deep", "")
            for key, value in item.items():
                if type(key) is str and not key.isascii() and lone_surrogate(key) is not None:
                    return ("not-unicode", key)
                if isinstance(value, str | dict | list):
                    push((value, depth + 1))
        elif isinstance(item, list):
            if depth > limit:
                return ("too-deep", "")
            for value in item:
                if isinstance(value, str | dict | list):
                    push((value, depth + 1))
        elif isinstance(item, str) and lone_surrogate(item) is not None:  # a str subclass
            return ("not-unicode", item)
    return None


def parse_plan(data: Any) -> Plan:
    """A :class:`Plan` from JSON data, or :class:`PlanError` if it is not one.

    Only the shape is checked here (fields, their JSON types); events and param values are
    checked by admission, which can say what to do instead.
    """
    unusable = _unusable_text(data, MAX_PLAN_DEPTH)
    if unusable is not None:
        kind, broken = unusable
        if kind == "too-deep":
            raise PlanError("too-deep", f"the plan nests deeper than {MAX_PLAN_DEPTH} levels, which no plan needs")
        raise PlanError("not-a-plan", f"the plan has text that is not valid Unicode (a lone surrogate in `{_show(ascii(broken)[1:-1])}`)")
    return _shaped(data)


def _shaped(data: Any) -> Plan:
    """The plan in ``data``, whose depth and text are already checked."""
    if not isinstance(data, dict):
        raise PlanError("not-a-plan", f"a plan is a JSON object with `workflow` and `steps`, not {_kind(data)}")
    _refuse_fields(data, PLAN_FIELDS, "the plan", ())
    workflow = data.get("workflow")
    if not isinstance(workflow, str) or not workflow:
        raise PlanError("not-a-plan", "the plan's `workflow` must be the name of a workflow (a non-empty string)", ("workflow",))
    instance = data.get("instance")
    if instance is not None and (not isinstance(instance, str) or not instance):
        raise PlanError("not-a-plan", "the plan's `instance` must be an instance id (a non-empty string) or absent", ("instance",))
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list):
        raise PlanError("not-a-plan", "the plan's `steps` must be a list of steps", ("steps",))
    steps = []
    for index, raw in enumerate(raw_steps):
        where = f"step {index + 1}"
        path: tuple[str | int, ...] = ("steps", index)
        if not isinstance(raw, dict):
            raise PlanError("not-a-plan", f"{where} must be an object with `event` and `params`, not {_kind(raw)}", path)
        _refuse_fields(raw, STEP_FIELDS, where, path)
        event = raw.get("event")
        if not isinstance(event, str):
            raise PlanError("not-a-plan", f"{where} needs an `event` (a string)", (*path, "event"))
        params = raw.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise PlanError("not-a-plan", f"the `params` of {where} must be an object, not {_kind(params)}", (*path, "params"))
        steps.append(PlanStep(event, {str(k): _param_value(v) for k, v in params.items()}))
    return Plan(workflow, tuple(steps), instance)


def _param_value(value: Any) -> Any:
    if isinstance(value, dict) and value == {"$open": True}:
        return OPEN
    return value


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "an object"


def loads_plan(text: str | bytes) -> Plan:
    """Parse a plan's JSON text (bounded in size and depth); :class:`PlanError` if unusable.

    Numbers with a fraction are read as exact decimals, so ``100.5`` stays ``100.5``; ``NaN``
    and ``Infinity`` are not JSON and are refused.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_PLAN_BYTES:
            raise PlanError("too-large", f"the plan is larger than {MAX_PLAN_BYTES} bytes: send a shorter plan")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PlanError("not-json", "the plan is not UTF-8 text") from None
    if len(text) > MAX_PLAN_BYTES:
        raise PlanError("too-large", f"the plan is larger than {MAX_PLAN_BYTES} bytes: send a shorter plan")
    try:
        data = strict_json(text, MAX_PLAN_DEPTH)
    except JSONProblem as exc:
        if exc.kind == "too-deep":
            raise PlanError("too-deep", f"the plan nests deeper than {MAX_PLAN_DEPTH} levels, which no plan needs") from None
        raise PlanError("not-json" if exc.kind == "not-json" else "not-a-plan", f"the plan {exc.message}") from None
    return _shaped(data)  # strict_json bounded the depth and refused lone surrogates


# ---------------------------------------------------------------------- JSON Schema


def event_signature(spec: Spec, event: str) -> tuple[Any, ...]:
    """The params of ``event`` as the runtime checks them (those of its first transition)."""
    for transition in spec.transitions:
        if transition.event == event:
            return transition.params
    return ()


def _decimal_pattern(declared: Type) -> str:
    sign = "" if declared.min is not None and Decimal(declared.min) >= 0 else "-?"
    if declared.places == 0:
        return f"^{sign}[0-9]+$"
    fraction = r"(\.[0-9]+)?" if declared.places is None else rf"(\.[0-9]{{1,{declared.places}}})?"
    return f"^{sign}[0-9]+{fraction}$"


def param_schema(declared: Type, *, strict: bool = False, description: str = "") -> dict[str, Any]:
    """The JSON Schema of a value of ``declared`` type.

    Decimals are strings with a pattern (exact, never a float), sets are arrays with
    ``uniqueItems``. ``strict`` keeps to the keywords OpenAI's strict mode accepts: a string's
    length bound becomes a pattern, and uniqueness of set items is stated in the description
    (admission enforces both either way).
    """
    kind = declared.kind
    notes = [description] if description else []
    schema: dict[str, Any]
    if kind == "int":
        schema = {"type": "integer"}
        if declared.min is not None:
            schema["minimum"] = int(declared.min)
        if declared.max is not None:
            schema["maximum"] = int(declared.max)
    elif kind == "decimal":
        schema = {"type": "string", "pattern": _decimal_pattern(declared)}
        notes.append(f"an exact decimal written as a string, {declared.describe()}" + (f", at most {declared.places} places" if declared.places is not None else ""))
    elif kind == "bool":
        schema = {"type": "boolean"}
    elif kind == "enum":
        schema = {"type": "string", "enum": list(declared.values)}
    elif kind == "str":
        schema = {"type": "string"}
        if declared.max_length is not None:
            if strict:
                schema["pattern"] = f"^[\\s\\S]{{0,{declared.max_length}}}$"
            else:
                schema["maxLength"] = declared.max_length
            notes.append(f"at most {declared.max_length} characters")
    elif kind == "principal":
        schema = {"type": "string"} if strict else {"type": "string", "minLength": 1}
        notes.append("a principal id")
    else:
        assert declared.of is not None
        schema = {"type": "array", "items": param_schema(declared.of, strict=strict)}
        if not strict:
            schema["uniqueItems"] = True
        if declared.max_size is not None:
            schema["maxItems"] = declared.max_size
        notes.append("a set: each item at most once")
    if notes:
        schema["description"] = "; ".join(notes)
    return schema


def params_schema(params: tuple[Any, ...], *, strict: bool = False) -> dict[str, Any]:
    """The object schema of an event's params. ``strict``: every param required, optional
    ones nullable (OpenAI strict mode); otherwise optional params are simply not required."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in params:
        schema = param_schema(param.type, strict=strict)
        if not param.required:
            default = encode_value(param.default)
            note = f"optional (default {json.dumps(default)})"
            schema["description"] = f"{schema['description']}; {note}" if "description" in schema else note
            if strict:
                schema = _nullable(schema)
        if strict or param.required:
            required.append(param.name)
        properties[param.name] = schema
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def plan_schema(spec: Spec | None = None, *, events: tuple[str, ...] | None = None, strict: bool = False) -> dict[str, Any]:
    """The JSON Schema of a plan; of a plan *for* ``spec`` (its name, its events and their
    params; only ``events`` if given) when a spec is given."""
    if spec is None:
        step: dict[str, Any] = {
            "type": "object",
            "properties": {"event": {"type": "string"}, "params": {"type": "object"}},
            "required": ["event"],
            "additionalProperties": False,
        }
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "railguard plan",
            "type": "object",
            "properties": {
                "workflow": {"type": "string", "minLength": 1},
                "instance": {"type": "string", "minLength": 1},
                "steps": {"type": "array", "items": step},
            },
            "required": ["workflow", "steps"],
            "additionalProperties": False,
        }
    chosen = spec.events if events is None else events
    options = []
    for event in chosen:
        options.append({
            "type": "object",
            "description": _event_description(spec, event),
            "properties": {
                "event": {"type": "string", "enum": [event]},
                "params": params_schema(event_signature(spec, event), strict=strict),
            },
            "required": ["event", "params"],
            "additionalProperties": False,
        })
    steps: dict[str, Any] = {"type": "array", "items": {"anyOf": options} if options else {"type": "object", "properties": {}, "required": [], "additionalProperties": False}}
    if not options:
        steps["maxItems"] = 0
    instance: dict[str, Any] = {"type": ["string", "null"], "description": "the instance id, or null for the instance this conversation is about"} if strict else {"type": "string", "minLength": 1}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "workflow": {"type": "string", "enum": [spec.name]},
            "instance": instance,
            "steps": steps,
        },
        "required": ["workflow", "instance", "steps"] if strict else ["workflow", "steps"],
        "additionalProperties": False,
    }
    if not strict:
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"railguard plan for `{spec.name}`", **schema}
    return schema


def _event_description(spec: Spec, event: str) -> str:
    parts = [t.description for t in spec.transitions if t.event == event and t.description]
    text = parts[0] if parts else f"fire `{event}`"
    return f"{text} (event `{event}` of workflow `{spec.name}`)"
