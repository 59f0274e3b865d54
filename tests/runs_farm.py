"""Helpers of the end-of-run tests: runs of files in any state, with small synthetic ROOT outputs.

The outputs hold ``hits`` and ``tracks`` trees with the branches the analyses read (random
muon-like hits: the fits may find nothing, which the pipeline records as "no measurement");
what is tested is which files are analysed and when, not the physics (the closure tests do that).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from farmtools.analysis.hits import HIT_BRANCHES, TRACK_BRANCHES
from farmtools.bookkeeping import Bookkeeping, Event, FileState
from tests.states import walk


def write_output(path: Path, seed: int, hits: int = 400) -> Path:
    """A reconstruction output with ``hits`` random hits on 4 crossing tracks."""
    import uproot

    rng = np.random.default_rng(seed)
    h = {
        "event": rng.integers(0, 4, hits).astype(np.int32),
        "view": rng.integers(0, 2, hits).astype(np.int8),
        "channel": rng.integers(0, 320, hits).astype(np.int16),
        "tick": rng.uniform(0, 1600, hits).astype(np.float32),
        "charge": rng.uniform(5, 50, hits).astype(np.float32),
        "amplitude": rng.uniform(5, 50, hits).astype(np.float32),
        "track": np.zeros(hits, np.int16),
        "edge": np.zeros(hits, np.bool_),
        "ds": np.full(hits, 0.4, np.float32),
        "dqds": rng.uniform(5, 50, hits).astype(np.float32),
        "x": rng.uniform(0, 100, hits).astype(np.float32),
        "y": rng.uniform(0, 300, hits).astype(np.float32),
        "drift_us": rng.uniform(0, 600, hits).astype(np.float32),
        "lem": rng.integers(1, 13, hits).astype(np.int8),
    }
    assert set(h) == set(HIT_BRANCHES)
    t = {
        "event": np.arange(4, dtype=np.int32),
        "id": np.zeros(4, np.int16),
        "crossing": np.ones(4, np.bool_),
        "length3d": np.full(4, 120.0, np.float32),
        "t0": np.zeros(4, np.float32),
        "partner": np.zeros(4, np.int16),
    }
    assert set(t) == set(TRACK_BRANCHES)
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        f["hits"] = h
        f["tracks"] = t
    return path


def add_file(
    bk: Bookkeeping,
    run: int,
    seq: int,
    state: FileState = FileState.STORED,
    *,
    output: Path | None = None,
    size: int = 100,
    adler32: str | None = "0000abcd",
) -> str:
    """``run<N>-seq<M>.dat`` registered and moved to ``state`` (``output``: its reco output)."""
    name = f"run{run}-seq{seq}.dat"
    bk.register_file(
        name, source_path=f"/daq/{name}", run=run, seq=seq, size=size, daq_write_time=None
    )
    details = {"output": str(output)} if output is not None else None
    if state != FileState.DETECTED:
        event = Event.RECONSTRUCTED if output is not None else Event.VERIFIED
        walk(bk, name, state, event, details, fields={"adler32": adler32})
    return name


def eor(run: int, names_sizes: list[tuple[str, int, str | None]], events: int = 10) -> dict:
    """An end-of-run record (farmtools-eor/1) of the given (name, size, adler32) files."""
    entries = [
        {"name": n, "seq": int(n.split("seq")[1].split(".")[0]), "size": s, "adler32": a}
        | {"events": events}
        for n, s, a in names_sizes
    ]
    return {
        "format": "farmtools-eor/1",
        "run": run,
        "files": len(entries),
        "events": events * len(entries),
        "first_seq": entries[0]["seq"] if entries else None,
        "last_seq": entries[-1]["seq"] if entries else None,
        "file_list": entries,
    }
