"""The one value codec: spec values to JSON and back, exactly.

Decimals become strings, sets sorted lists (sorted by type name, then text, so mixed sets
still have one order), everything else stays as JSON has it. :func:`canonical_json` is the
one encoding of everything railguard hashes or compares byte for byte (content hashes, audit
payloads, reports, counterexamples): sorted keys, no spaces, UTF-8 kept. Decoding uses the
spec's declared types.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from railguard.spec.model import Spec
from railguard.spec.types import Type, Value

__all__ = [
    "canonical_json",
    "decode_params",
    "decode_value",
    "decode_values",
    "encode_value",
    "encode_values",
]


def encode_value(value: Value) -> Any:
    """A value as JSON data: decimals as strings, sets as sorted lists."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset):
        return sorted((encode_value(v) for v in value), key=lambda v: (type(v).__name__, str(v)))
    return value


def encode_values(values: Mapping[str, Value]) -> dict[str, Any]:
    """Each value of a mapping encoded by :func:`encode_value` (a value JSON has as it is — a
    plain int, text, boolean or null — without the call)."""
    plain = _PLAIN
    return {k: v if v.__class__ in plain else encode_value(v) for k, v in values.items()}


#: Value classes :func:`encode_value` hands back unchanged.
_PLAIN = frozenset({int, str, bool, type(None)})


def decode_value(declared: Type, raw: Any) -> Value:
    """JSON data back to a value of the declared type.

    Data that does not have the shape of the type is returned unchanged, never guessed at:
    a set is decoded from a list only (the text ``"ab"`` is not the set ``{a, b}``), a decimal
    from a number or from text that reads as a finite number only (never from a boolean).
    The caller's domain check (:meth:`Type.contains`) then refuses what is left undecoded.
    """
    if raw is None:
        return None
    unchanged: Value = raw  # what does not fit is handed back for the domain check to refuse
    if declared.kind == "decimal":
        if isinstance(raw, bool) or not isinstance(raw, int | str | Decimal | float):
            return unchanged
        try:
            number = Decimal(str(raw).strip())
        except ArithmeticError:
            return unchanged
        return number if number.is_finite() else unchanged
    if declared.kind == "set":
        if not isinstance(raw, list | tuple | frozenset | set):
            return unchanged
        assert declared.of is not None
        return frozenset(decode_value(declared.of, v) for v in raw)  # type: ignore[misc]
    return unchanged


def decode_values(spec: Spec, raw: Mapping[str, Any]) -> dict[str, Value]:
    """Variables decoded by their declared types; unknown names pass through unchanged."""
    variables = spec.variable_map
    return {k: decode_value(variables[k].type, v) if k in variables else v for k, v in raw.items()}


def decode_params(spec: Spec, event: str, raw: Mapping[str, Any]) -> dict[str, Value]:
    """An event's params decoded by its signature; unknown names pass through unchanged."""
    signature: dict[str, Type] = {}
    for transition in spec.transitions:
        if transition.event == event:
            signature = {p.name: p.type for p in transition.params}
            break
    return {k: decode_value(signature[k], v) if k in signature else v for k, v in raw.items()}


def canonical_json(data: Any) -> str:
    """Sorted keys, compact separators, UTF-8 kept: the bytes the audit chain hashes.

    Exactly ``json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    default=...)``: where the interpreter has json's C encoder, it is called directly (the
    encoder ``json.dumps`` itself would build, with a fresh circular-reference check each
    call), without the per-call setup of a new ``JSONEncoder``."""
    kind = type(data)
    if kind is str:  # as JSONEncoder.encode does for a lone string
        return _encode_text(data)
    if kind is int:  # as the C encoder does: the int's repr
        return int.__repr__(data)
    if data is None:
        return "null"
    if kind is dict and not data:
        return "{}"
    if kind is list and not data:
        return "[]"
    if isinstance(data, str):  # a str subclass (an enum's member, say): as JSONEncoder.encode does
        return _encode_text(data)
    if _make_encoder is None:  # pragma: no cover - an interpreter without json's C encoder
        return _slow_json(data)
    return "".join(_make_encoder({}, _default, _encode_text, None, ":", ",", True, False, True)(data, 0))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset | set):
        return encode_value(frozenset(value))
    raise TypeError(f"cannot encode {type(value).__name__} in an audit record")


def _slow_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


#: The string encoder ``json.dumps`` uses with ``ensure_ascii=False``, and json's C encoder —
#: kept only if it encodes a probe exactly as ``json.dumps`` does (else None: the slow path).
_encode_text = json.encoder.encode_basestring
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_PROBE = {"b": [1, 2.5, -0.0, True, None, "é\u2028\"\n"], "a": {"z": Decimal("1.10"), "y": frozenset({"x", 2})}, "": 10**20}
try:
    if canonical_json(_PROBE) != _slow_json(_PROBE):  # pragma: no cover - a json module unlike CPython 3.11's
        _make_encoder = None
except TypeError:  # pragma: no cover - another C encoder signature
    _make_encoder = None
