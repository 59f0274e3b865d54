"""The reconstruction driver: the cores a job is given, and the same output on any number."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import uproot

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.daq import RunPlan, emulate_run
from farmtools.emulator.settings import EmulatorSettings
from farmtools.reco.driver import job_cores, reconstruct_file


def test_job_cores_come_from_the_batch_slot_bounded_by_the_cpus() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert job_cores({}) == 1
    assert job_cores({"SLURM_CPUS_PER_TASK": "1"}) == 1
    assert job_cores({"SLURM_CPUS_PER_TASK": "2"}) == min(2, cpus)
    assert job_cores({"PBS_NUM_PPN": "64"}) == cpus  # never more threads than CPUs
    assert job_cores({"FARMTOOLS_JOB_CPUS": "1", "SLURM_CPUS_PER_TASK": "8"}) == 1
    assert job_cores({"SLURM_CPUS_PER_TASK": "", "OMP_NUM_THREADS": "2"}) == min(2, cpus)
    assert job_cores({"SLURM_CPUS_PER_TASK": "zero"}) == 1
    # the farm's job script says what [processing] cores asked for, before the slot's size
    assert job_cores({"FARMTOOLS_THREADS": "2", "FARMTOOLS_JOB_CPUS": "1"}) == min(2, cpus)


def test_output_is_the_same_whatever_the_threads(tmp_path: Path) -> None:
    (info,) = emulate_run(tmp_path, EmulatorSettings(seed=5), RunPlan(run=9, events_per_file=5))
    trees: list[dict[str, dict[str, np.ndarray]]] = []
    # 8 threads > 5 events: every event is handed out (and the events run out) before the
    # first is loaded, so the file must stay open until the threads are done with it
    for threads in (1, 3, 8):
        out = tmp_path / f"reco{threads}.root"
        stats = reconstruct_file(info.path, out, G, threads=threads)
        assert stats.n_events == 5 and stats.threads == threads
        assert stats.cpu_seconds > 0 and set(stats.timing) >= {"read", "signal", "write"}
        with uproot.open(out) as f:
            trees.append({k: f[k].arrays(library="np") for k in ("events", "hits", "tracks")})
    one = trees[0]
    assert one["hits"]["event"].size > 100
    for other in trees[1:]:
        for tree, columns in one.items():
            for name, values in columns.items():
                assert np.array_equal(values, other[tree][name], equal_nan=True), (tree, name)


def test_the_writer_flushes_a_chunk_on_its_hits_as_well_as_on_its_events(tmp_path: Path) -> None:
    """Large chunks (few uproot metadata rewrites) but bounded memory: a chunk ends at
    ``chunk_events`` events or ``chunk_hits`` hits, whichever comes first; nothing is lost."""
    from farmtools.reco.event import HIT_COLUMNS, TRACK_COLUMNS, EventReco
    from farmtools.reco.output import EVENT_COLUMNS, RecoWriter

    def event(i: int, n_hits: int) -> tuple[dict[str, int], EventReco]:
        hits: dict[str, np.ndarray] = {
            k: np.full(n_hits, i, dtype=t) for k, t in HIT_COLUMNS.items()
        }
        tracks: dict[str, np.ndarray] = {k: np.zeros(0, dtype=t) for k, t in TRACK_COLUMNS.items()}
        ped = np.zeros(4, dtype=np.float32)
        header = {k: i for k in EVENT_COLUMNS if not k.startswith("n_")}
        return header, EventReco(pedestal=ped, rms=ped, hits=hits, tracks=tracks)

    baskets = []
    for chunk_hits in (1000, 25):
        out = tmp_path / f"w{chunk_hits}.root"
        with RecoWriter(out, 4, chunk_events=500, chunk_hits=chunk_hits) as writer:
            for i in range(6):
                writer.add(*event(i, 10))
        with uproot.open(out) as f:
            assert f["events"].num_entries == 6
            assert list(f["hits"]["channel"].array(library="np")) == [
                i for i in range(6) for _ in range(10)
            ]
            baskets.append(f["hits"]["channel"].num_baskets)
    assert baskets == [1, 2]  # 60 hits: one chunk at the end; 30 + 30 with 25 hits a chunk
