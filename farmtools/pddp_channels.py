"""The 6x6x6 (ProtoDUNE-DP) channel map: where each of the 7680 DAQ channels sits on the CRPs.

The raw record of the 6x6x6 lists its channels in DAQ order: crate 0..11, AMC card 0..9,
card channel 0..63 (``seqn = 640*crate + 64*card + ch``).  Where a DAQ channel sits on the
detector (CRP 0..3, view 0/1, view channel 0..959) follows the public ``PDDPChannelMap``
("pddp2crp" map) of the experiment's LArSoft code, whose facts are restated here:

* crates 0-5 read view 0, crates 6-11 view 1 (one L1 event builder each);
* cards 0-4 and 5-9 of a crate go to different CRPs: crates 0-2 -> CRP 1 / 2, crates 3-5 ->
  CRP 0 / 3, crates 6-8 -> CRP 0 / 1, crates 9-11 -> CRP 3 / 2;
* within a (CRP, view) the cards are laid out one after the other, 64 view channels each, in
  crate-then-card order; a card has two 32-channel connectors whose channels are inverted in
  groups of 8 by the AMC (``kel[i] = 8*(i//8) + 7 - i%8``); view 0 reads its connectors
  bottom-then-top in that order, view 1 top-then-bottom with the reversed connector
  (``31 - kel[i]``) and the view channel counted from the far end (``959 - c``);
* in the 2019 running only 70 of the 120 cards were instrumented (cards per crate
  5,5,5,10,5,5,10,10,10,5 and crates 10-11 empty); the L1 builders still wrote every channel,
  and the other channels are flagged as not existing.

This is the project's own formulation of those rules, checked against an independent literal
walk in the tests.  Imports nothing from farmtools (the lowest layer, beside
:mod:`farmtools.detector`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CRATES = 12
CARDS_PER_CRATE = 10
CHANNELS_PER_CARD = 64
CHANNELS_PER_CRATE = CARDS_PER_CRATE * CHANNELS_PER_CARD  # 640
N_CHANNELS = CRATES * CHANNELS_PER_CRATE  # 7680
N_CRPS = 4
VIEW_CHANNELS = 960
#: Instrumented cards per crate in the 2019 running (crates 10 and 11 empty).
CARDS_2019: tuple[int, ...] = (5, 5, 5, 10, 5, 5, 10, 10, 10, 5, 0, 0)
#: Every card instrumented: the detector as designed.
CARDS_FULL: tuple[int, ...] = (CARDS_PER_CRATE,) * CRATES

#: CRP of the cards 0-4 and of the cards 5-9, per group of three crates.
_CRP_OF_CRATE_GROUP = ((1, 2), (0, 3), (0, 1), (3, 2))


def _kel(i: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """AMC inversion of a connector channel in groups of 8."""
    return 8 * (i // 8) + 7 - i % 8


def crp_view_channel() -> npt.NDArray[np.int64]:
    """(7680, 3) array: CRP, view and view channel of every DAQ channel (seqn order)."""
    seqn = np.arange(N_CHANNELS, dtype=np.int64)
    crate = seqn // CHANNELS_PER_CRATE
    card = (seqn // CHANNELS_PER_CARD) % CARDS_PER_CRATE
    ch = seqn % CHANNELS_PER_CARD
    view = (crate >= CRATES // 2).astype(np.int64)
    upper = (card >= CARDS_PER_CRATE // 2).astype(np.int64)
    table = np.array(_CRP_OF_CRATE_GROUP, dtype=np.int64)
    crp = table[crate // 3, upper]
    # cards of one (CRP, view) follow each other: three crates of five cards
    block = 5 * (crate % 3) + card % 5
    base = CHANNELS_PER_CARD * block
    connector = ch // 32
    i = ch % 32
    kel = _kel(i)
    v0 = base + 32 * connector + kel
    v1 = VIEW_CHANNELS - 1 - (base + 32 * (1 - connector) + 31 - kel)
    viewch = np.where(view == 0, v0, v1)
    return np.stack([crp, view, viewch], axis=1)


def instrumented(cards_per_crate: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """Per DAQ channel: does it belong to an instrumented card?"""
    seqn = np.arange(N_CHANNELS)
    crate = seqn // CHANNELS_PER_CRATE
    card = (seqn // CHANNELS_PER_CARD) % CARDS_PER_CRATE
    return card < np.asarray(cards_per_crate)[crate]


def missing_cards(cards_per_crate: tuple[int, ...], crates: range) -> int:
    """Cards that are not instrumented in ``crates`` (25 per L1 builder in 2019)."""
    return sum(CARDS_PER_CRATE - cards_per_crate[c] for c in crates)
