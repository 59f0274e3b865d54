"""The 6x6x6 run: SPS spills, beam and cosmic triggers, beam particles, and the run's knobs.

* **Spills** [choice, spec "e.g. 4.8 s every ~20 s"]: spill ``k`` lasts ``spill_s`` from
  ``k * spill_period_s`` (run time 0 is the start of spill 0).
* **Triggers**: in a spill, beam triggers as a Poisson process of ``beam_rate_hz`` (100 Hz at
  most in the real DAQ); outside, cosmic (PMT) triggers at ``cosmic_trigger_hz``.  After each
  trigger the DAQ is dead for ``dead_time_s``.  The schedule is drawn from its own random
  stream, so the trigger times of a seed do not depend on the physics.
* **Beam particles**: each beam event holds the particle that fired the trigger (t0 = 0) and a
  Poisson number (mean ``beam_pileup``) of other beam particles at t0 uniform in
  ``[-full drift, +window)``.  They enter through the upstream face at the beam window
  (:mod:`farmtools.pddp_layout`), spread by ``beam_spot_cm`` (Gaussian in x and z) and
  ``beam_divergence_deg``, and are straight minimum-ionising tracks to the volume's wall
  [choice: no hadronic interaction, no shower].

May import :mod:`farmtools.pddp_layout` and the emulator's muon modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from farmtools import pddp_layout
from farmtools.emulator.box_muons import Box, segment_in_box
from farmtools.emulator.muons import Track


@dataclass(frozen=True)
class BeamSettings:
    """What a 6x6x6 run injects beyond :class:`EmulatorSettings`: spills, beam, light, LEM gains."""

    spill_s: float = 4.8
    spill_period_s: float = 20.0
    #: Beam trigger rate during a spill, and cosmic trigger rate outside spills (Hz).
    beam_rate_hz: float = 100.0
    cosmic_trigger_hz: float = 5.0
    #: Trigger dead time after every trigger (s).
    dead_time_s: float = 0.001
    #: Mean number of extra beam particles in a beam event (beyond the triggering one).
    beam_pileup: float = 0.3
    beam_spot_cm: float = 3.0
    beam_divergence_deg: float = 1.0
    #: Dark-count rate of every PMT (Hz).
    dark_rate_hz: float = 1000.0
    #: Detected photons per cm of track emitted over 4 pi (yield x efficiency) [choice].
    light_yield_per_cm: float = 1000.0
    #: Light attenuation length in the argon (cm).
    light_attenuation_cm: float = 1000.0
    #: Relative RMS of the per-LEM gains around ``EmulatorSettings.gain`` (drawn from the seed).
    gain_spread: float = 0.0
    #: Gain of every LEM, per CRP (4 x 36, ``--gain-map``); empty: ``gain`` and ``gain_spread``.
    gain_maps: tuple[dict[int, float], ...] = ()

    def check(self) -> None:
        """Raise ValueError naming the setting that cannot describe a run."""
        if not 0 < self.spill_s <= self.spill_period_s:
            raise ValueError(
                f"spill_s must be > 0 and <= spill_period_s (got {self.spill_s}, "
                f"{self.spill_period_s})"
            )
        for name in ("beam_rate_hz", "cosmic_trigger_hz", "dead_time_s", "beam_pileup",
                     "beam_spot_cm", "beam_divergence_deg", "dark_rate_hz",
                     "light_yield_per_cm", "gain_spread"):  # fmt: skip
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0 (got {v})")
        if self.beam_rate_hz == 0 and self.cosmic_trigger_hz == 0:
            raise ValueError("beam_rate_hz and cosmic_trigger_hz are both 0: no trigger ever")
        if not self.light_attenuation_cm > 0:
            raise ValueError(f"light_attenuation_cm must be > 0 (got {self.light_attenuation_cm})")
        if self.gain_maps and len(self.gain_maps) != pddp_layout.N_CRPS:
            raise ValueError(f"gain_maps must give the LEMs of the {pddp_layout.N_CRPS} CRPs")
        if not self.gain_spread < 0.5:
            raise ValueError(f"gain_spread must be below 0.5 (got {self.gain_spread})")

    def spill_of(self, time_s: float) -> int | None:
        """Index of the spill running at run time ``time_s``, or None between spills."""
        k = math.floor(time_s / self.spill_period_s)
        return k if time_s - k * self.spill_period_s < self.spill_s else None


@dataclass(frozen=True)
class Trigger:
    """One scheduled trigger: run time (s), beam or cosmic, and its spill."""

    time_s: float
    beam: bool
    spill: int | None


class TriggerSchedule:
    """Trigger after trigger, as the spills and rates give them (see the module doc)."""

    def __init__(self, settings: BeamSettings, rng: np.random.Generator) -> None:
        settings.check()
        self.s = settings
        self.rng = rng
        self.t = 0.0

    def next(self) -> Trigger:
        s = self.s
        while True:
            k = math.floor(self.t / s.spill_period_s)
            start = k * s.spill_period_s
            in_spill = self.t - start < s.spill_s
            end = start + s.spill_s if in_spill else start + s.spill_period_s
            rate = s.beam_rate_hz if in_spill else s.cosmic_trigger_hz
            dt = float(self.rng.exponential(1.0 / rate)) if rate > 0 else math.inf
            if self.t + dt < end:  # memoryless: a draw past the phase's end is redrawn there
                when = self.t + dt
                self.t = when + s.dead_time_s
                return Trigger(when, in_spill, k if in_spill else None)
            self.t = end


def beam_particles(
    rng: np.random.Generator,
    settings: BeamSettings,
    box_cm: Box,
    t_range_us: tuple[float, float],
) -> list[Track]:
    """The beam particles of one beam event: the triggering one (t0 = 0) and the pile-up."""
    n_extra = int(rng.poisson(settings.beam_pileup))
    t0s = [0.0] + [float(t) for t in rng.uniform(t_range_us[0], t_range_us[1], n_extra)]
    out = []
    nominal = np.asarray(pddp_layout.beam_direction())
    for i, t0 in enumerate(t0s):
        wx, wy, wz = pddp_layout.BEAM_WINDOW_CM
        p = (
            wx + settings.beam_spot_cm * float(rng.standard_normal()),
            wy,
            wz + settings.beam_spot_cm * float(rng.standard_normal()),
        )
        d = nominal + math.radians(settings.beam_divergence_deg) * rng.standard_normal(3)
        d /= np.linalg.norm(d)
        seg = segment_in_box(p, (float(d[0]), float(d[1]), float(d[2])), box_cm)
        if seg is None:  # the spot's tail outside the face: the particle misses the volume
            continue
        out.append(Track(entry=seg[0], exit=seg[1], t0_us=t0, trigger=i == 0))
    return out
