"""2D line finding, clustering, view matching and the dQ/ds path length."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farmtools.reco import tracks
from farmtools.reco.tracks import TrackParams


def _points(slope: float, n: int, rng: np.random.Generator, u0: float = 10.0) -> tuple:
    """Hits of a straight track z = slope * (u - u0) on strips of 0.3125 cm, 1 mm of jitter."""
    u = u0 + (np.arange(n) + 0.5) * 0.3125
    z = 5.0 + slope * (u - u0) + rng.normal(0, 0.1, n)
    return u, z


@pytest.mark.parametrize("slope", [0.0, 0.3, -1.5, 8.0, -40.0])
def test_single_track_angle(slope: float) -> None:
    rng = np.random.default_rng(4)
    u, z = _points(slope, 120, rng)
    found = tracks.find_tracks(u, z, np.zeros(u.size, dtype=np.intp), TrackParams())
    assert len(found) == 1
    line = found[0].line
    angle = math.degrees(math.atan2(line.dz, line.du)) % 180
    true = math.degrees(math.atan2(slope, 1.0)) % 180
    assert min(abs(angle - true), 180 - abs(angle - true)) < 0.5
    assert found[0].hits.size >= 110


def test_vertical_track_along_the_drift() -> None:
    z = np.linspace(0, 80, 200)
    u = np.full_like(z, 12.0) + np.random.default_rng(5).normal(0, 0.05, z.size)
    (trk,) = tracks.find_tracks(u, z, np.zeros(z.size, dtype=np.intp), TrackParams())
    assert abs(trk.line.du) < 0.01 and trk.line.dz > 0.99
    assert abs(trk.line.slope) > 50
    assert trk.line.u_at(np.array([40.0]))[0] == pytest.approx(12.0, abs=0.05)


def test_two_crossing_tracks_in_one_cluster_become_two() -> None:
    rng = np.random.default_rng(6)
    u1, z1 = _points(1.0, 150, rng)
    u2, z2 = _points(-1.0, 150, rng)
    z2 = z2 + 47.0  # crosses the first one in the middle
    u = np.concatenate([u1, u2])
    z = np.concatenate([z1, z2])
    found = tracks.find_tracks(u, z, np.zeros(u.size, dtype=np.intp), TrackParams())
    assert sorted(round(t.line.slope) for t in found) == [-1, 1]


def test_clusters_need_neighbouring_strips_and_times() -> None:
    ch = np.array([0, 1, 2, 10, 11, 12])
    ts = np.array([0, 5, 10, 0, 5, 500])
    te = ts + 8
    labels = tracks.cluster_hits(ch, ts, te, max_channel_gap=2, max_tick_gap=6)
    assert labels[0] == labels[1] == labels[2]
    assert labels[3] == labels[4] != labels[0]
    assert labels[5] not in (labels[0], labels[3])


def test_short_clusters_are_not_tracks() -> None:
    u, z = _points(1.0, 20, np.random.default_rng(7))
    assert tracks.find_tracks(u, z, np.zeros(20, dtype=np.intp), TrackParams(min_hits=30)) == []


def test_match_views_by_drift_time_overlap() -> None:
    r0 = [(0.0, 1500.0), (300.0, 700.0)]
    r1 = [(310.0, 690.0), (5.0, 1490.0), (1000.0, 1100.0)]
    assert sorted(tracks.match_views(r0, r1)) == [(0, 1), (1, 0)]


def test_path_length_formula() -> None:
    p = 0.3125
    # flat in the drift in this view: the track runs along the other view's strips? no - it
    # crosses this strip over one pitch in the other coordinate scaled by 1/a1
    assert tracks.path_length(p, 0.0, 1.0) == pytest.approx(p)
    # a 3D direction (dx, dy, dz): in view 0 a0 = dz/dx, in view 1 a1 = dz/dy; the length per
    # strip of view 0 (one pitch along x) is pitch * |d| / |dx|
    d = np.array([1.0, 2.0, 3.0])
    a0, a1 = d[2] / d[0], d[2] / d[1]
    assert tracks.path_length(p, a0, a1) == pytest.approx(p * np.linalg.norm(d) / d[0])
    assert tracks.path_length(p, a1, a0) == pytest.approx(p * np.linalg.norm(d) / d[1])
    assert math.isinf(tracks.path_length(p, 2.0, 0.0))
