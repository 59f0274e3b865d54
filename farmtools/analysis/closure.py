"""Hit-level closure: hits made straight from the emulator's physics, and the truth to compare.

The full chain (emulate raw waveforms, reconstruct, analyse) is the real proof but costs about
0.3 s per event; the purity fit wants a few hundred anode-cathode crossing tracks per point.
:func:`truth_hits` skips the waveforms: it takes the emulator's own muons
(:func:`farmtools.emulator.muons.trigger_muon`), its own energy loss, recombination,
attenuation, LEM gain and view sharing (:func:`farmtools.emulator.deposit.steps_of` and
``lem_gains``), sums the step charges per strip crossed and returns columns shaped like the
reconstruction's output (:mod:`.hits`), so that the very same analysis code runs on both.  What
it leaves out is what the reconstruction adds (noise, thresholds, diffusion across strips, track
fitting): the hit-level closure tests the analyses, the reco-level one the whole chain.

Used by the closure tests and ``benchmarks/bench_closure.py``; imports the emulator, which no
production analysis path does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from farmtools.analysis.hits import HIT_BRANCHES, Columns
from farmtools.detector import WA105_3X1X1, Geometry


def truth_hits(
    settings: Any,
    n_events: int,
    geometry: Geometry = WA105_3X1X1,
    seed: int = 0,
) -> Columns:
    """Hits of ``n_events`` trigger muons emulated with ``settings`` (an EmulatorSettings).

    One hit per strip crossed per view; ``edge`` marks the first and last strip of each track
    per view; ``dqds = charge / ds`` with ``ds`` the exact 3D length of the track under the strip;
    ``drift_us`` is the charge-weighted drift time (the trigger muons have t0 = 0).
    """
    from farmtools.emulator.deposit import lem_gains, steps_of
    from farmtools.emulator.muons import trigger_muon

    rng = np.random.default_rng(seed)
    gains = settings.gains(geometry)
    tau_us = settings.lifetime_ms * 1e3 if math.isfinite(settings.lifetime_ms) else math.inf
    shares = (0.5 * (1.0 - settings.asymmetry), 0.5 * (1.0 + settings.asymmetry))
    v_cm_per_us = geometry.drift_velocity_mm_per_us * 0.1
    pitch = geometry.pitch_cm
    local = settings.recombination == "local"
    cols: dict[str, list[Any]] = {k: [] for k in _KEYS}
    for ev in range(n_events):
        crt = bool(rng.random() < settings.crt_fraction)
        track = trigger_muon(rng, geometry, crt)
        steps = steps_of(track, rng, geometry.drift_field_kv_per_cm, local_recombination=local)
        t_us = steps.xyz[:, 2] / v_cm_per_us
        q = steps.q_fc * np.exp(-t_us / tau_us) * lem_gains(steps.xyz, geometry, gains)
        crossing = track.crosses_anode_cathode(geometry)
        for view in (0, 1):
            pos = steps.xyz[:, view]
            strip = np.clip(
                (pos // pitch).astype(np.int64), 0, geometry.channels_per_view[view] - 1
            )
            uniq, inv = np.unique(strip, return_inverse=True)
            qv = np.bincount(inv, weights=q * shares[view])
            ds = np.bincount(inv, weights=steps.length_cm)
            w = np.maximum(np.bincount(inv, weights=q), 1e-30)
            t = np.bincount(inv, weights=q * t_us) / w
            x = np.bincount(inv, weights=q * steps.xyz[:, 0]) / w
            y = np.bincount(inv, weights=q * steps.xyz[:, 1]) / w
            n = uniq.size
            edge = np.zeros(n, dtype=np.bool_)
            edge[[0, -1]] = True
            ix = np.clip((x // geometry.lem_size_cm).astype(np.int64), 0, geometry.lem_grid[0] - 1)
            iy = np.clip((y // geometry.lem_size_cm).astype(np.int64), 0, geometry.lem_grid[1] - 1)
            cols["event"].append(np.full(n, ev, dtype=np.int32))
            cols["view"].append(np.full(n, view, dtype=np.int8))
            cols["channel"].append(uniq.astype(np.int16))
            cols["tick"].append((t / geometry.tick_us).astype(np.float32))
            cols["charge"].append(qv.astype(np.float32))
            # peak ADC of the strip's pulse: its charge spread over the drift time of the
            # track's extent under the strip, at least the shaping's ~2.7 ticks
            dz_ticks = ds * abs(track.direction[2]) / geometry.drift_velocity_cm_per_tick
            width = np.maximum(dz_ticks, 2.7)
            cols["amplitude"].append((qv * geometry.adc_per_fc[view] / width).astype(np.float32))
            cols["track"].append(np.full(n, view, dtype=np.int16))
            cols["edge"].append(edge)
            cols["ds"].append(ds.astype(np.float32))
            cols["dqds"].append((qv / ds).astype(np.float32))
            cols["x"].append(x.astype(np.float32))
            cols["y"].append(y.astype(np.float32))
            cols["drift_us"].append(t.astype(np.float32))
            cols["lem"].append((1 + ix + geometry.lem_grid[0] * iy).astype(np.int8))
            cols["trk_crossing"].append(np.full(n, crossing))
            cols["trk_length3d"].append(np.full(n, track.length_cm, dtype=np.float32))
            cols["trk_t0"].append(np.zeros(n, dtype=np.float32))
            cols["trk_matched"].append(np.ones(n, dtype=np.bool_))
            cols["trk_partner"].append(np.full(n, 1 - view, dtype=np.int16))
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    out["file"] = np.zeros(out["view"].size, dtype=np.int16)
    return out


#: The columns :func:`farmtools.analysis.hits.read_reco_file` gives: the hit branches, then the
#: track fields joined onto each hit.
_KEYS = (
    *HIT_BRANCHES,
    "trk_crossing",
    "trk_length3d",
    "trk_t0",
    "trk_matched",
    "trk_partner",
)


def truth_of(settings: Any, geometry: Geometry = WA105_3X1X1) -> dict[str, Any]:
    """What the analyses should find: lifetime (us), gain per LEM, asymmetry."""
    tau = settings.lifetime_ms * 1e3 if math.isfinite(settings.lifetime_ms) else math.inf
    return {"tau_us": tau, "gains": settings.gains(geometry), "asymmetry": settings.asymmetry}
