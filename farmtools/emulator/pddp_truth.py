"""The 6x6x6 physics truth: ``<run>_<seq>_physics.json`` beside the L1 streams, one per sequence.

What the emulator put into every event of L1 sequence ``seq`` (its triggers), so that the
6x6x6 reconstruction, its flash matching and the purity/gain analyses can be checked against
it.  It lives in the L1 directory beside the streams (never in ``daq.watch_dir``, where only
event files go) and is written atomically (temporary name, then rename) once the sequence's
last event is emitted.  The L2 event files do not follow the L1 sequences, so a reader looks
events up by trigger number over all sequences of the run: :func:`load_physics_truth`.

Format ``"farmtools-6x6x6-physics/1"``::

    {"format", "run", "seq", "geometry": "6x6x6" or "6x6x6:SAMPLES", "samples", "seed",
     "constants": {"tick_us", "drift_velocity_mm_per_us", "drift_length_cm", "window_us",
                   "full_drift_us", "lro_window_ns": [lo, hi], "mean_cosmics"},
     "injected": {every EmulatorSettings field (lifetime_ms null = infinite, ...),
                  every BeamSettings field, "lem_gains": [[LEM 1..36 of CRP 0], ..., CRP 3]},
     "pmts_cm": [[x, y, z], ...36],
     "events": [{"trigger_number", "event_number", "time_ns", "run_time_s",
                 "trigger": "BEAM" | "COSMIC", "spill": k | null, "dark_counts",
                 "particles": [{"kind": "beam" | "cosmic", "trigger", "t0_us", "entry_cm",
                                "exit_cm", "length_cm", "crps", "anode_cathode",
                                "collected_fc": [view0, view1], "flash_pe"}]}]}

May import :mod:`farmtools.detector`, :mod:`farmtools.pddp_layout` and the emulator settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any

PHYSICS_FORMAT = "farmtools-6x6x6-physics/1"
_NAME = re.compile(r"([0-9]{1,9})_([0-9]{1,9})_physics\.json", re.ASCII)


def physics_truth_path(l1_dir: str | os.PathLike[str], run: int, seq: int) -> Path:
    return Path(l1_dir) / f"{run}_{seq}_physics.json"


def jsonable(obj: Any) -> dict[str, Any]:
    """A settings dataclass as JSON-ready values (tuples as lists, infinities as null)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, dict):
            value = {str(k): v for k, v in value.items()}
        out[f.name] = value
    return out


def write_physics_truth(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"format": PHYSICS_FORMAT, **document}, allow_nan=False))
    os.replace(tmp, path)


def load_physics_truth(l1_dir: str | os.PathLike[str], run: int) -> dict[int, dict[str, Any]]:
    """Every event of ``run`` by trigger number, from all its sequences' sidecars.

    Each event dict gets the key ``"sidecar"``: the sequence document without its events (for
    the constants, the injected values and the PMT positions).
    """
    out: dict[int, dict[str, Any]] = {}
    for path in sorted(Path(l1_dir).glob(f"{run}_*_physics.json")):
        m = _NAME.fullmatch(path.name)
        if m is None or int(m.group(1)) != run:
            continue
        doc = json.loads(path.read_text())
        if doc.get("format") != PHYSICS_FORMAT:
            continue
        events = doc.pop("events")
        for ev in events:
            out[int(ev["trigger_number"])] = {**ev, "sidecar": doc}
    return out
