"""Failure classes of a processing job and what to do about each (a pure function).

Owns :class:`Failure`, :func:`classify` (accounting + exit code -> class) and :func:`decide`
(class + try number -> resubmit with which resources, or park).  Transient classes are retried
after the cool-off up to ``processing.max_tries`` submissions, with more memory after an
out-of-memory and more walltime after a walltime failure; corrupt input is deterministic and
parked at once.  Imports :mod:`farmtools.batch` value types only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from farmtools.batch.base import Ending, JobAccounting
from farmtools.job.exitcodes import CORRUPT_INPUT


class Failure(enum.StrEnum):
    EXIT = "nonzero_exit"
    SIGNAL = "signal"
    OUT_OF_MEMORY = "out_of_memory"
    WALLTIME = "walltime"
    NODE = "node_failure"
    CORRUPT_INPUT = "corrupt_input"
    REFUSED = "submission_refused"
    UNREACHABLE = "batch_unreachable"
    #: this machine could not prepare the job (disk full or not writable while writing the
    #: script, a bug): not the batch system's answer, so never reported as ``submission_refused``
    LOCAL = "local_error"
    CANCELLED = "cancelled"


#: never resubmitted automatically: the same input gives the same result
DETERMINISTIC = frozenset({Failure.CORRUPT_INPUT, Failure.CANCELLED})


def classify(acc: JobAccounting, exit_code: int | None, program: str) -> Failure | None:
    """None for success, else the failure class of a finished job."""
    if acc.ending is Ending.TIMEOUT:
        return Failure.WALLTIME
    if acc.ending is Ending.OUT_OF_MEMORY:
        return Failure.OUT_OF_MEMORY
    if acc.ending is Ending.NODE_FAIL:
        return Failure.NODE
    if acc.ending is Ending.CANCELLED:
        return Failure.CANCELLED
    if acc.ending is Ending.SIGNALLED:
        return Failure.SIGNAL
    if exit_code is None:
        return Failure.NODE  # ended, but nobody knows how: treat as a lost job
    if exit_code == 0:
        return None
    if exit_code in CORRUPT_INPUT.get(program, frozenset()):
        return Failure.CORRUPT_INPUT
    return Failure.EXIT


@dataclass(frozen=True)
class Decision:
    retry: bool
    memory_mb: int
    walltime_s: int


def decide(
    failure: Failure,
    try_number: int,
    max_tries: int,
    memory_mb: int,
    walltime_s: int,
    memory_factor: float,
    walltime_factor: float,
) -> Decision:
    """Resubmit (with which resources) or park after ``try_number`` submissions."""
    if failure in DETERMINISTIC or try_number >= max_tries:
        return Decision(False, memory_mb, walltime_s)
    if failure is Failure.OUT_OF_MEMORY:
        memory_mb = round(memory_mb * memory_factor)
    if failure is Failure.WALLTIME:
        walltime_s = round(walltime_s * walltime_factor)
    return Decision(True, memory_mb, walltime_s)
