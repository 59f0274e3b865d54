"""Flashes in the light readout (LRO) of a 6x6x6 event: the times at which something happened.

The LRO segment (docs/protodune-dp.md) lists PMT pulses, each with its PMT, its time from the
trigger (ns) and its charge (photo-electrons).  A particle crossing the argon gives a flash: a
pulse on many PMTs within tens of ns; dark counts are single pulses of 1-2 PE at random times.
A flash is a group of pulses no more than ``gap_ns`` apart that fires at least ``min_pmts``
PMTs with ``min_pe`` photo-electrons in all, so that chance coincidences of dark counts are not
flashes.  Its time is the charge-weighted mean of its pulses' times and its pattern the PE per
PMT, which :mod:`.t0match` compares with the light each track would give.

Pure numpy; may import :mod:`farmtools.rawdata.pddp_format` for the byte layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from farmtools.rawdata.pddp_format import LRO_HEADER, LRO_PULSE

#: One LRO pulse record as numpy reads it (the layout of ``LRO_PULSE``).
PULSE_DTYPE = np.dtype([("pmt", "<u2"), ("flags", "<u2"), ("time_ns", "<i4"), ("pe", "<f4")])
assert PULSE_DTYPE.itemsize == LRO_PULSE.size


@dataclass(frozen=True)
class FlashParams:
    """Knobs of the flash finder."""

    #: Pulses closer than this in time (ns) belong to one group.
    gap_ns: float = 100.0
    #: A group is a flash when it fires this many PMTs...
    min_pmts: int = 3
    #: ...with this many photo-electrons in all.
    min_pe: float = 20.0


@dataclass(frozen=True)
class Flashes:
    """The flashes of one event, in time order (columns of equal length)."""

    #: Time from the trigger (us).
    time_us: npt.NDArray[np.float64]
    #: Photo-electrons in all.
    pe: npt.NDArray[np.float64]
    #: (n_flashes, n_pmts) photo-electrons per PMT: the pattern matched to the tracks.
    pmt_pe: npt.NDArray[np.float64]

    @property
    def n(self) -> int:
        return int(self.time_us.size)

    @classmethod
    def none(cls, n_pmts: int) -> Flashes:
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, n_pmts)))


def lro_pulses(segments: list[bytes]) -> npt.NDArray[np.void]:
    """The pulses of an event's LRO segments (already checked by the reader), as PULSE_DTYPE."""
    parts = [
        np.frombuffer(seg, dtype=PULSE_DTYPE, offset=LRO_HEADER.size)
        for seg in segments
        if len(seg) > LRO_HEADER.size
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=PULSE_DTYPE)


def find_flashes(
    pulses: npt.NDArray[np.void], n_pmts: int, params: FlashParams = FlashParams()
) -> Flashes:
    """Group ``pulses`` (PULSE_DTYPE) in time and keep the groups that are flashes."""
    keep = pulses["pmt"] < n_pmts
    pulses = pulses[keep]
    if pulses.size == 0:
        return Flashes.none(n_pmts)
    order = np.argsort(pulses["time_ns"], kind="stable")
    t = pulses["time_ns"][order].astype(np.float64)
    pe = pulses["pe"][order].astype(np.float64)
    pmt = pulses["pmt"][order].astype(np.intp)
    starts = np.flatnonzero(np.r_[True, np.diff(t) > params.gap_ns])
    group = np.cumsum(np.r_[True, np.diff(t) > params.gap_ns]) - 1
    pattern = np.zeros((starts.size, n_pmts))
    np.add.at(pattern, (group, pmt), pe)
    total = pattern.sum(axis=1)
    fired = (pattern > 0).sum(axis=1)
    weight = np.add.reduceat(pe, starts)
    mean_t = np.add.reduceat(pe * t, starts) / np.where(weight > 0, weight, 1.0)
    ok = (fired >= params.min_pmts) & (total >= params.min_pe)
    return Flashes(mean_t[ok] * 1e-3, total[ok], pattern[ok])
