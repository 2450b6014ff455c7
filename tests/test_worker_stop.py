"""The worker's stop flag can be set from a signal handler without deadlocking."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest

from railguard.runtime.worker import SignalStop


def test_a_signal_stop_not_set_waits_out_its_timeout_and_says_so() -> None:
    stop = SignalStop(tick=0.01)
    assert stop.wait(0.03) is False
    assert not stop.is_set()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_a_signal_handler_setting_the_stop_ends_a_wait_in_the_main_thread() -> None:
    assert threading.current_thread() is threading.main_thread()
    stop = SignalStop(tick=0.01)
    calls: list[int] = []

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)
        if len(calls) >= 3:  # the handler lands at arbitrary points of wait(), more than once
            stop.set()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    try:
        ended = stop.wait(60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert ended is True
    assert len(calls) >= 3
