"""The JSON Schema (draft 2020-12) of the spec format, for editors and CI validation."""

from __future__ import annotations

from typing import Any

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the railguard spec format, version 1."""
    return {}
