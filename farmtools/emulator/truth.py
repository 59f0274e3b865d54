"""The truth sidecar: ``run<N>-seq<M>.truth.json`` beside the DAQ directory of each raw file.

For raw files written into ``<dir>``, the sidecars go into ``<dir>-truth/`` next to it, not
into ``<dir>`` itself: the DAQ directory is what ingest watches, and a sidecar there became an
``ignored`` row in ``farmtools files`` for every file (the real DAQ writes no such file).

It records what was injected (lifetime, gain per LEM, asymmetry, field, drift velocity,
diffusion, noise, seed) and, per event, the trigger and the true tracks, so that the
reconstruction and the purity/gain analyses can be checked against it (the closure test).
It is written atomically (temporary name, then rename) just *before* the raw file is closed, so
that whoever sees the closed raw file also finds its complete sidecar.

Format (``"format": "farmtools-emulator-truth/1"``)::

    {"format": ..., "mode": "physics" | "template", "file": "run5-seq0.dat", "run": 5, "seq": 0,
     "geometry": "3x1x1", "seed": 42,
     "injected": {"lifetime_ms": 7.0 (null = infinite),
                  "gain_map": {"1": 20.0, ..., "12": 20.0}, "asymmetry": 0.0,
                  "drift_field_kv_per_cm": 0.5, "drift_velocity_mm_per_us": 1.6056,
                  ... every EmulatorSettings field},
     "events": [{"index": 0, "trigger_number": 0, "event_number": 0,
                 "seconds": ..., "nanoseconds": ..., "trigger": "CRT" | "PMT",
                 "tracks": [{"entry_cm": [x, y, z], "exit_cm": [x, y, z], "t0_us": 0.0,
                             "trigger": true, "anode_cathode": true, "length_cm": ...,
                             "cos_zenith": ..., "energy_mev": ..., "ionised_fc": ...,
                             "collected_fc": [view0, view1]}]}],
     "last_trigger_number": 9, "last_time_ns": ...}

``ionised_fc`` is the charge after recombination at the track (gain 1, no attenuation);
``collected_fc`` what reached each view inside the window after attenuation, gain and split.

May import :mod:`farmtools.detector` and the emulator settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from farmtools.detector import Geometry
from farmtools.emulator.settings import EmulatorSettings

TRUTH_FORMAT = "farmtools-emulator-truth/1"


def truth_dir(daq_dir: str | os.PathLike[str]) -> Path:
    """Where the sidecars of the raw files in ``daq_dir`` go: ``<daq_dir>-truth`` beside it."""
    d = Path(os.path.abspath(daq_dir))
    return d.with_name(d.name + "-truth")


def truth_path(raw_path: str | os.PathLike[str]) -> Path:
    """``<dir>/run5-seq0.dat`` -> ``<dir>-truth/run5-seq0.truth.json``."""
    p = Path(raw_path)
    return truth_dir(p.parent) / (p.name.removesuffix(".dat") + ".truth.json")


def injected(settings: EmulatorSettings, geometry: Geometry) -> dict[str, Any]:
    """The settings as JSON-ready values, with the full gain map and the geometry's drift."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "gain_map":
            value = {str(lem): g for lem, g in settings.gains(geometry).items()}
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        out[f.name] = value
    out["drift_field_kv_per_cm"] = geometry.drift_field_kv_per_cm
    out["drift_velocity_mm_per_us"] = geometry.drift_velocity_mm_per_us
    return out


def write_truth(raw_path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write the sidecar of ``raw_path`` atomically; returns its path."""
    path = truth_path(raw_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": TRUTH_FORMAT, **document}, indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


def read_truth(raw_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of ``raw_path`` if it exists and is one of ours, else None."""
    path = truth_path(raw_path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == TRUTH_FORMAT else None
