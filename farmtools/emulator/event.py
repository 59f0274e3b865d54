"""One emulated event: muons, their charge, the shaped and digitised waveforms, and its truth.

:class:`EventGenerator` is the per-event API the data challenge and the tests use::

    settings = EmulatorSettings(lifetime_ms=7, gain=20)
    gen = EventGenerator(WA105_3X1X1, settings, np.random.default_rng(1))
    adc, truth = gen.next_event()   # adc: (1280, 1667) uint16 in VIEW order

The ADC array is in view order (the writer maps it to DAQ order); ``truth`` lists the tracks.
May import :mod:`farmtools.detector` and the other emulator modules below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.emulator.deposit import (
    DriftParams,
    TrackCharge,
    TrackPhysics,
    deposit_track,
    landau_loss,
)
from farmtools.emulator.muons import Track, extra_muons, maybe_stopping, trigger_muon
from farmtools.emulator.settings import EmulatorSettings
from farmtools.emulator.signal import NoiseModel, shape, shape_rows, shaping_kernel


@dataclass
class TrackTruth:
    """What the emulator put into one event for one muon."""

    track: Track
    anode_cathode: bool
    charge: TrackCharge

    def to_json(self) -> dict[str, Any]:
        t = self.track
        return {
            "entry_cm": [round(v, 4) for v in t.entry],
            "exit_cm": [round(v, 4) for v in t.exit],
            "t0_us": round(t.t0_us, 4),
            "trigger": t.trigger,
            "anode_cathode": self.anode_cathode,
            "length_cm": round(t.length_cm, 4),
            "cos_zenith": round(t.cos_zenith, 6),
            "energy_mev": round(self.charge.energy_mev, 4),
            "ionised_fc": round(self.charge.ionised_fc, 4),
            "collected_fc": [round(v, 4) for v in self.charge.collected_fc],
            "stops": t.stops,
            "delta_rays": self.charge.delta_rays,
            "delta_energy_mev": round(self.charge.delta_energy_mev, 4),
            "delta_collected_fc": [round(v, 4) for v in self.charge.delta_collected_fc],
        }


@dataclass
class EventTruth:
    """Truth of one event: the trigger source and every muon."""

    crt: bool
    tracks: list[TrackTruth] = field(default_factory=list)
    #: DAQ cards without data in this event (the header's data-quality count).
    bad_cards: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": "CRT" if self.crt else "PMT",
            "bad_cards": self.bad_cards,
            "tracks": [t.to_json() for t in self.tracks],
        }


class EventGenerator:
    """Makes events one after the other from one random stream (reproducible for a given seed)."""

    def __init__(
        self, geometry: Geometry, settings: EmulatorSettings, rng: np.random.Generator
    ) -> None:
        settings.check(geometry)
        landau_loss()  # build the energy-loss table now, not in the first event of a schedule
        self.geometry = geometry
        self.settings = settings
        self.rng = rng
        self.noise = NoiseModel.build(geometry, settings, rng)
        self.kernel = shaping_kernel(geometry, settings.peaking_us)
        n0, n1 = geometry.channels_per_view
        self.adc_per_fc = np.concatenate(
            [np.full(n0, geometry.adc_per_fc[0]), np.full(n1, geometry.adc_per_fc[1])]
        )
        lifetime_us = (
            settings.lifetime_ms * 1e3 if math.isfinite(settings.lifetime_ms) else math.inf
        )
        self.drift = DriftParams(
            lifetime_us, settings.diffusion_l_cm2_s, settings.diffusion_t_cm2_s
        )
        self.gains = settings.gains(geometry)
        # The track physics switches draw from a stream of their own (spawned: the main
        # stream is not advanced), so that a seed gives the same muons with them on or off.
        self._physics_rng = rng.spawn(1)[0]
        # ...and so do the early and side-entering muons beyond the simple model's (a second
        # child: the physics stream stays what it was)
        self._more_muons_rng = rng.spawn(1)[0]
        self._more_physics = TrackPhysics(
            settings.delta_rays, settings.multiple_scattering, self._more_muons_rng
        )
        self.physics = TrackPhysics(
            settings.delta_rays, settings.multiple_scattering, self._physics_rng
        )
        d = self.noise.defects
        self._bad_cards = d.bad_cards if d is not None else 0
        # Work buffers of next_event(), kept zero between events (only touched rows are reset).
        self._charge = np.zeros((geometry.n_channels, geometry.samples), dtype=np.float32)
        self._signal = np.zeros_like(self._charge)
        self._touched = np.zeros(geometry.n_channels, dtype=np.bool_)

    def tracks(self) -> tuple[bool, list[Track]]:
        """(CRT trigger?, the trigger muon and the extra muons of the next event)."""
        crt = bool(self.rng.random() < self.settings.crt_fraction)
        s = self.settings
        first = trigger_muon(self.rng, self.geometry, crt)
        extra = extra_muons(
            self.rng,
            self.geometry,
            s.muon_flux_per_m2_s,
            s.early_muons,
            s.side_muons,
            self._more_muons_rng,
        )
        stop_rng = self._physics_rng
        tracks = [first if crt else maybe_stopping(first, stop_rng, s.stopping_fraction)]
        tracks += [
            maybe_stopping(t, self._more_muons_rng if t.added else stop_rng, s.stopping_fraction)
            for t in extra
        ]
        return crt, tracks

    def charge(self, tracks: list[Track]) -> tuple[npt.NDArray[np.float32], list[TrackTruth]]:
        """Charge (fC) per view-order channel and tick of ``tracks``, with their truth."""
        g = self.geometry
        charge = np.zeros((g.n_channels, g.samples), dtype=np.float32)
        truths = []
        for track in tracks:
            deposited = deposit_track(
                charge,
                track,
                self._more_muons_rng if track.added else self.rng,
                g,
                self.drift,
                self.gains,
                self.settings.asymmetry,
                local_recombination=self.settings.recombination == "local",
                physics=self._more_physics if track.added else self.physics,
            )
            truths.append(TrackTruth(track, track.crosses_anode_cathode(g), deposited))
        return charge, truths

    def signal(self, charge: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Shaped signal in ADC (no pedestal, no noise) of a charge array."""
        out = np.zeros_like(charge)
        shape(charge, self.kernel, self.adc_per_fc, out)
        return out

    def digitise(
        self, signal: npt.NDArray[np.float32], out: npt.NDArray[np.uint16] | None = None
    ) -> npt.NDArray[np.uint16]:
        return self.noise.digitise(signal, self.geometry, self.settings, self.rng, out)

    def event_from_tracks(
        self, crt: bool, tracks: list[Track]
    ) -> tuple[npt.NDArray[np.uint16], EventTruth]:
        charge, truths = self.charge(tracks)
        return self.digitise(self.signal(charge)), EventTruth(crt, truths, self._bad_cards)

    def next_event(self) -> tuple[npt.NDArray[np.uint16], EventTruth]:
        """The ADC samples (view order, uint16 (n_channels, samples)) and truth of a new event.

        Same result as :meth:`event_from_tracks` on :meth:`tracks`, but shapes only the channels
        the tracks touched and reuses its buffers (the speed target is 20 events/s on one core).
        """
        crt, tracks = self.tracks()
        adc, truths = self.event_of(tracks)
        return adc, EventTruth(crt, truths, self._bad_cards)

    def event_of(
        self, tracks: list[Track], out: npt.NDArray[np.uint16] | None = None
    ) -> tuple[npt.NDArray[np.uint16], list[TrackTruth]]:
        """The fast path of :meth:`next_event` for given tracks (the 6x6x6 gives each CRP its
        pieces of the tracks crossing the whole volume), the samples into ``out`` if given."""
        g = self.geometry
        truths = []
        for track in tracks:
            deposited = deposit_track(
                self._charge,
                track,
                self._more_muons_rng if track.added else self.rng,
                g,
                self.drift,
                self.gains,
                self.settings.asymmetry,
                local_recombination=self.settings.recombination == "local",
                touched=self._touched,
                physics=self._more_physics if track.added else self.physics,
            )
            truths.append(TrackTruth(track, track.crosses_anode_cathode(g), deposited))
        rows = np.flatnonzero(self._touched)
        shape_rows(self._charge, self.kernel, self.adc_per_fc, self._signal, rows)
        adc = self.digitise(self._signal, out)
        self._charge[rows] = 0.0
        self._signal[rows] = 0.0
        self._touched[rows] = False
        return adc, truths
