"""The worker loop: run an engine's due work (timeouts, interrupted effects and
compensations) until told to stop — what ``railguard worker`` runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from .engine import Engine, StepResult

__all__ = ["SignalStop", "Stop", "work"]


class Stop(Protocol):
    """What tells :func:`work` to stop: a :class:`threading.Event` or a :class:`SignalStop`."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SignalStop:
    """A stop flag that a signal handler may set. :class:`threading.Event` may not be set
    from one: ``set()`` takes the lock that ``wait()`` in the interrupted main thread can be
    holding at that moment, and the process deadlocks. This one sets a plain flag, and
    ``wait`` sleeps in slices of at most ``tick`` seconds, looking at the flag between them."""

    def __init__(self, tick: float = 0.05) -> None:
        self._set = False
        self.tick = tick

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = self.tick if deadline is None else min(self.tick, deadline - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self._set


def work(
    engine: Engine,
    *,
    interval: float = 1.0,
    limit: int = 10,
    once: bool = False,
    stop: Stop | None = None,
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
