"""The value codec, which lives in :mod:`railguard.spec.codec`; re-exported for the runtime."""

from __future__ import annotations

from railguard.spec.codec import (
    canonical_json,
    decode_params,
    decode_value,
    decode_values,
    encode_value,
    encode_values,
)

__all__ = [
    "canonical_json",
    "decode_params",
    "decode_value",
    "decode_values",
    "encode_value",
    "encode_values",
]
