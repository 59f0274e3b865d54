"""A small farm for the monitor's tests: a real SQLite bookkeeping, summary files, a reco ROOT file.

Every row is written through the bookkeeping's own API (register_file, transition), as the
ingest and processing daemons write them; jobs through the processing stage's JobStore.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.config import FarmConfig, FarmSection, MonitorSection, NotifySection
from tests.states import walk, walk_job

DEAD = [5, 700]
NOISY = [10, 11, 1000]


@dataclass
class Farm:
    cfg: FarmConfig
    bk: Bookkeeping
    home: Path

    @property
    def summary_dir(self) -> Path:
        return self.cfg.path(self.cfg.analysis.summary_dir)


def make_config(
    home: Path, *, poll_s: float = 5.0, smtp_port: int | None = None, **monitor: object
) -> FarmConfig:
    notify = (
        NotifySection(email_to=["prod@localhost"], smtp_port=smtp_port)
        if smtp_port
        else NotifySection()
    )
    return FarmConfig(
        farm=FarmSection(home=home),
        monitor=MonitorSection(
            poll_s=poll_s, lifetime_min_us=2000.0, stuck_after_s=600.0, **monitor
        ),
        notify=notify,
        base_dir=home,
    )


def write_summary(
    directory: Path,
    run: int,
    stamp: datetime,
    tau: tuple[float, float],
    gains: dict[int, tuple[float, float]] | None = None,
    tag: str = "a",
) -> Path:
    """A seed-format summary file, written to a temporary name and renamed (as the analyses do)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [stamp.strftime("%d%m%y %H%M%S"), f"{tau[0]} {tau[0] * 0.05} {tau[1]} {tau[1] * 0.05}"]
    for lem in range(1, 13):
        q0, q1 = (gains or {}).get(lem, (100.0, 100.0))
        lines.append(f"{lem} {q0} 2.0 {q1} 2.0")
    path = directory / f"summary_run{run}_{tag}.txt"
    tmp = path.with_suffix(".txt.part")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(path)
    return path


def write_reco(home: Path, run: int, seq: int = 0) -> Path:
    """A reco output with the pedestal/rms TH1D layout of docs/reco.md (1280 view-order channels)."""
    import uproot

    out = home / "storage" / "output" / f"run{run}"
    out.mkdir(parents=True, exist_ok=True)
    ped = np.full(1280, 400.0) + np.arange(1280) % 7
    rms = np.full(1280, 1.5)
    rms[DEAD] = 0.0
    rms[NOISY] = 9.0
    edges = np.arange(1281, dtype=np.float64) - 0.5
    path = out / f"recotask_run{run}-seq{seq}.root"
    with uproot.recreate(path) as f:
        f["pedestal"] = (ped, edges)
        f["rms"] = (rms, edges)
    return path


def make_farm(home: Path, **kw: object) -> Farm:
    from farmtools.processing.jobs import JobStore

    cfg = make_config(home, **kw)  # type: ignore[arg-type]
    bk = Bookkeeping.from_config(cfg)
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    # run 1: 3 files through to analysed; run 2: 2 files stored, 1 still detected (stuck)
    for run, seqs in ((1, range(3)), (2, range(3))):
        for seq in seqs:
            name = f"run{run}-seq{seq}.dat"
            bk.register_file(
                name,
                source_path=f"/evb/{name}",
                run=run,
                seq=seq,
                size=10**9 + seq,
                daq_write_time=t0 + timedelta(seconds=10 * seq),
            )
            if run == 2 and seq == 2:
                bk.update_fields(name, state_since=t0)
                continue
            bk.transition(name, FileState.DETECTED, FileState.COPYING, Event.COPY_STARTED)
            bk.transition(name, FileState.COPYING, FileState.STORED, Event.VERIFIED)
            if run == 1:
                walk(bk, name, FileState.ANALYSED, Event.ANALYSED)
    jobs = JobStore(bk)
    for seq, state in ((0, "done"), (1, "failed"), (2, "running")):
        j = jobs.add(
            file=f"run1-seq{seq}.dat",
            try_number=1,
            backend="local",
            name=f"reco_run1-seq{seq}",
            queue="prod",
            memory_mb=1500,
            walltime_s=3600,
        )
        walk_job(jobs, j.id, state, failure="out_of_memory" if state == "failed" else None)
    return Farm(cfg, bk, home)
