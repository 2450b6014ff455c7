"""railguard — workflows as verified state machines.

The layers live in ``railguard.spec`` (the language), ``railguard.verifier`` (proofs) and
``railguard.runtime`` (execution). This module re-exports the handful of names most
programs need; they are imported on first use, so that ``import railguard`` (and
``railguard --version``) costs next to nothing.
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Imported straight from a source checkout (the repo root on sys.path), the layer folders are
# siblings of this package rather than children; let the import system find them there.
_here = _os.path.dirname(__file__)
_parent = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "spec")) and _os.path.isfile(
    _os.path.join(_parent, "spec", "__init__.py")
):
    __path__.append(_parent)

if TYPE_CHECKING:
    from railguard.spec import (
        LoadError,
        RailguardError,
        Spec,
        SpecBuilder,
        SpecError,
        dumps,
        load,
        loads,
    )

__all__ = [
    "LoadError",
    "RailguardError",
    "Spec",
    "SpecBuilder",
    "SpecError",
    "__version__",
    "dumps",
    "load",
    "loads",
]

_FROM_SPEC = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _FROM_SPEC:
        import importlib

        return getattr(importlib.import_module("railguard.spec"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
