"""A local pool's job is told its slot's cores (FARMTOOLS_JOB_CPUS), as Slurm tells its jobs;
a job asking for N cores holds N slots."""

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


def test_a_job_of_two_cores_holds_two_slots_and_sees_their_cores(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    wide = tmp_path / "wide.sh"
    wide.write_text(
        f"#!/bin/bash\necho $FARMTOOLS_JOB_CPUS\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n"
    )
    narrow = tmp_path / "narrow.sh"
    narrow.write_text("#!/bin/bash\necho $FARMTOOLS_JOB_CPUS\n")
    batch = LocalBatch(tmp_path / "pool", slots=2)
    a = batch.submit(JobSpec("w", wide, tmp_path / "w.out", tmp_path / "err", cores=2))
    eventually(
        lambda: batch.states([a])[a],
        60,
        "the wide job runs",
        until=lambda s: s is JobStatus.RUNNING,
    )
    b = batch.submit(JobSpec("n", narrow, tmp_path / "n.out", tmp_path / "err"))
    assert batch.pool.job_slots(a) == 2 and batch.pool.job_slots(b) == 1
    # both slots are the wide job's: the narrow one waits for them
    assert batch.states([b])[b] is JobStatus.PENDING
    gate.touch()
    eventually(
        lambda: batch.states([a, b]),
        60,
        "both jobs finished",
        until=lambda s: set(s.values()) == {JobStatus.FINISHED},
    )
    slot = max(1, (os.cpu_count() or 1) // 2)
    assert int((tmp_path / "w.out").read_text()) == 2 * slot
    assert int((tmp_path / "n.out").read_text()) == slot
    wider = batch.submit(JobSpec("x", narrow, tmp_path / "x.out", tmp_path / "err", cores=8))
    assert batch.pool.job_slots(wider) == 2  # more cores than the pool has: it still runs
