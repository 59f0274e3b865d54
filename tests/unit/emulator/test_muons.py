"""Cosmic muons: zenith distribution, tracks inside the volume, trigger selection, extra tracks."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.muons import (
    extra_muons,
    mean_extra_tracks,
    sample_directions,
    trigger_muon,
)


def test_zenith_follows_cos2_intensity() -> None:
    """Directions crossing a plane: dN/dcos ~ cos^3, i.e. intensity per solid angle ~ cos^2."""
    rng = np.random.default_rng(11)
    d = sample_directions(rng, 200_000)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    cos_t = d[:, 2]
    assert (cos_t > 0).all()  # all downward
    # KS against the CDF of cos^3 on [0, 1]: F(c) = c^4.
    assert stats.kstest(cos_t, lambda c: np.clip(c, 0, 1) ** 4).pvalue > 1e-3
    # And it is not the isotropic or the cos^2-through-plane law (the test can fail).
    assert stats.kstest(cos_t, lambda c: np.clip(c, 0, 1) ** 3).pvalue < 1e-6
    # Intensity per solid angle: weight each muon by 1/cos (projected area); per d(cos) bin it
    # is then proportional to cos^2.
    edges = np.linspace(0.3, 1.0, 8)
    w, _ = np.histogram(cos_t, edges, weights=1 / cos_t)
    ratio = w / ((edges[1:] ** 3 - edges[:-1] ** 3) / 3)  # integral of cos^2 over each bin
    assert np.std(ratio) / np.mean(ratio) < 0.05
    # Azimuth uniform.
    phi = np.arctan2(d[:, 1], d[:, 0])
    assert stats.kstest(phi, stats.uniform(loc=-math.pi, scale=2 * math.pi).cdf).pvalue > 1e-3


def test_tracks_stay_inside_and_crt_selects_anode_cathode() -> None:
    rng = np.random.default_rng(3)
    ex, ey = G.extent_cm
    pmt = [trigger_muon(rng, G, crt=False) for _ in range(3000)]
    crt = [trigger_muon(rng, G, crt=True) for _ in range(500)]
    for t in pmt + crt:
        assert t.t0_us == 0.0 and t.trigger
        assert t.entry[2] == 0.0
        for p in (t.entry, t.exit):
            assert (
                -1e-9 <= p[0] <= ex + 1e-9
                and -1e-9 <= p[1] <= ey + 1e-9
                and 0 <= p[2] <= 100.0 + 1e-9
            )
    assert all(t.crosses_anode_cathode(G) for t in crt)
    frac = np.mean([t.crosses_anode_cathode(G) for t in pmt])
    # Geometric acceptance of a 1 x 3 m2 top face and 1 m drift for cos^3 muons: about a third.
    assert 0.2 < frac < 0.5
    # The rest leave through a side wall.
    sides = [t for t in pmt if not t.crosses_anode_cathode(G)]
    assert all(min(t.exit[0], ex - t.exit[0], t.exit[1], ey - t.exit[1]) < 1e-6 for t in sides)


def test_extra_tracks_rate_from_flux() -> None:
    mean = mean_extra_tracks(G, 166.0)
    assert math.isclose(mean, 166.0 * 3.0 * 666.8e-6, rel_tol=1e-3)  # 0.33 per event
    rng = np.random.default_rng(5)
    counts = []
    for _ in range(4000):
        extra = extra_muons(rng, G, 166.0)
        counts.append(len(extra))
        for t in extra:
            assert not t.trigger and 0 <= t.t0_us < 666.8
    counts_a = np.array(counts)
    assert abs(counts_a.mean() - mean) < 4 * math.sqrt(mean / len(counts_a))
