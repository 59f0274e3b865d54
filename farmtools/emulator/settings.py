"""What an emulated run injects: :class:`EmulatorSettings`, and the LEM gain-map file format.

The settings are the *truth* the closure tests compare against (lifetime, gain per LEM,
asymmetry), plus the knobs of the noise model and of the trigger.  They are a plain frozen
dataclass so that the data challenge can build them in Python and the CLI from options, and so
that :mod:`farmtools.emulator.truth` can write them verbatim into each file's sidecar.

Gain-map file (``--gain-map FILE``): a JSON object mapping the continuous LEM number of
:meth:`farmtools.detector.Geometry.lem_number` (``"1"`` .. ``"12"`` for the 3x1x1,
``lem = 1 + ix + 2*iy``) to the effective gain of that LEM, e.g.
``{"1": 20.0, "2": 19.5, ..., "12": 18.5}``.  Every LEM must be present.

May import :mod:`farmtools.detector` only.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from farmtools.detector import WA105_3X1X1, Geometry


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything one emulated run injects; the defaults are the 3x1x1's usual conditions."""

    #: Electron lifetime in ms; ``math.inf`` for perfectly pure argon.
    lifetime_ms: float = 7.0
    #: Effective gain per LEM, keyed by continuous LEM number (1..n_lems).  Empty: uniform ``gain``.
    gain_map: dict[int, float] = field(default_factory=dict)
    #: Uniform effective gain, used for every LEM missing from ``gain_map``.
    gain: float = 20.0
    #: View charge asymmetry A: view 0 gets 0.5*(1-A), view 1 0.5*(1+A) of the amplified charge.
    asymmetry: float = 0.0
    #: Master seed of the run; ``None`` picks one from the OS (and the truth records it).
    seed: int | None = None
    #: Fraction of triggers given by the CRT-like trigger, which only fires on muons crossing
    #: from anode to cathode; the rest are PMT triggers on any muon crossing the CRP area.
    crt_fraction: float = 0.5
    #: Recombination: ``"mip"`` applies Birks at the mean MIP dE/dx (R = 0.698 at 0.5 kV/cm, the
    #: spec's 9.95 fC/cm) to every step; ``"local"`` uses each step's own dE/dx, so that Landau
    #: tails recombine more and the mean charge drops to about 9.4 fC/cm.
    recombination: str = "mip"
    #: Cosmic muon flux at the surface (per m2 per s), for the extra tracks in the window.
    muon_flux_per_m2_s: float = 166.0
    #: Longitudinal and transverse diffusion coefficients (cm2/s).
    diffusion_l_cm2_s: float = 4.0
    diffusion_t_cm2_s: float = 13.0
    #: Shaping: semi-Gaussian t^2 exp(-t/tau) with its peak at this time (us).
    peaking_us: float = 1.0
    #: Mean pedestal and its channel-to-channel spread (ADC).
    pedestal_adc: float = 400.0
    pedestal_spread_adc: float = 5.0
    #: White noise RMS is drawn per channel uniformly in this range (ADC).
    white_noise_adc: tuple[float, float] = (1.0, 2.0)
    #: RMS of the noise shared by each group of 32 DAQ channels (ADC).
    coherent_noise_adc: float = 1.0
    #: Amplitude of the slow per-channel baseline drift (ADC) and its period range (ms).
    baseline_drift_adc: float = 1.0
    baseline_drift_period_ms: tuple[float, float] = (2.0, 10.0)
    # --- detector realism (docs/emulator.md, "Realism switches") ------------------------------
    #: Fraction of the white noise's variance generated *before* the shaping (the
    #: preamplifier's own noise: correlated over ~1 us, like the signal, so the hit finder's
    #: width cut does not reject it more easily than real noise); 0 = all white.
    shaped_noise_fraction: float = 0.0
    #: Relative RMS of the per-channel electronics gain (ADC per fC of each channel).
    channel_gain_spread: float = 0.03
    #: Fractions of dead channels (no signal, no noise but 0.2 ADC) and noisy ones (white noise
    #: x ``noisy_factor``).  Which channels is a property of the detector: drawn from ``seed``
    #: alone, the same in every file and run of that seed (never from the event stream).
    dead_channel_fraction: float = 0.0
    noisy_channel_fraction: float = 0.0
    noisy_factor: float = 5.0
    #: DAQ cards (64 channels each, 20 in the 3x1x1) that deliver no data: their channels sit at
    #: a constant, and every event header counts them (data-quality flag, bits 0-5).
    bad_cards: int = 0
    #: Extra muons also arriving before the trigger (t0 down to minus the full drift time: the
    #: part of their charge that drifts into the window is seen), and entering through the
    #: side walls (lines from an anode plane extended around the CRP, kept if they hit the
    #: volume), as real cosmic muons do.
    early_muons: bool = False
    side_muons: bool = False
    #: Knock-on electrons above the step loss's cut (~2.6 MeV) as separate short tracks, and the
    #: muon's multiple scattering (Highland, 4 GeV); docs/emulator.md "Track physics".
    delta_rays: bool = False
    multiple_scattering: bool = False
    #: Fraction of the muons (PMT triggers and extra ones; a CRT trigger's muon reaches the CRT)
    #: that stop inside the volume, uniformly along their path, with the Bragg rise of dE/dx.
    stopping_fraction: float = 0.04

    def gain_of_lem(self, lem: int) -> float:
        return self.gain_map.get(lem, self.gain)

    def gains(self, geometry: Geometry = WA105_3X1X1) -> dict[int, float]:
        """The gain of every LEM, 1..n_lems."""
        return {lem: self.gain_of_lem(lem) for lem in range(1, geometry.n_lems + 1)}

    def check(self, geometry: Geometry = WA105_3X1X1) -> None:
        """Raise ValueError naming the setting that cannot describe a detector."""
        if not (self.lifetime_ms > 0):
            raise ValueError(f"lifetime_ms must be > 0 (got {self.lifetime_ms})")
        if not -1.0 <= self.asymmetry <= 1.0:
            raise ValueError(f"asymmetry must be within -1..1 (got {self.asymmetry})")
        if self.recombination not in ("mip", "local"):
            raise ValueError(f"recombination must be 'mip' or 'local' (got {self.recombination!r})")
        if not 0.0 <= self.crt_fraction <= 1.0:
            raise ValueError(f"crt_fraction must be within 0..1 (got {self.crt_fraction})")
        for lem, g in self.gains(geometry).items():
            if not (g >= 0 and math.isfinite(g)):
                raise ValueError(f"gain of LEM {lem} must be a finite number >= 0 (got {g})")
        for name in (
            "shaped_noise_fraction",
            "dead_channel_fraction",
            "noisy_channel_fraction",
            "stopping_fraction",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within 0..1 (got {v})")
        if not 0.0 <= self.channel_gain_spread < 0.5:
            raise ValueError(
                f"channel_gain_spread must be within 0..0.5 (got {self.channel_gain_spread})"
            )
        n_cards = geometry.n_channels // (2 * geometry.coherent_group)
        if not 0 <= self.bad_cards <= min(n_cards, 63):
            raise ValueError(
                f"bad_cards must be within 0..{min(n_cards, 63)} (got {self.bad_cards})"
            )
        bad = sorted(set(self.gain_map) - set(range(1, geometry.n_lems + 1)))
        if bad:
            raise ValueError(f"gain map names LEMs {bad} outside 1..{geometry.n_lems}")


#: The realism switches at realistic values (``farmtools daq emulate --realistic``).  The
#: defaults are realistic only where the analyses were shown to stay unbiased (the gain
#: spread, stopping muons); docs/emulator.md says per switch why the others are not yet.
REALISTIC: dict[str, object] = {
    "shaped_noise_fraction": 0.5,
    "channel_gain_spread": 0.03,
    "dead_channel_fraction": 0.01,
    "noisy_channel_fraction": 0.01,
    "early_muons": True,
    "side_muons": True,
    "delta_rays": True,
    "multiple_scattering": True,
    "stopping_fraction": 0.04,
}


#: Every realism switch off: the straight-line model alone (the closure figures' emulator
#: unless docs/analysis.md says otherwise).
BASELINE: dict[str, object] = {
    "shaped_noise_fraction": 0.0,
    "channel_gain_spread": 0.0,
    "dead_channel_fraction": 0.0,
    "noisy_channel_fraction": 0.0,
    "bad_cards": 0,
    "early_muons": False,
    "side_muons": False,
    "delta_rays": False,
    "multiple_scattering": False,
    "stopping_fraction": 0.0,
}


class GainMapError(ValueError):
    """A gain-map file is unreadable or incomplete; the message names the file and the problem."""


def load_gain_map(
    path: str | os.PathLike[str], geometry: Geometry = WA105_3X1X1
) -> dict[int, float]:
    """Read a gain-map JSON file (see the module docstring); every LEM 1..n_lems must be given."""
    p = Path(path)
    data = _read_json(p)
    return _gains_of(data, p, geometry)


def load_crp_gain_maps(
    path: str | os.PathLike[str], geometry: Geometry, n_crps: int
) -> list[dict[int, float]]:
    """Read a 6x6x6 gain-map file: ``{"0": {"1": 20.0, ..., "36": 19.0}, ..., "3": {...}}``,
    every LEM of every CRP (``geometry`` is one CRP's); GainMapError names what is wrong."""
    p = Path(path)
    data = _read_json(p)
    if not isinstance(data, dict) or sorted(data) != [str(c) for c in range(n_crps)]:
        raise GainMapError(
            f'{p}: a 6x6x6 gain map is a JSON object {{"0": {{"1": 20.0, ...}}, ...}} '
            f"with one entry per CRP 0..{n_crps - 1}"
        )
    return [_gains_of(data[str(c)], p, geometry, f"CRP {c}: ") for c in range(n_crps)]


def _read_json(p: Path) -> object:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise GainMapError(f"{p}: cannot read gain map: {exc}") from None


def _gains_of(data: object, p: Path, geometry: Geometry, where: str = "") -> dict[int, float]:
    """The gain per LEM of one parsed map; every LEM 1..n_lems must be given."""
    if not isinstance(data, dict):
        raise GainMapError(
            f'{p}: {where}a gain map is a JSON object {{"1": 20.0, ...}}, not {type(data).__name__}'
        )
    gains: dict[int, float] = {}
    for key, value in data.items():
        try:
            lem = int(key)
            g = float(value)
        except (TypeError, ValueError):
            raise GainMapError(
                f"{p}: {where}entry {key!r}: {value!r} is not 'LEM number': gain"
            ) from None
        if not 1 <= lem <= geometry.n_lems:
            raise GainMapError(f"{p}: {where}LEM {lem} is outside 1..{geometry.n_lems}")
        if not (g >= 0 and math.isfinite(g)):
            raise GainMapError(
                f"{p}: {where}LEM {lem}: gain {value!r} must be a finite number >= 0"
            )
        gains[lem] = g
    missing = sorted(set(range(1, geometry.n_lems + 1)) - set(gains))
    if missing:
        raise GainMapError(f"{p}: {where}gain map lacks LEMs {missing}")
    return gains
