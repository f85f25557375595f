"""The one time limit for sympy work: deadlines are kept, results and errors come back."""

from __future__ import annotations

import contextlib
import contextvars
import gc
import math
import sys
import threading
import time
from collections.abc import Callable

import pytest

from evozero.program.time_limit import TimeLimitExceeded, call_with_time_limit

#: Slack for a loaded machine on top of the limit and the cancellation grace.
SLACK = 0.6


def spin(seconds: float) -> int:
    """Pure-Python work (interruptible between bytecodes) for about ``seconds``."""
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def assert_times_out(work: Callable[[], object], limit: float = 0.2) -> None:
    """``work`` under ``limit`` raises TimeLimitExceeded, on time."""
    t0 = time.perf_counter()
    with pytest.raises(TimeLimitExceeded):
        call_with_time_limit(work, limit)
    assert time.perf_counter() - t0 < limit + SLACK


def test_result_comes_back() -> None:
    assert call_with_time_limit(lambda: 42, 5.0) == 42
    assert call_with_time_limit(lambda: None, 5.0) is None


def test_no_limit_runs_inline() -> None:
    me = threading.get_ident()
    for timeout in (None, math.inf):
        assert call_with_time_limit(threading.get_ident, timeout) == me


def test_limited_call_runs_in_another_thread_with_the_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    me = threading.get_ident()
    tid, value = call_with_time_limit(lambda: (threading.get_ident(), var.get()), 5.0)
    assert tid != me and value == "caller"


def test_exceptions_propagate() -> None:
    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom") as info:
        call_with_time_limit(fail, 5.0)
    assert any(f.name == "fail" for f in info.traceback)  # the worker's frames are kept

    class Stop(BaseException):
        pass

    def stop() -> None:
        raise Stop

    with pytest.raises(Stop):
        call_with_time_limit(stop, 5.0)
    with pytest.raises(RecursionError):
        call_with_time_limit(lambda: _recurse(0), 5.0)


def _recurse(n: int) -> int:
    return _recurse(n + 1) + 1


def test_no_time_means_no_work() -> None:
    calls = []
    for timeout in (0.0, -1.0, -math.inf):
        with pytest.raises(TimeLimitExceeded):
            call_with_time_limit(lambda: calls.append(1), timeout)
    assert calls == []
    with pytest.raises(ValueError, match="NaN"):
        call_with_time_limit(lambda: 1, math.nan)
    assert issubclass(TimeLimitExceeded, TimeoutError)


def test_timeout_is_raised_on_time_and_the_work_stops() -> None:
    stopped = threading.Event()

    def work() -> None:
        try:
            spin(30.0)
        finally:
            stopped.set()

    assert_times_out(work)
    assert stopped.wait(5.0)  # cancelled, not left spinning for 30 s


def test_deadline_survives_a_finalizer_that_swallows_it(monkeypatch) -> None:
    """The deadline must hold even when the cancellation lands in a ``__del__``.

    CPython reports an exception raised in a finalizer as "Exception ignored in ..." and
    drops it; the earlier mechanism (an exception raised in the *calling* thread) lost
    its deadline that way when a ``Popen.__del__`` ran inside sympy work, and returned
    the late result. Here almost all of the work runs inside finalizers, some of them
    collected by the cyclic GC as in that failure.
    """
    ignored: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: ignored.append(u.exc_type))
    finished = threading.Event()

    class Slow:
        def __init__(self) -> None:
            self.me = self  # a cycle: freed by the cyclic GC, not by refcounting

        def __del__(self) -> None:
            spin(0.02)

    def work() -> str:
        end = time.perf_counter() + 1.5  # outlasts the old mechanism's refire (1 s)
        try:
            while time.perf_counter() < end:
                Slow()
                gc.collect(0)  # the young generation: cheap, and holds the new cycle
                with contextlib.suppress(BaseException):  # a careless catch-all swallows too
                    spin(0.001)
            return "late result"
        finally:
            finished.set()

    assert_times_out(work)
    assert finished.wait(10.0)  # the abandoned work ends (here: on its own)


def test_ctrl_c_while_the_worker_starts_cancels_the_work(monkeypatch) -> None:
    """A KeyboardInterrupt that lands inside ``Thread.start`` (it waits for the new thread
    to come up) must cancel the work, not leave it running beside the exiting caller:
    ``show --simplify`` hung at exit that way on a loaded CI machine."""
    from evozero.program import time_limit

    workers: list[threading.Thread] = []

    class InterruptedStart(threading.Thread):
        def start(self) -> None:
            super().start()
            if self.name == "evozero-time-limit":  # the worker; not the canceller
                workers.append(self)
                raise KeyboardInterrupt  # as a Ctrl-C in start's wait for the thread

    monkeypatch.setattr(time_limit.threading, "Thread", InterruptedStart)
    with pytest.raises(KeyboardInterrupt):
        call_with_time_limit(lambda: spin(30.0), 60.0)
    (worker,) = workers
    worker.join(5.0)  # cancelled (or never began): not left spinning for 30 s
    assert not worker.is_alive()


def test_a_long_c_call_does_not_hold_the_caller() -> None:
    assert_times_out(lambda: time.sleep(3.0))  # sleep ignores cancellation


def test_no_stray_exceptions_after_races(monkeypatch) -> None:
    # Limits expiring around the moment the work ends: nothing escapes into the caller,
    # and no worker thread dies of an uncaught cancellation.
    uncaught: list[object] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: uncaught.append(a.exc_type))
    results = 0
    for i in range(48):  # limits from below to above the work's 20 ms (GIL switch: 5 ms)
        with contextlib.suppress(TimeLimitExceeded):
            results += call_with_time_limit(lambda: spin(0.02) and 1, 0.005 * (i % 8 + 1))
    spin(0.05)  # would be interrupted by a pending exception
    time.sleep(0.3)
    spin(0.05)
    assert uncaught == []
    assert 0 < results < 48  # both outcomes happened
