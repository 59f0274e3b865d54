"""Names of the files in a local job's directory (``<pool>/jobs/<id>/``) that the pool and the
job's supervisor both read and write.

Here rather than in either module: :mod:`farmtools.batch.local` starts the supervisor as a
program and :mod:`farmtools.batch.supervisor` imports the pool to schedule the next jobs, so the
names shared by the two would otherwise make an import circle.
"""

from __future__ import annotations

#: ``jobs/<id>/cancel``: written by :meth:`farmtools.batch.local.LocalPool.cancel` for a job
#: that already left the queue.  A signal alone is not enough: between the dispatch and the
#: supervisor's ``started.json`` nobody knows the supervisor's pid, and a cancel sent then was
#: lost (the job ran to its end).  The supervisor reads the file before it starts the script and
#: at every tick after.
CANCEL_FILE = "cancel"
#: ``jobs/<id>/supervisor.pid``: the supervisor's pid, which is also the id of the session its
#: job runs in, written before the script starts
SUPERVISOR_FILE = "supervisor.pid"
