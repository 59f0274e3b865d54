"""The 6x6x6 geometry: sizes and the channel map against a literal walk of the public map."""

from __future__ import annotations

import numpy as np
import pytest

from farmtools import pddp_channels
from farmtools.detector import geometry
from tests.unit.evb.pddp_oracle import channel_map_walk


def test_sizes_of_the_6x6x6() -> None:
    g = geometry("6x6x6")
    assert g.n_channels == 7680
    assert g.samples == 10000
    assert g.payload_bytes == 115_200_000
    assert g.fragment_channels == 3840
    assert g.lem_grid == (6, 6)
    assert g.full_drift_ticks < g.samples


def test_channel_map_matches_the_public_walk() -> None:
    walk = channel_map_walk(list(pddp_channels.CARDS_2019))
    ours = pddp_channels.crp_view_channel()
    assert [tuple(r) for r in ours.tolist()] == [(crp, v, c) for _s, crp, v, c, _e in walk]
    exists = pddp_channels.instrumented(pddp_channels.CARDS_2019)
    assert exists.tolist() == [e for *_r, e in walk]
    assert int(exists.sum()) == 70 * 64


def test_view_order_is_a_permutation_crp_major() -> None:
    g = geometry("6x6x6")
    assert sorted(g.view_to_daq.tolist()) == list(range(7680))
    walk = channel_map_walk(list(pddp_channels.CARDS_FULL))
    for seqn, crp, view, vch, _e in walk[::97]:
        assert g.view_to_daq[crp * 1920 + view * 960 + vch] == seqn
    assert np.array_equal(g.daq_to_view[g.view_to_daq], np.arange(7680))


def test_missing_cards_per_l1_builder() -> None:
    assert [geometry("6x6x6").missing_cards(b) for b in (0, 1)] == [25, 25]
    assert [geometry("6x6x6-full").missing_cards(b) for b in (0, 1)] == [0, 0]
    assert geometry("3x1x1").missing_cards(0) == 0


def test_one_crp_is_a_geometry_of_its_own() -> None:
    crp = geometry("6x6x6").crp_geometry()
    assert crp.n_channels == 1920
    assert crp.channel_map == "identity"
    assert geometry("6x6x6").with_samples(100).payload_bytes == 7680 * 100 * 3 // 2


@pytest.mark.parametrize("spec", ["6x6x6:200", "6x6x6-full:40", "3x1x1:100", "6x6x6", "3x1x1"])
def test_a_geometry_name_gives_back_the_same_geometry(spec: str) -> None:
    """A name written as ``farm.detector`` (or into a truth file) means the same events."""
    g = geometry(spec)
    assert geometry(g.name) == g and geometry(g.name).samples == g.samples
    assert geometry("6x6x6").with_samples(100).with_samples(10_000) == geometry("6x6x6")
