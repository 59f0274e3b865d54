"""Class of one built 6x6x6 event from cheap information: header, light, a one-pass charge scan.

The filter must see every event at the trigger rate, which the reconstruction cannot
(docs/final.md), so an event's class comes from what costs one pass over its bytes:

* the event table and fragment headers (already read when the file is opened): an L1 fragment
  missing makes the event **incomplete**; cards missing beyond the non-instrumented ones, an
  unreadable LRO segment or a compressed CRO stream that does not decode make it **noisy**
  (noisy or corrupt: kept for diagnosis by default);
* the LRO segment: a **flash** is light on at least ``flash_min_pmts`` PMTs within
  ``flash_window_ns`` of the trigger, adding up to ``flash_min_pe`` photo-electrons (the
  particle that fired the trigger has t0 = 0; a dark count is one p.e. on one PMT);
* the CRO data, scanned once in their packed 12-bit form (a compiled kernel, no decoded copy
  of the event): per channel the mean, RMS and maximum.  A channel is *hit* when its maximum
  stands ``hit_adc`` above its mean; a CRP is *active* with ``min_hit_channels`` hit channels.
  The event is **noisy** when ``noisy_fraction`` of the instrumented channels have an RMS above
  ``noisy_rms_adc``.

Then: no flash and no active CRP is **empty**; otherwise a beam trigger (header trigger type
``BEAM``) is **beam** (with activity), any other trigger **cosmic** (cosmic-only).
Imports :mod:`farmtools.detector` and :mod:`farmtools.rawdata` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numba
import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.rawdata import huffman
from farmtools.rawdata.format import TriggerType
from farmtools.rawdata.pddp_format import FRAGMENT_HEADER_SIZE, unpack_lro
from farmtools.rawdata.pddp_reader import PDDPFile


class EventClass(StrEnum):
    BEAM = "beam"
    COSMIC = "cosmic"
    EMPTY = "empty"
    NOISY = "noisy"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class Thresholds:
    """Cuts of the cheap classification (ADC counts and photo-electrons; docs/final.md)."""

    hit_adc: float = 30.0
    min_hit_channels: int = 3
    noisy_rms_adc: float = 20.0
    noisy_fraction: float = 0.3
    flash_window_ns: int = 1000
    flash_min_pmts: int = 3
    flash_min_pe: float = 20.0


@dataclass(frozen=True)
class Classified:
    """One event's class, why, and the cheap figures it came from."""

    index: int
    trigger: int
    event: int
    trigger_type: int
    size: int
    klass: EventClass
    reason: str
    hit_channels: tuple[int, ...] = ()  # per CRP
    flash_pe: float = 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _store(
    stats: npt.NDArray[np.float64], c: int, s: np.int64, s2: np.int64, mx: np.int64, ns: int
) -> None:  # pragma: no cover - compiled
    """Channel ``c``'s mean, RMS and maximum from its sum, sum of squares and maximum."""
    mean = s / ns
    stats[c, 0] = mean
    stats[c, 1] = np.sqrt(max(s2 / ns - mean * mean, 0.0))
    stats[c, 2] = mx


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scan_even(
    buf: npt.NDArray[np.uint8], n_channels: int, ns: int, stats: npt.NDArray[np.float64]
) -> None:  # pragma: no cover - compiled
    """Mean, RMS and maximum of each channel of a packed 12-bit block (``ns`` even).

    Each channel's bytes are sliced out before the loop: numba then sees one contiguous row
    with a fixed stride of 3 and vectorises it (x2.3 over indexing ``buf`` with a row offset,
    same integers, so the same figures).
    """
    row = ns * 3 // 2
    for c in range(n_channels):
        r = buf[c * row : (c + 1) * row]
        s = np.int64(0)
        s2 = np.int64(0)
        mx = np.int64(0)
        for p in range(ns // 2):
            b0 = np.int64(r[3 * p])
            b1 = np.int64(r[3 * p + 1])
            b2 = np.int64(r[3 * p + 2])
            a = (b0 << 4) | (b1 >> 4)
            b = ((b1 & 0xF) << 8) | b2
            s += a + b
            s2 += a * a + b * b
            mx = max(mx, max(a, b))
        _store(stats, c, s, s2, mx, ns)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scan_any(
    buf: npt.NDArray[np.uint8], n_channels: int, ns: int, stats: npt.NDArray[np.float64]
) -> None:  # pragma: no cover - compiled
    """:func:`_scan_even` for any sample count (channels need not start on a byte)."""
    for c in range(n_channels):
        s = np.int64(0)
        s2 = np.int64(0)
        mx = np.int64(0)
        for k in range(ns):
            g = c * ns + k
            i = 3 * (g >> 1)
            if g & 1:
                v = ((np.int64(buf[i + 1]) & 0xF) << 8) | np.int64(buf[i + 2])
            else:
                v = (np.int64(buf[i]) << 4) | (np.int64(buf[i + 1]) >> 4)
            s += v
            s2 += v * v
            mx = max(mx, v)
        _store(stats, c, s, s2, mx, ns)


def scan_packed(
    cro: bytes | bytearray | memoryview, n_channels: int, ns: int
) -> npt.NDArray[np.float64]:
    """(channels, 3): mean, RMS, maximum of each channel of an uncompressed CRO segment."""
    buf = np.frombuffer(cro, dtype=np.uint8)
    stats = np.empty((n_channels, 3), dtype=np.float64)
    (_scan_even if ns % 2 == 0 else _scan_any)(buf, n_channels, ns, stats)
    return stats


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scan_rows(
    adc: npt.NDArray[np.uint16], stats: npt.NDArray[np.float64]
) -> None:  # pragma: no cover - compiled
    """:func:`_scan_even` on decoded samples: the same integer sums, so the same figures."""
    ns = adc.shape[1]
    for c in range(adc.shape[0]):
        r = adc[c]
        s = np.int64(0)
        s2 = np.int64(0)
        mx = np.int64(0)
        for k in range(ns):
            v = np.int64(r[k])
            s += v
            s2 += v * v
            mx = max(mx, v)
        _store(stats, c, s, s2, mx, ns)


def scan_samples(
    adc: npt.NDArray[np.uint16], out: npt.NDArray[np.float64] | None = None
) -> npt.NDArray[np.float64]:
    """The same figures from decoded samples (a Huffman-coded CRO segment), in one compiled
    pass (numpy's mean, std and max took three, over a float64 copy of 300 MB per fragment)."""
    stats = out if out is not None else np.empty((adc.shape[0], 3), dtype=np.float64)
    _scan_rows(np.ascontiguousarray(adc), stats)
    return stats


def flash_pe(lro: bytes, th: Thresholds) -> float:
    """Photo-electrons of the flash at the trigger (0 when fewer PMTs than needed saw light)."""
    near = [p for p in unpack_lro(lro) if abs(p.time_ns) <= th.flash_window_ns]
    if len({p.pmt for p in near}) < th.flash_min_pmts:
        return 0.0
    total = float(sum(p.charge_pe for p in near))
    return total if total >= th.flash_min_pe else 0.0


class Classifier:
    """Classifies the events of 6x6x6 files of one geometry (keeps the channel-to-CRP map)."""

    def __init__(
        self, geo: Geometry, th: Thresholds | None = None, *, piece_bytes: int = 1 << 20
    ) -> None:
        self.geometry = geo
        self.th = th if th is not None else Thresholds()
        per_crp = geo.n_channels // geo.n_crps
        self._crp_of_daq = (geo.daq_to_view // per_crp).astype(np.intp)
        self._instrumented = geo.instrumented
        self._stats = np.empty((geo.n_channels, 3), dtype=np.float64)
        self._decoded: npt.NDArray[np.uint16] | None = None  # a compressed fragment's samples
        # channels per piece read and scanned while in the CPU cache (~1 MB; an even count, so
        # that a piece starts on a byte whatever the sample count)
        row = geo.samples * 3 / 2
        self._chunk = max(2, int(piece_bytes // row) & ~1)
        self._piece = bytearray(math.ceil(self._chunk * row))

    def _scan_cro(
        self, f: PDDPFile, i: int, k: int, offset: int, rows: npt.NDArray[np.float64]
    ) -> None:
        """Figures of fragment ``k``'s uncompressed CRO segment at ``offset``, piece by piece."""
        ns, n = self.geometry.samples, rows.shape[0]
        for c0 in range(0, n, self._chunk):
            c1 = min(c0 + self._chunk, n)
            lo, hi = c0 * ns * 3 // 2, math.ceil(c1 * ns * 3 / 2)
            piece = f.read_into(i, offset + lo, memoryview(self._piece)[: hi - lo], k)
            rows[c0:c1] = scan_packed(piece, c1 - c0, ns)

    def classify(self, f: PDDPFile, i: int) -> Classified:
        """The class of event ``i`` of the open file ``f``."""
        g, th = self.geometry, self.th
        entry = f.entries[i]
        frags = f.fragments[i]
        head = frags[0][1]

        def out(
            klass: EventClass, reason: str, hits: tuple[int, ...] = (), pe: float = 0.0
        ) -> Classified:
            return Classified(
                i,
                entry.trigger_number,
                entry.event_number,
                head.trigger_type,
                entry.size,
                klass,
                reason,
                hits,
                pe,
            )

        if entry.incomplete or len(frags) < g.l1_builders or any(h.placeholder for _p, h in frags):
            return out(EventClass.INCOMPLETE, "an L1 fragment is missing")
        for k, (_pos, h) in enumerate(frags):
            if h.missing_cards != g.missing_cards(k):
                return out(
                    EventClass.NOISY,
                    f"fragment {k} misses {h.missing_cards} cards, not {g.missing_cards(k)}",
                )
        fc = g.fragment_channels
        stats = self._stats
        pe = 0.0
        for k, (pos, h) in enumerate(frags):
            body = pos + FRAGMENT_HEADER_SIZE
            lro = bytes(f.read_into(i, body, memoryview(bytearray(h.lro_size)), k))
            try:
                pe += flash_pe(lro, th)
            except ValueError as exc:
                return out(EventClass.NOISY, f"corrupt LRO segment in fragment {k}: {exc}")
            rows = stats[k * fc : (k + 1) * fc]
            if h.compressed:
                cro = f.read_into(i, body + h.lro_size, memoryview(bytearray(h.cro_size)), k)
                if self._decoded is None:
                    self._decoded = np.empty((fc, g.samples), dtype=np.uint16)
                try:
                    scan_samples(huffman.decode(cro, fc, g.samples, self._decoded), rows)
                except huffman.DecodeError as exc:
                    return out(EventClass.NOISY, f"corrupt CRO data in fragment {k}: {exc}")
            elif h.cro_size == 0:  # no samples (the reader decodes zeros): nothing on the CRP
                rows[:] = 0.0
            else:
                self._scan_cro(f, i, k, body + h.lro_size, rows)
        inst = self._instrumented
        noisy = int(np.count_nonzero((stats[:, 1] > th.noisy_rms_adc) & inst))
        n_inst = int(np.count_nonzero(inst))
        hit = (stats[:, 2] - stats[:, 0] > th.hit_adc) & inst
        hits = tuple(
            int(n) for n in np.bincount(self._crp_of_daq[hit], minlength=g.n_crps)[: g.n_crps]
        )
        if n_inst and noisy >= th.noisy_fraction * n_inst:
            return out(
                EventClass.NOISY,
                f"{noisy} of {n_inst} channels with RMS above {th.noisy_rms_adc:g} ADC",
                hits,
                pe,
            )
        active = [c for c, n in enumerate(hits) if n >= th.min_hit_channels]
        if not active and pe == 0.0:
            return out(EventClass.EMPTY, "no charge on any CRP and no flash", hits, pe)
        what = f"CRPs {','.join(map(str, active)) or 'none'} active, flash {pe:.0f} p.e."
        if head.trigger_type == TriggerType.BEAM:
            return out(EventClass.BEAM, "beam trigger; " + what, hits, pe)
        return out(EventClass.COSMIC, f"trigger type {head.trigger_type}; " + what, hits, pe)
