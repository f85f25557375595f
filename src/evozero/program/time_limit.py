"""A wall-clock time limit for one call: the single mechanism behind every sympy bound.

:func:`call_with_time_limit` runs ``fn`` in a fresh daemon thread and waits for it at
most ``timeout`` seconds. Canonical keys (:mod:`evozero.program.canon`) and simplified
exports (:mod:`evozero.export.simplify`) use it.

Why this design
---------------
The deadline is kept by the caller's own wait, not by an exception that has to travel
through ``fn``, so nothing ``fn`` does can lose it: not an exception swallowed by a
finalizer that happens to run inside ``fn`` (``Exception ignored in: <function
Popen.__del__ ...>``: the failure of the earlier in-thread watchdog), not an ``except
BaseException``, not a long C call (``time.sleep``, big-integer arithmetic). It works in
any thread of any process (main thread or not, driver, worker process, Ray actor), under
coverage or a debugger, with no signals and no subprocess (a process per call costs
milliseconds; sympy work is often under one), and costs one short-lived thread per
call, about 0.1 ms.

At the deadline the abandoned work is *cancelled*: ``PyThreadState_SetAsyncExc`` raises
:class:`_Cancelled` (a ``BaseException``, which sympy's ``except Exception`` clauses let
through) in the worker thread, again every :data:`_REFIRE_S` while it is still inside
``fn``, should something swallow it. The worker fires only while *armed* (inside ``fn``
and the few bytecodes around it), never inside ``threading``'s own code, and absorbs an
exception fired just before it disarmed, so none escapes into the thread's shutdown.
The caller waits a short grace (:data:`_GRACE_S`) for the work to stop, so that
abandoned work does not usually run on beside the next call.

Limits: ``fn`` runs in another thread, so thread-local state (``sympy.evaluate``,
``decimal`` contexts) is the thread's default; context variables are copied. A C call
that holds the GIL delays the caller too (the caller needs the GIL to wake).
"""

from __future__ import annotations

import contextvars
import ctypes
import math
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

__all__ = ["TimeLimitExceeded", "call_with_time_limit"]

_T = TypeVar("_T")

#: While abandoned work is still inside ``fn``, it is cancelled again this often.
_REFIRE_S = 1.0
#: After cancelling, the caller waits this long for the work to stop (never longer).
_GRACE_S = 0.1


class TimeLimitExceeded(TimeoutError):  # noqa: N818  (a TimeoutError, named as the others)
    """The call did not finish within its time limit."""


class _Cancelled(BaseException):
    """Raised asynchronously in abandoned work; a BaseException so that ``except
    Exception`` clauses let it through."""


class _Job(Generic[_T]):
    """One call of ``fn`` in a worker thread, and its cancellation."""

    def __init__(self, fn: Callable[[], _T]) -> None:
        self.fn = fn
        self.context = contextvars.copy_context()
        self.lock = threading.Lock()  # guards the three fields below
        self.armed = False  # the worker is inside fn: an exception may be fired at it
        self.cancelled = False
        self.fired = 0
        self.done = threading.Event()
        self.result: _T | None = None
        self.error: BaseException | None = None
        self.tid = 0

    # -- worker thread

    def run(self) -> None:
        try:
            try:
                with self.lock:
                    if self.cancelled:  # the caller gave up before fn started
                        return
                    self.tid = threading.get_ident()
                    self.armed = True
                self.result = self.context.run(self.fn)
            finally:
                self._disarm()
        except _Cancelled:
            self._disarm()  # in case it landed before _disarm's own try
        except BaseException as e:  # handed to the caller
            self.error = e
        finally:
            self.done.set()

    def _disarm(self) -> None:
        # Idempotent. After armed is False nothing more is fired; one fired before may
        # still be pending, and a short loop (backward jumps deliver pending exceptions)
        # makes it land inside this try.
        while True:
            try:
                with self.lock:
                    self.armed = False
                if self.fired:
                    for _ in range(1000):
                        pass
                return
            except _Cancelled:
                continue

    # -- caller (and canceller) threads

    def cancel(self) -> bool:
        """Mark the job cancelled and fire at it if it is inside ``fn``; whether it fired."""
        with self.lock:
            self.cancelled = True
            if not self.armed:
                return False
            # Never called with NULL to "clear" a pending exception: on CPython 3.11 that
            # leaves the eval breaker set for good, and a traced interpreter then spins.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self.tid), ctypes.py_object(_Cancelled)
            )
            self.fired += 1
            return True

    def keep_cancelling(self) -> None:
        """Fire again every :data:`_REFIRE_S` until the work has left ``fn``."""
        while not self.done.wait(_REFIRE_S):
            if not self.cancel():
                return

    def abandon(self) -> None:
        """Cancel the work; wait :data:`_GRACE_S` at most for it to stop."""
        if not self.cancel():  # not inside fn: it has left, or will never enter (cancelled)
            return
        if not self.done.wait(_GRACE_S):
            threading.Thread(
                target=self.keep_cancelling, name="evozero-time-limit-cancel", daemon=True
            ).start()


def call_with_time_limit(fn: Callable[[], _T], timeout: float | None) -> _T:
    """``fn()``, or :class:`TimeLimitExceeded` once ``timeout`` seconds of wall-clock time
    have passed.

    Args:
        fn: the work, called with no arguments in a fresh daemon thread (inline, in the
            calling thread, when there is no limit).
        timeout: seconds; ``None`` or ``math.inf``: no limit. Zero or less: raises at
            once without calling ``fn``.

    Returns:
        What ``fn`` returned.

    Raises:
        TimeLimitExceeded: ``fn`` did not return within ``timeout`` (it is then cancelled
            in the background, see the module docstring).
        ValueError: ``timeout`` is NaN.
        BaseException: whatever ``fn`` raised, re-raised in the calling thread.
    """
    if timeout is None or timeout == math.inf:
        return fn()
    if math.isnan(timeout):
        raise ValueError("timeout is NaN")
    if timeout <= 0:
        raise TimeLimitExceeded(f"no time given (timeout={timeout} s)")
    job = _Job(fn)
    worker = threading.Thread(target=job.run, name="evozero-time-limit", daemon=True)
    try:
        # start() inside the try: a Ctrl-C while it waits for the thread to come up
        # must cancel the work too, or it runs on uncancelled beside the exiting caller
        worker.start()
        finished = job.done.wait(timeout)
    except BaseException:  # e.g. KeyboardInterrupt while waiting: stop the work too
        job.abandon()
        raise
    if not finished:
        job.abandon()
        raise TimeLimitExceeded(f"took longer than {timeout} s")
    error, job.error = job.error, None
    if error is not None:
        try:
            raise error
        finally:
            del error  # no traceback -> frame -> error cycle
    return cast(_T, job.result)
