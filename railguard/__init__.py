"""railguard — workflows as verified state machines.

The layers live in ``railguard.spec`` (the language), ``railguard.verifier`` (proofs) and
``railguard.runtime`` (execution). This module re-exports the handful of names most
programs need.
"""

from __future__ import annotations

from pathlib import Path as _Path

__version__ = "0.1.0"

# Imported straight from a source checkout (the repo root on sys.path), the layer folders are
# siblings of this package rather than children; let the import system find them there.
_here = _Path(__file__).parent
if not (_here / "spec").is_dir() and (_here.parent / "spec" / "__init__.py").is_file():
    __path__.append(str(_here.parent))

from railguard.spec import (  # noqa: E402
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
