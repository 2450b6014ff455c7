"""Shared fixtures: paths of the examples and a loader for inline YAML specs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED_EXAMPLES = ROOT.parent / "shared" / "examples"
CANONICAL = ("refund", "order", "deploy")


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES
