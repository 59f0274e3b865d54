"""Exit codes a job's program uses to tell the manager *why* it failed.

Owns the codes only; imports nothing.  The reconstruction (``farmtools reco``), the interim
``farmtools raw inspect`` and :mod:`farmtools.job.readcheck` all follow them, so the
processing manager can tell a file that will never reconstruct (corrupt input: do not resubmit)
from a failure that may go away (anything else).  Values follow BSD ``sysexits.h``.
"""

from __future__ import annotations

#: success
OK = 0
#: the raw file is corrupt or not a 311 file: deterministic, never resubmitted
EX_DATAERR = 65
#: the input file does not exist or cannot be opened (storage hiccup: transient)
EX_NOINPUT = 66
#: the output could not be written (storage full, permissions: transient)
EX_CANTCREAT = 73

#: ``farmtools raw inspect`` exits 1 for a RawDataError until the reconstruction lands
INSPECT_CORRUPT = 1

#: exit codes that mean "the input itself is bad", per program of the job script
CORRUPT_INPUT: dict[str, frozenset[int]] = {
    "check": frozenset({EX_DATAERR}),
    "reco": frozenset({EX_DATAERR}),
    "inspect": frozenset({EX_DATAERR, INSPECT_CORRUPT}),
}
