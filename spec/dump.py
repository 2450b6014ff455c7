"""Canonical dumps of a spec (plain data, YAML, JSON) and its content hash.

The canonical form writes every expression in canonical text (:func:`~railguard.spec.expr.unparse`),
every default explicitly and every mapping in a fixed key order, so that
``loads(dumps(spec)) == spec`` and the hash ignores formatting, comments and key order.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import yaml

from .codec import canonical_json
from .model import Spec, Transition, Variable
from .types import Type, Value

__all__ = ["content_hash", "dump_data", "dumps", "format_duration"]


def dump_data(spec: Spec) -> dict[str, Any]:
    """The spec as canonical plain data (JSON-compatible: decimals become strings)."""
    data: dict[str, Any] = {"railguard": spec.version, "name": spec.name}
    if spec.description:
        data["description"] = spec.description
    data["roles"] = {role.name: list(role.permissions) for role in spec.roles}
    data["variables"] = {v.name: _variable(v) for v in spec.variables}
    states: dict[str, Any] = {}
    for state in spec.states:
        body: dict[str, Any] = {}
        if state.initial:
            body["initial"] = True
        if state.terminal is not None:
            body["terminal"] = state.terminal
        if state.on_error is not None:
            body["on_error"] = state.on_error
        if state.timeout is not None:
            body["timeout"] = {"after": format_duration(state.timeout.seconds)}
            if state.timeout.event is not None:
                body["timeout"]["event"] = state.timeout.event
        if state.description:
            body["description"] = state.description
        states[state.name] = body
    data["states"] = states
    if spec.on_error is not None:
        data["on_error"] = spec.on_error
    data["transitions"] = [_transition(t) for t in spec.transitions]
    if spec.invariants:
        invariants = []
        for inv in spec.invariants:
            item: dict[str, Any] = {"name": inv.name}
            if inv.kind == "precedes":
                item["precedes"] = {"first": inv.first, "then": inv.then}
            else:
                assert inv.expr is not None
                item[inv.kind] = inv.expr.text
            if inv.description:
                item["description"] = inv.description
            invariants.append(item)
        data["invariants"] = invariants
    if spec.exclusive_roles:
        data["exclusive_roles"] = [list(group) for group in spec.exclusive_roles]
    if spec.waivers:
        data["waivers"] = [
            {"check": w.check, "target": w.target, "reason": w.reason} for w in spec.waivers
        ]
    return data


def dumps(spec: Spec, fmt: str = "yaml") -> str:
    """Canonical YAML (default) or JSON text of the spec; loading it gives an equal spec."""
    data = dump_data(spec)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt != "yaml":
        raise ValueError(f"unknown format {fmt!r}: expected 'yaml' or 'json'")
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100))


class _Dumper(yaml.SafeDumper):
    """Block mappings everywhere; lists of scalars on one line (``[a, b]``)."""


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, value: dict[str, Any]) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=not value)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # YAML folds some line breaks (U+0085, U+2028, U+2029) in plain scalars; quote those strings.
    style = '"' if any(ch in value for ch in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def content_hash(spec: Spec) -> str:
    """``sha256:<hex>`` of :func:`~railguard.spec.codec.canonical_json` of the canonical form."""
    payload = canonical_json(dump_data(spec))
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def format_duration(seconds: int) -> str:
    """``5400`` → ``"1h30m"``."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _type(declared: Type) -> dict[str, Any]:
    body: dict[str, Any] = {"type": declared.kind}
    if declared.min is not None:
        body["min"] = _scalar(declared.min)
    if declared.max is not None:
        body["max"] = _scalar(declared.max)
    if declared.places is not None:
        body["places"] = declared.places
    if declared.values:
        body["values"] = list(declared.values)
    if declared.max_length is not None:
        body["max_length"] = declared.max_length
    if declared.of is not None:
        body["of"] = _type(declared.of)
    if declared.max_size is not None:
        body["max_size"] = declared.max_size
    return body


def _variable(variable: Variable) -> dict[str, Any]:
    body = _type(variable.type)
    if variable.initial is not None:
        body["initial"] = _value(variable.initial)
    if variable.context:
        body["context"] = True
    if variable.description:
        body["description"] = variable.description
    return body


def _transition(t: Transition) -> dict[str, Any]:
    body: dict[str, Any] = {"event": t.event}
    body["from"] = t.sources[0] if len(t.sources) == 1 else list(t.sources)
    body["to"] = t.target
    body["permission"] = t.permission
    if t.params:
        params: dict[str, Any] = {}
        for p in t.params:
            spec = _type(p.type)
            if not p.required:
                spec["default"] = _value(p.default)
            params[p.name] = spec
        body["params"] = params
    if t.guard is not None:
        body["guard"] = t.guard.text
    if t.assign:
        body["assign"] = {name: expr.text for name, expr in t.assign}
    if t.effect is not None:
        body["effect"] = t.effect
    if t.compensate is not None:
        body["compensate"] = t.compensate
    if t.irreversible:
        body["irreversible"] = True
    if t.description:
        body["description"] = t.description
    return body


def _scalar(value: int | Decimal) -> int | str:
    return str(value) if isinstance(value, Decimal) else value


def _value(value: Value) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset):
        return [_value(v) for v in sorted(value, key=lambda v: (type(v).__name__, v))]
    return value
