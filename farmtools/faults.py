"""Fault injection points for the kill tests, inert in production.

Owns :data:`FAULT_ENV` and :func:`fault_point`.  ``FARMTOOLS_FAULT=<point>:kill`` SIGKILLs the
process that reaches ``<point>``; ``<point>:<seconds>`` pauses it there, a window for a random
kill to land in.  Why in the code and not in the tests: the windows that matter (a job handed to
the batch system whose id is not recorded yet, a job started whose supervisor has not said so)
last microseconds, and a test that kills at random would hit them too rarely to prove anything.
When the variable is unset (production) a point costs one dictionary look-up.

Points: ``submit-window`` (:mod:`farmtools.processing.manager`: the job is on the batch system,
its batch id not yet recorded), ``supervisor-started`` (:mod:`farmtools.batch.supervisor`: the
job's script runs, ``started.json`` is not written yet).

Imports the standard library only (every job's supervisor imports it).
"""

from __future__ import annotations

import os
import signal
import time

FAULT_ENV = "FARMTOOLS_FAULT"


def fault_point(point: str) -> None:
    """Do what ``$FARMTOOLS_FAULT`` asks at ``point`` (nothing when it is unset or elsewhere)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    where, _, action = spec.partition(":")
    if where != point:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        time.sleep(float(action or 0))
