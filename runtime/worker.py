"""The worker loop: run an engine's due work (timeouts, interrupted effects and
compensations) until told to stop — what ``railguard worker`` runs."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .engine import Engine, StepResult

__all__ = ["work"]


def work(
    engine: Engine,
    *,
    interval: float = 1.0,
    limit: int = 10,
    once: bool = False,
    stop: threading.Event | None = None,
    report: Callable[[StepResult], None] | None = None,
) -> int:
    """Call :meth:`Engine.run_due` until ``stop`` is set (or once, with ``once``), waiting
    ``interval`` seconds whenever nothing was due; ``report`` sees each piece of work done.
    Returns how many pieces of work were done."""
    stop = stop or threading.Event()
    done = 0
    while not stop.is_set():
        results = engine.run_due(limit)
        for result in results:
            if report is not None:
                report(result)
        done += len(results)
        if once:
            break
        if not results:
            stop.wait(interval)
    return done
