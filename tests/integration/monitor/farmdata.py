"""A small farm for the monitor's tests: a real SQLite bookkeeping, summary files, a reco ROOT file.

Every row is written through the bookkeeping's own API (register_file, transition), as the
ingest and processing daemons write them; jobs through the processing stage's JobStore.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
    # its 5 GB of files an hour fill a small test disk within a day: the buffer's alarm is
    # test_status.py's, off here unless asked for
    monitor.setdefault("buffer_warn_h", 0.0)
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


def write_reco(
    home: Path,
    run: int,
    seq: int = 0,
    *,
    dead: list[int] | None = None,
    noisy: list[int] | None = None,
) -> Path:
    """A reco output with the pedestal/rms TH1D layout of docs/reco.md (1280 view-order channels);
    ``dead``/``noisy`` channels (default :data:`DEAD`/:data:`NOISY`) get an RMS of 0 / 9 ADC."""
    import uproot

    out = home / "storage" / "output" / f"run{run}"
    out.mkdir(parents=True, exist_ok=True)
    ped = np.full(1280, 400.0) + np.arange(1280) % 7
    rms = np.full(1280, 1.5)
    rms[DEAD if dead is None else dead] = 0.0
    rms[NOISY if noisy is None else noisy] = 9.0
    edges = np.arange(1281, dtype=np.float64) - 0.5
    path = out / f"recotask_run{run}-seq{seq}.root"
    with uproot.recreate(path) as f:
        f["pedestal"] = (ped, edges)
        f["rms"] = (rms, edges)
    return path


def fail_attempts(bk: Bookkeeping, name: str, tries: range, failure: str) -> None:
    """Failed reconstruction attempts ``tries`` of file ``name`` (jobs through the JobStore)."""
    from farmtools.processing.jobs import JobStore

    jobs = JobStore(bk)
    for attempt in tries:
        j = jobs.add(
            file=name,
            try_number=attempt,
            backend="local",
            name=f"reco_{name.removesuffix('.dat')}_{attempt}",
            queue="prod",
            memory_mb=1500,
            walltime_s=3600,
        )
        walk_job(jobs, j.id, "failed", failure=failure)


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


#: The tracks of :func:`write_event_files`' event ``i``: (view, first channel, first tick, last
#: channel, last tick), shifted by ``EVENT_SHIFT * i`` channels.
EVENT_TRACKS = ((0, 40, 200, 280, 1400), (1, 300, 300, 700, 900))
EVENT_SHIFT = 10
PULSE_ADC = 300


def event_hits(i: int) -> list[tuple[int, int, int]]:
    """(view, channel, tick) of the hits of event ``i``: one per channel crossed."""
    out = []
    for view, c0, t0, c1, t1 in EVENT_TRACKS:
        for ch in range(c0, c1 + 1):
            tick = round(t0 + (t1 - t0) * (ch - c0) / (c1 - c0))
            out.append((view, ch + EVENT_SHIFT * i, tick))
    return out


def write_event_files(
    home: Path, run: int, seq: int = 0, n_events: int = 3, *, reco: bool = True
) -> tuple[Path, Path | None]:
    """A 3x1x1 raw file whose events hold two straight tracks, and its reco output.

    The raw file goes where ingest stores it, the reco output where the jobs publish it; the
    reco's hits and tracks are the tracks as drawn (one hit a channel at the pulse's tick),
    written through the reconstruction's own :class:`~farmtools.reco.output.RecoWriter`.
    """
    from farmtools.detector import WA105_3X1X1 as G
    from farmtools.rawdata import RawFileWriter
    from farmtools.reco.event import HIT_COLUMNS, TRACK_COLUMNS, EventReco

    rng = np.random.default_rng(run * 1000 + seq)
    raw_dir = home / "storage" / "input" / f"run{run}"
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw = raw_dir / f"run{run}-seq{seq}.dat"
    n0 = G.channels_per_view[0]
    recos = []
    with RawFileWriter(raw, run, geometry=G) as w:
        for i in range(n_events):
            adc = np.rint(400 + rng.normal(0, 2.0, (G.n_channels, G.samples))).astype(np.uint16)
            hits = event_hits(i)
            for view, ch, tick in hits:
                adc[ch + (n0 if view else 0), tick - 1 : tick + 2] += PULSE_ADC
            h: dict[str, Any] = {k: np.zeros(len(hits), dtype=t) for k, t in HIT_COLUMNS.items()}
            h["view"][:] = [v for v, _, _ in hits]
            h["channel"][:] = [c for _, c, _ in hits]
            h["tick"][:] = [t for _, _, t in hits]
            h["amplitude"][:] = PULSE_ADC
            h["track"][:] = [v for v, _, _ in hits]  # track k is in view k
            t: dict[str, Any] = {k: np.zeros(2, dtype=tp) for k, tp in TRACK_COLUMNS.items()}
            for k, (view, c0, t0, c1, t1) in enumerate(EVENT_TRACKS):
                u = (np.array([c0, c1]) + EVENT_SHIFT * i + 0.5) * G.pitch_cm
                z = np.array([t0, t1]) * G.drift_velocity_cm_per_tick
                d = np.array([u[1] - u[0], z[1] - z[0]])
                d /= np.hypot(*d)
                t["view"][k], t["id"][k], t["n_hits"][k] = view, k, c1 - c0 + 1
                t["u0"][k], t["z0"][k], t["du"][k], t["dz"][k] = u[0], z[0], d[0], d[1]
                t["partner"][k] = -1
            header = w.write_event(
                adc, trigger_number=100 + i, seconds=1796675593 + i, nanoseconds=0
            )
            ped = np.full(G.n_channels, 400.0, dtype=np.float32)
            rms = np.full(G.n_channels, 2.0, dtype=np.float32)
            recos.append((i, header, EventReco(ped, rms, h, t)))
    if not reco:
        return raw, None
    from farmtools.reco.output import RecoWriter

    out_dir = home / "storage" / "output" / f"run{run}"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"recotask_run{run}-seq{seq}.root"
    with RecoWriter(out, G.n_channels) as rw:
        for i, hd, r in recos:
            rw.add(
                {
                    "event": i,
                    "run": run,
                    "event_number": hd.event_number,
                    "trigger_number": hd.trigger_number,
                    "trigger_type": hd.trigger_type,
                    "seconds": hd.seconds,
                    "nanoseconds": hd.nanoseconds,
                    "trigger_time": hd.seconds + hd.nanoseconds * 1e-9,
                    "dq_flag": hd.dq_flag,
                    "compressed": False,
                    "bad_cards": 0,
                    "offset": 0,
                },
                r,
            )
    return raw, out
