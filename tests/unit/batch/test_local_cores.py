"""A local pool's job is told its slot's cores (FARMTOOLS_JOB_CPUS), as Slurm tells its jobs."""

from __future__ import annotations

import os
from pathlib import Path

from farmtools.batch.base import JobSpec, JobStatus
from farmtools.batch.local import LocalBatch
from tests.eventually import eventually


def test_a_job_sees_the_cores_of_its_slot(tmp_path: Path) -> None:
    script = tmp_path / "cores.sh"
    script.write_text("#!/bin/bash\necho $FARMTOOLS_JOB_CPUS\n")
    for slots in (1, 2):
        batch = LocalBatch(tmp_path / f"pool{slots}", slots=slots)
        out = tmp_path / f"cores{slots}.out"
        job = batch.submit(JobSpec(f"c{slots}", script, out, tmp_path / "err", workdir=tmp_path))
        eventually(
            lambda: batch.states([job])[job],  # noqa: B023 - called before the loop moves on
            60,
            f"job {job} finished",
            until=lambda s: s is JobStatus.FINISHED,
        )
        assert int(out.read_text()) == max(1, (os.cpu_count() or 1) // slots)
