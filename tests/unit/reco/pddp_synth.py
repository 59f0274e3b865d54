"""Small 6x6x6 events from given muons, with their light, for the reconstruction's tests.

Independent of the reconstruction: each muon (global frame of docs/protodune-dp.md) is cut to
each CRP and deposited by the 3x1x1 emulator with the CRP's geometry; its light is the
expected photo-electrons ``Y ds cos(alpha) A exp(-r / 10 m) / (4 pi r^2)`` per PMT, Poisson-drawn, as one pulse
at its t0; dark counts are single photo-electrons at random times.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from farmtools import pddp_layout
from farmtools.detector import Geometry
from farmtools.emulator.box_muons import segment_in_box
from farmtools.emulator.event import EventGenerator
from farmtools.emulator.muons import Track
from farmtools.emulator.settings import EmulatorSettings
from farmtools.rawdata.pddp_format import LroPulse, pack_lro
from farmtools.rawdata.pddp_writer import make_fragment, write_pddp_file


def clip(track: Track, lo: tuple[float, float], hi: tuple[float, float]) -> Track | None:
    """The part of ``track`` above the anode rectangle ``lo..hi``, in the rectangle's frame."""
    a = np.asarray(track.entry, dtype=np.float64)
    d = np.asarray(track.exit, dtype=np.float64) - a
    s0, s1 = 0.0, 1.0
    for axis in (0, 1):
        if d[axis] == 0.0:
            if not lo[axis] <= a[axis] < hi[axis]:
                return None
            continue
        u = (lo[axis] - a[axis]) / d[axis]
        v = (hi[axis] - a[axis]) / d[axis]
        s0, s1 = max(s0, min(u, v)), min(s1, max(u, v))
    if s1 - s0 < 1e-6:
        return None
    shift = np.array([lo[0], lo[1], 0.0])
    p, q = a + s0 * d - shift, a + s1 * d - shift
    return Track((p[0], p[1], p[2]), (q[0], q[1], q[2]), track.t0_us, track.trigger)


def event_adc(
    geometry: Geometry, tracks: list[Track], settings: EmulatorSettings, seed: int
) -> npt.NDArray[np.uint16]:
    """View-order ADC of an event holding ``tracks`` (global frame)."""
    crp = geometry.crp_geometry()
    ex, ey = crp.extent_cm
    blocks = []
    for c in range(geometry.n_crps):
        x0, y0 = pddp_layout.crp_origin_cm(c)
        mine = [t for t in (clip(t, (x0, y0), (x0 + ex, y0 + ey)) for t in tracks) if t]
        gen = EventGenerator(crp, settings, np.random.default_rng([seed, c]))
        blocks.append(gen.event_from_tracks(False, mine)[0])
    return np.concatenate(blocks)


def light(
    geometry: Geometry,
    tracks: list[Track],
    rng: np.random.Generator,
    yield_per_cm: float = 1000.0,
    dark_pulses: int = 200,
) -> bytes:
    """The LRO segment of ``tracks``: a flash per track at its t0 and random dark counts."""
    pmts = pddp_layout.pmt_positions_cm()
    area = math.pi * 10.2**2
    pulses = []
    for given in tracks:
        # the light of the whole straight line through the volume, as the emulator gives it
        whole = segment_in_box(given.entry, given.direction, pddp_layout.VOLUME_CM)
        assert whole is not None
        t = Track(whole[0], whole[1], given.t0_us, given.trigger)
        n = max(1, math.ceil(t.length_cm / 5.0))
        s = (np.arange(n) + 0.5) / n
        pts = np.asarray(t.entry)[None, :] + s[:, None] * np.subtract(t.exit, t.entry)[None, :]
        delta = pmts[None, :, :] - pts[:, None, :]
        r2 = (delta**2).sum(axis=2)
        cos_a = np.clip(delta[:, :, 2] / np.sqrt(r2), 0.0, None)
        w = area * cos_a * np.exp(-np.sqrt(r2) / 1000.0) / (4 * math.pi * r2)
        mu = yield_per_cm * t.length_cm / n * w.sum(axis=0)
        for p, k in enumerate(rng.poisson(mu)):
            if k:
                pulses.append(LroPulse(p, round(t.t0_us * 1000), float(k)))
    window_us = geometry.samples * geometry.tick_us
    drift_us = geometry.full_drift_ticks * geometry.tick_us
    for _ in range(dark_pulses):
        t_ns = round(rng.uniform(-drift_us, window_us) * 1000)
        pulses.append(LroPulse(int(rng.integers(pddp_layout.N_PMTS)), t_ns, 1.0))
    pulses.sort(key=lambda p: p.time_ns)
    return pack_lro(pulses, pddp_layout.N_PMTS)


def write_file(
    path: Path,
    geometry: Geometry,
    events: list[tuple[npt.NDArray[np.uint16], bytes]],
    run: int = 7,
) -> Path:
    """A 6x6x6 event file of (view-order ADC, LRO segment) events, as the L2 builder writes."""
    fc = geometry.fragment_channels
    built = []
    for trigger, (view, lro) in enumerate(events):
        daq = np.empty_like(view)
        daq[geometry.view_to_daq] = view
        daq[~geometry.instrumented] = 0
        built.append(
            [
                make_fragment(
                    daq[k * fc : (k + 1) * fc],
                    run=run,
                    trigger_type=1,
                    trigger_number=trigger,
                    time_ns=1_700_000_000_000_000_000 + trigger,
                    event_number=trigger,
                    missing_cards=geometry.missing_cards(k),
                    compress=False,
                    lro=lro if k == 0 else b"",
                )
                for k in range(geometry.l1_builders)
            ]
        )
    write_pddp_file(path, run, built)
    return path
