"""The WA105 detector geometries (3x1x1, 6x6x6): the one place that knows channels, pitch, ticks, LEMs.

Everything that turns raw ADC samples into physics (the emulator, the reader, the
reconstruction, the analyses) takes its numbers from a :class:`Geometry` so that they can
never disagree.  The raw file does not carry the channel count or the samples per channel
(spec section 2): they come from here, named by the farm configuration.

The 6x6x6 has four CRPs: its channels in *view order* are CRP-major, each CRP a block laid out
as a 3x1x1 CRP is (view 0, then view 1), so that code written for one CRP works on each block
(:meth:`Geometry.crp_geometry`).  Its DAQ order and map are in :mod:`farmtools.pddp_channels`.

This module is the lowest layer of farmtools: it imports nothing from the rest of the package
but :mod:`farmtools.pddp_channels` (as low).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt

from farmtools import pddp_channels

#: Ionisation energy in liquid argon (eV per electron-ion pair).
W_ION_EV = 23.6
#: Mean energy loss of a minimum-ionising muon in liquid argon (MeV/cm).
MIP_DEDX_MEV_PER_CM = 2.1
#: Charge per cm of a MIP the analyses take as reference, both views summed, gain 1 (fC/cm).
MIP_DQDS_MEAN_FC_PER_CM = 10.0
#: Most probable charge per cm of a MIP, both views summed, gain 1 (fC/cm).
MIP_DQDS_MPV_FC_PER_CM = 7.75
#: Elementary charge in fC.
ELECTRON_CHARGE_FC = 1.602176634e-4


def recombination(
    dedx_mev_per_cm: float | npt.NDArray[np.float64], field_kv_per_cm: float
) -> float | npt.NDArray[np.float64]:
    """Birks recombination factor of liquid argon (spec section 4): 0.698 at 0.5 kV/cm for a MIP."""
    return 0.8 / (1.0 + 0.0486 * dedx_mev_per_cm / (field_kv_per_cm * 1.39))


@dataclass(frozen=True)
class Geometry:
    """Constants of one dual-phase TPC readout; the defaults are the 3x1x1 (spec section 1).

    View 0 strips run along the 3 m axis and so measure the 1 m coordinate (``x``); view 1 strips
    run along the 1 m axis and measure the 3 m coordinate (``y``).  ``z`` is the drift
    coordinate, 0 at the anode (top), ``drift_length_cm`` at the cathode.
    """

    name: str = "3x1x1"
    channels_per_view: tuple[int, int] = (320, 960)
    samples: int = 1667
    pitch_cm: float = 0.3125
    tick_us: float = 0.4
    adc_bits: int = 12
    drift_length_cm: float = 100.0
    drift_velocity_mm_per_us: float = 1.6056
    drift_field_kv_per_cm: float = 0.5
    #: ADC*tick per fC, view 0 and view 1.
    adc_per_fc: tuple[float, float] = (55.0, 67.0)
    #: Size of a LEM/anode module (cm) along x and y.
    lem_size_cm: float = 50.0
    #: Channels in a group that share coherent noise (one DAQ card half).
    coherent_group: int = 32
    #: Channels per crate in DAQ order (view 0 is crate 0, view 1 crates 1-3).
    crate_channels: int = 320
    #: DAQ channel map: ``"311"`` (spec section 3, LArSoft's ``Get311Chan``), ``"311-wa105soft"``
    #: (WA105Soft's ``ChannelMap311``, see :meth:`wa105soft_view_of_daq`), ``"pddp"`` (the 6x6x6,
    #: see :mod:`farmtools.pddp_channels`) or ``"identity"`` (small test geometries).
    channel_map: str = "311"
    #: Charge readout planes; ``channels_per_view`` and the LEM grid are per CRP.
    n_crps: int = 1
    #: Instrumented cards per crate (6x6x6 only; empty: every channel exists).
    cards_per_crate: tuple[int, ...] = ()
    #: L1 event builders, each sending one fragment of every event (half the crates each).
    l1_builders: int = 1
    extra: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    # --- derived sizes -------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        """All channels of both views of every CRP."""
        return self.n_crps * sum(self.channels_per_view)

    @property
    def fragment_channels(self) -> int:
        """Channels in the fragment of one L1 event builder (3840 on the 6x6x6)."""
        return self.n_channels // self.l1_builders

    @property
    def fragment_bytes(self) -> int:
        """Bytes of one uncompressed 12-bit CRO fragment."""
        return (self.fragment_channels * self.samples * 3 + 1) // 2

    def missing_cards(self, builder: int) -> int:
        """Non-instrumented cards in the crates of L1 builder ``builder`` (25 in 2019, else 0)."""
        if not self.cards_per_crate:
            return 0
        per = len(self.cards_per_crate) // self.l1_builders
        return pddp_channels.missing_cards(
            self.cards_per_crate, range(builder * per, (builder + 1) * per)
        )

    @cached_property
    def instrumented(self) -> npt.NDArray[np.bool_]:
        """Per DAQ channel: whether it is read by an instrumented card (all True but the 6x6x6)."""
        if self.channel_map == "pddp" and self.cards_per_crate:
            return pddp_channels.instrumented(self.cards_per_crate)
        return np.ones(self.n_channels, dtype=np.bool_)

    def crp_geometry(self) -> Geometry:
        """One CRP as a geometry of its own (view order, identity map): what per-CRP code uses."""
        if self.n_crps == 1:
            return self
        return replace(
            self,
            name=f"{self.name}-crp",
            n_crps=1,
            channel_map="identity",
            cards_per_crate=(),
            l1_builders=1,
        )

    def anode_geometry(self) -> Geometry:
        """All CRPs' anode plane as one LEM grid: the analyses' LEM numbering on the 6x6x6.

        The CRPs tile the plane in rows of two (:mod:`farmtools.pddp_layout`), so the 6x6x6's
        plane is 12 x 12 LEMs numbered ``1 + ix + 12 iy`` over 6 x 6 m (CRP ``c``'s local LEM
        ``(ix, iy)`` is ``(ix + 6 (c % 2), iy + 6 (c // 2))``); one CRP: the geometry itself.
        """
        if self.n_crps == 1:
            return self
        n0, n1 = self.channels_per_view
        return replace(
            self.crp_geometry(),
            name=f"{self.name}-anode",
            channels_per_view=(2 * n0, (self.n_crps + 1) // 2 * n1),
        )

    def with_samples(self, samples: int) -> Geometry:
        """The same detector with fewer samples per channel (small events for tests and replays).

        Its name is the string :func:`geometry` turns back into it (``6x6x6:200``; the plain
        name at the named detector's own sample count), so that a name written into a
        configuration or a truth file (``farm.detector``) round-trips: a bare ``6x6x6`` would
        silently mean 10,000 samples.
        """
        base = self.name.partition(":")[0]
        named = GEOMETRIES.get(base)
        name = base if named is not None and named.samples == samples else f"{base}:{samples}"
        return replace(self, samples=samples, name=name)

    @property
    def view_offsets(self) -> tuple[int, int]:
        """First global (view-order) channel of view 0 and view 1."""
        return (0, self.channels_per_view[0])

    @property
    def extent_cm(self) -> tuple[float, float]:
        """Size of the CRP along x (measured by view 0) and y (measured by view 1)."""
        return (
            self.channels_per_view[0] * self.pitch_cm,
            self.channels_per_view[1] * self.pitch_cm,
        )

    @property
    def lem_grid(self) -> tuple[int, int]:
        """Number of LEM cells along x and y (2 x 6 for the 3x1x1)."""
        ex, ey = self.extent_cm
        return (round(ex / self.lem_size_cm), round(ey / self.lem_size_cm))

    @property
    def n_lems(self) -> int:
        nx, ny = self.lem_grid
        return nx * ny

    @property
    def payload_bytes(self) -> int:
        """Bytes of one uncompressed event payload: two 12-bit samples in 3 bytes."""
        total = self.n_channels * self.samples
        return (total * 3 + 1) // 2

    @property
    def drift_velocity_cm_per_tick(self) -> float:
        return self.drift_velocity_mm_per_us * 0.1 * self.tick_us

    @property
    def full_drift_ticks(self) -> float:
        """Ticks for an electron to drift from cathode to anode (1557 for the 3x1x1)."""
        return self.drift_length_cm / self.drift_velocity_cm_per_tick

    @property
    def adc_max(self) -> int:
        return (1 << self.adc_bits) - 1

    # --- channel map (spec section 3) ----------------------------------------------------
    def view_to_daq_channel(self, ch: int) -> int:
        """DAQ channel that carries view-order channel ``ch`` (0..n_channels-1)."""
        if self.channel_map == "identity":
            return ch
        if self.channel_map == "pddp":
            return int(self.view_to_daq[ch])
        cc = self.crate_channels
        crate = ch // cc
        c = 8 * (ch // 8 + 1) - ch % 8 - 1
        if crate == 0:
            c = 32 * (c // 32 + 1) - c % 32 - 1
            card = 4 - (c // 32) % 5
            return (2 * card + (1 if c <= 159 else 0)) * 32 + 31 - c % 32
        cp = c - cc * crate
        card = (cp // 32) % 5
        return (2 * card + (1 if cp <= 159 else 0)) * 32 + cp % 32 + cc * crate

    def wa105soft_view_of_daq(self, daq: int) -> int:
        """View-order channel of DAQ channel ``daq`` in WA105Soft's ``ChannelMap311`` (Qscan).

        The DAQ channel splits into crate (320 channels), card (64) and channel on the card; the
        card's first 32 channels and its last 32 go to the two halves of the crate's strips
        (crate 0: first half; crates 1-3: second half), and crate 0's strips are numbered
        backwards.  LArSoft's ``Get311Chan`` (the default map, spec section 3) puts every
        channel on the same 32-channel card half, but at another place in it: in view 1 it
        reverses each group of 8 strips, in view 0 it reverses the order of the four 8-strip
        groups of each 32; the two maps agree on no channel (docs/rawdata.md).
        """
        cc = self.crate_channels
        half = self.coherent_group
        offset = (cc // (2 * half)) * half
        crate, rest = divmod(daq, cc)
        card, ch = divmod(rest, 2 * half)
        low = ch < half
        if crate == 0:
            return cc - 1 - (card * half + (0 if low else offset) + ch % half)
        chv = card * half + (crate - 1) * cc + (offset if low else 0) + ch % half
        return self.channels_per_view[0] + chv

    @cached_property
    def view_to_daq(self) -> npt.NDArray[np.intp]:
        """``view_to_daq[v]`` is the DAQ channel of view-order channel ``v``.

        Reading: ``view_adc = daq_adc[view_to_daq]``; writing: ``daq_adc[view_to_daq] = view_adc``.
        """
        if self.channel_map == "pddp":
            where = pddp_channels.crp_view_channel()
            n0, n1 = self.channels_per_view
            view_index = where[:, 0] * (n0 + n1) + where[:, 1] * n0 + where[:, 2]
            out = np.empty(self.n_channels, dtype=np.intp)
            out[view_index] = np.arange(self.n_channels)
            return out
        if self.channel_map == "311-wa105soft":
            out = np.empty(self.n_channels, dtype=np.intp)
            for daq in range(self.n_channels):
                out[self.wa105soft_view_of_daq(daq)] = daq
            return out
        return np.array(
            [self.view_to_daq_channel(c) for c in range(self.n_channels)], dtype=np.intp
        )

    @cached_property
    def daq_to_view(self) -> npt.NDArray[np.intp]:
        """Inverse of :attr:`view_to_daq`."""
        inverse = np.empty(self.n_channels, dtype=np.intp)
        inverse[self.view_to_daq] = np.arange(self.n_channels)
        return inverse

    def view_of_channel(self, ch: int) -> tuple[int, int]:
        """(view, channel within the view) of a global view-order channel."""
        n0 = self.channels_per_view[0]
        return (0, ch) if ch < n0 else (1, ch - n0)

    # --- LEM cells (spec section 6) ------------------------------------------------------
    def lem_number(self, x_cm: float, y_cm: float) -> int:
        """Continuous LEM number, ``1 + ix + nx*iy`` like 2D-histogram bins (1..12 for the 3x1x1).

        ``ix`` counts cells along the 1 m axis (x), ``iy`` along the 3 m axis (y).  Points outside
        the CRP are clamped to the nearest cell.
        """
        nx, ny = self.lem_grid
        ix = min(max(int(x_cm // self.lem_size_cm), 0), nx - 1)
        iy = min(max(int(y_cm // self.lem_size_cm), 0), ny - 1)
        return 1 + ix + nx * iy

    def lem_cell(self, lem: int) -> tuple[int, int]:
        """(ix, iy) of a continuous LEM number."""
        nx, _ = self.lem_grid
        return ((lem - 1) % nx, (lem - 1) // nx)

    def lem_of_strips(self, ch0: int, ch1: int) -> int:
        """LEM under the crossing of view-0 strip ``ch0`` and view-1 strip ``ch1``."""
        return self.lem_number((ch0 + 0.5) * self.pitch_cm, (ch1 + 0.5) * self.pitch_cm)

    def check_lem(self, lem: int) -> None:
        """Raise ValueError unless ``lem`` is a continuous LEM number of this detector."""
        if not 1 <= lem <= self.n_lems:
            raise ValueError(f"LEM number {lem} is outside 1..{self.n_lems}")

    def lem_to_old(self, lem: int) -> int:
        """The older experiment number of continuous LEM ``lem`` (see :func:`to_old`)."""
        self.check_lem(lem)
        ix, iy = self.lem_cell(lem)
        return iy + self.lem_grid[1] * ix

    def lem_from_old(self, old: int) -> int:
        """Continuous LEM number of the older number ``old`` (0..n_lems-1)."""
        if not 0 <= old < self.n_lems:
            raise ValueError(f"old LEM number {old} is outside 0..{self.n_lems - 1}")
        nx, ny = self.lem_grid
        ix, iy = divmod(old, ny)
        return 1 + ix + nx * iy


#: The 3x1x1 prototype, the detector the farm handles.
WA105_3X1X1 = Geometry()

#: The 6x6x6 (ProtoDUNE-DP) as it ran in 2019: 70 of its 120 cards instrumented.  Drift
#: velocity, field and ADC-per-fC are the 3x1x1's (no public 6x6x6 figure) [choice].
PDDP_6X6X6 = Geometry(
    name="6x6x6",
    channels_per_view=(pddp_channels.VIEW_CHANNELS, pddp_channels.VIEW_CHANNELS),
    samples=10000,
    drift_length_cm=600.0,
    crate_channels=pddp_channels.CHANNELS_PER_CRATE,
    channel_map="pddp",
    n_crps=pddp_channels.N_CRPS,
    cards_per_crate=pddp_channels.CARDS_2019,
    l1_builders=2,
)
#: The 6x6x6 with every card instrumented, as designed.
PDDP_6X6X6_FULL = replace(PDDP_6X6X6, name="6x6x6-full", cards_per_crate=pddp_channels.CARDS_FULL)

GEOMETRIES: dict[str, Geometry] = {
    "3x1x1": WA105_3X1X1,
    "6x6x6": PDDP_6X6X6,
    "6x6x6-full": PDDP_6X6X6_FULL,
}


def to_old(lem: int, geometry: Geometry = WA105_3X1X1) -> int:
    """Older LEM number (0-based, along the 3 m axis first) of continuous LEM ``lem``.

    The spec (section 6) only asks for *a* mapping to the older numbering so that results can be
    compared with old outputs; it does not say what that numbering was, and the public sources
    we read do not spell it out.  ``old = iy + ny * ix`` (0..11 for the 3x1x1) is therefore this
    project's assumption [choice]: the order of the anode modules along the long side of the CRP,
    one row after the other.  If the real numbering turns up, change it here only.
    ValueError if ``lem`` is out of range.
    """
    return geometry.lem_to_old(lem)


def from_old(old: int, geometry: Geometry = WA105_3X1X1) -> int:
    """Continuous LEM number of the older number ``old`` (inverse of :func:`to_old`)."""
    return geometry.lem_from_old(old)


def geometry(name: str = "3x1x1") -> Geometry:
    """Look up a detector geometry by the name the farm configuration uses.

    ``NAME:SAMPLES`` (e.g. ``6x6x6:100``) is the detector with fewer samples per channel: the
    emulator, the event builder and the tests use it to keep 6x6x6 events small.
    """
    base, sep, samples = name.partition(":")
    if sep:
        if not samples.isdigit() or not 2 <= int(samples) <= 1_000_000:
            raise ValueError(f"detector {name!r}: the sample count must be within 2..1000000")
        return geometry(base).with_samples(int(samples))
    try:
        return GEOMETRIES[name]
    except KeyError:
        known = ", ".join(sorted(GEOMETRIES))
        raise ValueError(f"unknown detector geometry {name!r} (known: {known})") from None
