"""Batch systems behind one interface: local slots, Slurm, TORQUE/PBS, HTCondor.

Owns :func:`make_batch`, which builds the backend ``[batch] backend`` names.  The interface and
its value types are in :mod:`farmtools.batch.base`; each backend is a module named after its
batch system.  What runs inside a job (its exit codes, the read-only check) is
:mod:`farmtools.job`.  Imports only the standard library at module level (backends are imported
when built), and nothing from the processing manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from farmtools.batch.base import (
    BatchSystem,
    BatchUnavailable,
    Ending,
    JobAccounting,
    JobSpec,
    JobStatus,
    SubmissionRefused,
)

if TYPE_CHECKING:
    from farmtools.config import FarmConfig


def make_batch(cfg: FarmConfig, env: Mapping[str, str] | None = None) -> BatchSystem:
    """The backend ``cfg.batch.backend`` names (``env``: for its clients, e.g. SLURM_CONF)."""
    backend = cfg.batch.backend
    if backend == "local":
        from farmtools.batch.local import LocalBatch

        return LocalBatch(cfg.path(cfg.batch.local_dir), cfg.batch.slots)
    if backend == "slurm":
        from farmtools.batch.slurm import SlurmBatch

        return SlurmBatch(env)
    if backend == "torque":
        from farmtools.batch.torque import TorqueBatch

        return TorqueBatch(env)
    from farmtools.batch.htcondor import HTCondorBatch

    return HTCondorBatch()


__all__ = [
    "BatchSystem",
    "BatchUnavailable",
    "Ending",
    "JobAccounting",
    "JobSpec",
    "JobStatus",
    "SubmissionRefused",
    "make_batch",
]
