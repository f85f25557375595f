"""Statuses of training runs and search candidates: one enum, used everywhere.

A training run (native or Python env) ends ``ok``, ``diverged`` (a non-finite value:
the rule blew up) or ``error`` (the environment or the worker failed). A search candidate
is ``running`` while it is trained (``queued`` while no process trains it: it was in flight
when its run stopped, and a resume trains it first) until its result arrives, then one of
those, or ``culled`` (stopped at the hurdle) or ``duplicate`` (its canonical form was
already trained; it inherits that result).
The C++ core's status strings are generated from :data:`TRAINING` (csrc/generated).
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A status; compares equal to its string value (``Status.OK == "ok"``)."""

    RUNNING = "running"
    QUEUED = "queued"
    OK = "ok"
    CULLED = "culled"
    DIVERGED = "diverged"
    ERROR = "error"
    DUPLICATE = "duplicate"

    def __str__(self) -> str:
        return self.value


#: How a training run can end (the native trainer's statuses).
TRAINING: tuple[Status, ...] = (Status.OK, Status.DIVERGED, Status.ERROR)

#: Candidates that were trained (a result of their own, whatever it was); the budget
#: counts these.
TRAINED: tuple[Status, ...] = (Status.OK, Status.CULLED, Status.DIVERGED, Status.ERROR)

#: Candidates whose training failed (the rule blew up, or the run or its worker failed).
FAILED: tuple[Status, ...] = (Status.DIVERGED, Status.ERROR)

#: Candidates with a result: trained, or settled as a duplicate of one that was.
FINISHED: tuple[Status, ...] = (*TRAINED, Status.DUPLICATE)

#: Candidates proposed but without a result yet.
UNFINISHED: tuple[Status, ...] = (Status.RUNNING, Status.QUEUED)
