"""Values to JSON and back, exactly: decimals as strings, sets as sorted lists.

Encoding is canonical (sorted keys, no spaces) so audit payloads are byte-identical for the
same inputs on every store; decoding uses the spec's declared types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from railguard.spec import Spec
from railguard.spec.types import Type, Value

__all__ = ["canonical_json", "decode_params", "decode_values", "encode_value", "encode_values"]


def encode_value(value: Value) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset):
        return sorted((encode_value(v) for v in value), key=lambda v: (type(v).__name__, str(v)))
    return value


def encode_values(values: Mapping[str, Value]) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in values.items()}


def decode_value(declared: Type, raw: Any) -> Value:
    if raw is None:
        return None
    if declared.kind == "decimal":
        return Decimal(str(raw))
    if declared.kind == "set":
        assert declared.of is not None
        return frozenset(decode_value(declared.of, v) for v in raw)  # type: ignore[misc]
    return raw  # type: ignore[no-any-return]


def decode_values(spec: Spec, raw: Mapping[str, Any]) -> dict[str, Value]:
    variables = spec.variable_map
    return {k: decode_value(variables[k].type, v) if k in variables else v for k, v in raw.items()}


def decode_params(spec: Spec, event: str, raw: Mapping[str, Any]) -> dict[str, Value]:
    signature: dict[str, Type] = {}
    for transition in spec.transitions:
        if transition.event == event:
            signature = {p.name: p.type for p in transition.params}
            break
    return {k: decode_value(signature[k], v) if k in signature else v for k, v in raw.items()}


def canonical_json(data: Any) -> str:
    """Sorted keys, compact separators, UTF-8 kept: the bytes the audit chain hashes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    raise TypeError(f"cannot encode {type(value).__name__} in an audit record")
