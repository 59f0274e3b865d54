"""One 6x6x6 event: beam particles and overlapping cosmics through the whole volume, charge and light.

The volume (:mod:`farmtools.pddp_layout`) is one drift volume of 6 x 6 x 6 m3 under four CRPs.
An event holds

* for a beam trigger: the beam particles (:func:`farmtools.emulator.beam.beam_particles`);
  for a cosmic trigger: the cosmic muon that fired it (t0 = 0);
* cosmic muons through the box (top and sides, :mod:`farmtools.emulator.box_muons`), a Poisson
  number of mean ``rate x (full drift + window)`` at t0 uniform in ``[-full drift, +window)``:
  a muon that crossed up to one drift time before the trigger still drifts charge into the
  window, one crossing near the window's end leaves only its top part, so tracks are cut by
  the window's edges as in the detector.

Each straight track is cut into its pieces over each CRP (and to the depths whose charge can
arrive inside the window, which only saves time); each piece, in its CRP's own frame, is
deposited by that CRP's :class:`~farmtools.emulator.event.EventGenerator` (the 3x1x1 chain:
Landau loss, recombination, lifetime, diffusion, LEM gain, shaping, noise), whose LEM gains are
that CRP's 36.  The LRO segment holds the flash of every particle and the dark counts
(:mod:`farmtools.emulator.light`).  The truth of every particle is returned as JSON-ready dicts.

May import :mod:`farmtools.detector`, :mod:`farmtools.pddp_layout`, :mod:`farmtools.rawdata`
and the emulator modules.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools import pddp_layout
from farmtools.detector import Geometry
from farmtools.emulator.beam import BeamSettings, Trigger, beam_particles
from farmtools.emulator.box_muons import box_rate_hz, muons_through_box
from farmtools.emulator.event import EventGenerator, TrackTruth
from farmtools.emulator.light import dark_pulses, expected_pe, flash_pulses, lro_window_ns
from farmtools.emulator.muons import Track
from farmtools.emulator.settings import EmulatorSettings
from farmtools.rawdata.format import TriggerType
from farmtools.rawdata.pddp_format import LroPulse, pack_lro

#: Extra time (us) around the window for which charge is deposited: diffusion and shaping.
_WINDOW_MARGIN_US = 20.0


def full_drift_us(geometry: Geometry) -> float:
    return geometry.full_drift_ticks * geometry.tick_us


def window_us(geometry: Geometry) -> float:
    return geometry.samples * geometry.tick_us


def mean_cosmics(geometry: Geometry, flux_per_m2_s: float) -> float:
    """Mean number of cosmic muons per event (beyond a cosmic trigger's own): rate x t0 range."""
    span_s = (full_drift_us(geometry) + window_us(geometry)) * 1e-6
    return box_rate_hz(pddp_layout.VOLUME_CM, flux_per_m2_s) * span_s


def crp_pieces(
    track: Track, z_range_cm: tuple[float, float] = (-math.inf, math.inf)
) -> list[tuple[int, Track]]:
    """(CRP, the piece of ``track`` over it in the CRP's frame) for every CRP it crosses, in
    order along the track; only depths in ``z_range_cm`` are kept."""
    e = np.asarray(track.entry)
    d = np.asarray(track.exit) - e
    pieces = []
    for crp in range(pddp_layout.N_CRPS):
        ox, oy = pddp_layout.crp_origin_cm(crp)
        bounds = (
            (ox, ox + pddp_layout.CRP_SIDE_CM),
            (oy, oy + pddp_layout.CRP_SIDE_CM),
            z_range_cm,
        )
        lo, hi = 0.0, 1.0
        for axis, (a, b) in enumerate(bounds):
            if abs(d[axis]) < 1e-12:
                if not a <= e[axis] < b:
                    lo, hi = 1.0, 0.0
                continue
            s1, s2 = (a - e[axis]) / d[axis], (b - e[axis]) / d[axis]
            lo, hi = max(lo, min(s1, s2)), min(hi, max(s1, s2))
        if hi - lo <= 1e-9:
            continue
        start, end = _local(e + lo * d, ox, oy), _local(e + hi * d, ox, oy)
        pieces.append((lo, crp, Track(start, end, track.t0_us, track.trigger)))
    pieces.sort(key=lambda x: x[0])
    return [(crp, piece) for _lo, crp, piece in pieces]


def _local(p: npt.NDArray[np.float64], ox: float, oy: float) -> tuple[float, float, float]:
    """A point of the volume in the frame of the CRP whose corner is (ox, oy), clamped to it."""
    side = pddp_layout.CRP_SIDE_CM
    return (
        min(max(float(p[0]) - ox, 0.0), side),
        min(max(float(p[1]) - oy, 0.0), side),
        float(p[2]),
    )


def lem_gains(settings: EmulatorSettings, beam: BeamSettings, seed: int) -> list[dict[int, float]]:
    """Gain of each CRP's LEMs 1..36: the given maps, or ``gain`` spread by ``gain_spread``
    (drawn from the seed alone)."""
    if beam.gain_maps:
        return [dict(m) for m in beam.gain_maps]
    rng = np.random.default_rng([seed, 0x6A1])
    out = []
    for _crp in range(pddp_layout.N_CRPS):
        g = settings.gain * (1.0 + beam.gain_spread * rng.standard_normal(36))
        out.append({lem: round(float(max(v, 0.0)), 4) for lem, v in enumerate(g, start=1)})
    return out


@dataclass
class PddpEvent:
    """One emulated 6x6x6 event: view-order ADC (the generator's reused buffer: copy it to keep
    it past the next event), LRO bytes, header trigger type and truth."""

    adc: npt.NDArray[np.uint16]
    lro: bytes
    trigger_type: int
    truth: dict[str, Any]


class PddpEventGenerator:
    """6x6x6 events one after the other from a seed (reproducible)."""

    def __init__(
        self,
        geometry: Geometry,
        settings: EmulatorSettings,
        beam: BeamSettings,
        seed: int,
        workers: int = 1,
    ) -> None:
        if geometry.n_crps != 4:
            raise ValueError(f"the {geometry.name} is not the 4-CRP 6x6x6")
        beam.check()
        self.geometry = geometry
        self.settings = settings
        self.beam = beam
        #: Threads that emulate the CRPs of an event side by side (the compiled loops release
        #: the GIL); the events are the same for any number.
        self.workers = workers
        self.gains = lem_gains(settings, beam, seed)
        crp = geometry.crp_geometry()
        # each CRP its LEM gains, and its own defective channels (drawn from its settings' seed)
        self.gens = [
            EventGenerator(
                crp,
                replace(settings, gain_map=self.gains[c],
                        seed=None if settings.seed is None else settings.seed * geometry.n_crps + c),
                np.random.default_rng([seed, c]),
            )
            for c in range(geometry.n_crps)
        ]  # fmt: skip
        self.rng = np.random.default_rng([seed, 0x666])
        self.drift_us = full_drift_us(geometry)
        self.window_us = window_us(geometry)
        self.lro_window = lro_window_ns(self.drift_us, self.window_us)
        self.pmts = pddp_layout.pmt_positions_cm()
        self.mean_cosmics = mean_cosmics(geometry, settings.muon_flux_per_m2_s)
        #: The samples of every event, one reused buffer (PddpEvent.adc): copy it to keep it.
        self._adc = np.empty((geometry.n_channels, geometry.samples), dtype=np.uint16)

    def particles(self, beam: bool) -> list[tuple[str, Track]]:
        """(kind, track) of every particle of the next event; the triggering one first."""
        box = pddp_layout.VOLUME_CM
        t_range = (-self.drift_us, self.window_us)
        out: list[tuple[str, Track]] = []
        if beam:
            out += [("beam", t) for t in beam_particles(self.rng, self.beam, box, t_range)]
        else:
            out += [("cosmic", t) for t in muons_through_box(self.rng, box, 1, np.zeros(1), True)]
        n = int(self.rng.poisson(self.mean_cosmics))
        t0s = self.rng.uniform(t_range[0], t_range[1], n)
        out += [("cosmic", t) for t in muons_through_box(self.rng, box, n, t0s, False)]
        return out

    def event(
        self, trigger: Trigger, particles: list[tuple[str, Track]] | None = None
    ) -> PddpEvent:
        """The next event for ``trigger`` (beam or cosmic); ``particles`` (kind, track) replace
        the drawn ones (tests place tracks where they want them)."""
        g = self.geometry
        v = g.drift_velocity_mm_per_us * 0.1
        per_crp: list[list[Track]] = [[] for _ in self.gens]
        owner: list[list[int]] = [[] for _ in self.gens]
        if particles is None:
            particles = self.particles(trigger.beam)
        # t0 on the ns grid of the LRO: a flash's time is the particle's t0 exactly
        particles = [(k, replace(t, t0_us=round(t.t0_us * 1000.0) / 1000.0)) for k, t in particles]
        records: list[dict[str, Any]] = []
        collected = np.zeros((len(particles), 2))
        pulses: list[LroPulse] = []
        for i, (kind, track) in enumerate(particles):
            z_lo = v * (-_WINDOW_MARGIN_US - track.t0_us)
            z_hi = v * (self.window_us + _WINDOW_MARGIN_US - track.t0_us)
            for crp, piece in crp_pieces(track, (z_lo, z_hi)):
                per_crp[crp].append(piece)
                owner[crp].append(i)
            mu = expected_pe(
                track, self.pmts, self.beam.light_yield_per_cm, self.beam.light_attenuation_cm
            )
            flash = flash_pulses(self.rng, mu, track.t0_us)
            pulses += flash
            records.append(
                {
                    "kind": kind,
                    "trigger": bool(track.trigger),
                    "t0_us": track.t0_us,
                    "t0_ns": round(track.t0_us * 1000.0),
                    "entry_cm": [round(c, 4) for c in track.entry],
                    "exit_cm": [round(c, 4) for c in track.exit],
                    "length_cm": round(track.length_cm, 4),
                    "crps": [crp for crp, _p in crp_pieces(track)],
                    "anode_cathode": bool(
                        track.entry[2] <= 1e-6 and track.exit[2] >= g.drift_length_cm - 1e-6
                    ),
                    "flash_pe": round(sum(p.charge_pe for p in flash), 3),
                }
            )
        n_crp = g.n_channels // g.n_crps

        def crp_event(c: int) -> list[TrackTruth]:
            out = self._adc[c * n_crp : (c + 1) * n_crp]
            return self.gens[c].event_of(per_crp[c], out)[1]

        if self.workers > 1:  # the CRPs are independent: own random stream, buffers, rows
            with ThreadPoolExecutor(self.workers) as pool:
                crp_truths = list(pool.map(crp_event, range(len(self.gens))))
        else:
            crp_truths = [crp_event(c) for c in range(len(self.gens))]
        for c, truths in enumerate(crp_truths):
            for i, t in zip(owner[c], truths, strict=True):
                collected[i] += t.charge.collected_fc
        for r, q in zip(records, collected, strict=True):
            r["collected_fc"] = [round(float(v), 4) for v in q]
        dark = dark_pulses(self.rng, len(self.pmts), self.beam.dark_rate_hz, self.lro_window)
        pulses += dark
        pulses.sort(key=lambda p: (p.time_ns, p.pmt))
        truth = {
            "trigger": "BEAM" if trigger.beam else "COSMIC",
            "spill": trigger.spill,
            "run_time_s": round(trigger.time_s, 9),
            "particles": records,
            "dark_counts": len(dark),
        }
        ttype = int(TriggerType.BEAM if trigger.beam else TriggerType.PMT)
        return PddpEvent(self._adc, pack_lro(pulses), ttype, truth)
