"""Estimators (truncated mean, MPV) and the LEM numbering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from farmtools import detector
from farmtools.analysis import lem as analysis_lem
from farmtools.analysis.estimators import mpv, truncated_mean
from farmtools.detector import WA105_3X1X1, from_old, to_old


def test_truncated_mean_drops_the_tails_and_its_error_matches_the_spread() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 1.0, 20000)
    tm, err = truncated_mean(x, 0.1, 0.1)
    assert abs(tm - 10.0) < 4 * err
    reps = [truncated_mean(rng.normal(10.0, 1.0, 2000), 0.1, 0.1)[0] for _ in range(200)]
    _, err_small = truncated_mean(rng.normal(10.0, 1.0, 2000), 0.1, 0.1)
    assert err_small == pytest.approx(float(np.std(reps)), rel=0.25)
    # Asymmetric truncation of a symmetric distribution moves the mean down.
    assert truncated_mean(x, 0.05, 0.25)[0] < 10.0 - 0.2
    assert all(math.isnan(v) for v in truncated_mean([1.0, 2.0]))


def test_mpv_finds_the_mode_and_scales_with_the_data() -> None:
    from scipy.stats import landau

    rng = np.random.default_rng(2)
    x = landau.rvs(loc=5.0, scale=0.3, size=50000, random_state=rng)
    x = x[x < 30]
    grid = np.linspace(3, 8, 20001)
    true_mode = float(grid[np.argmax(landau.pdf(grid, loc=5.0, scale=0.3))])
    m, err = mpv(x)
    # Smoothing moves the mode of a skewed density a little to the right: within 5 %.
    assert abs(m - true_mode) < 0.05 * true_mode
    assert 0 < err < 0.05
    assert mpv(3.0 * x)[0] == pytest.approx(3.0 * m, rel=1e-9)
    assert math.isnan(mpv(x[:10])[0])


def test_lem_numbering_old_and_new_are_inverse_permutations() -> None:
    g = WA105_3X1X1
    olds = [to_old(lem) for lem in range(1, g.n_lems + 1)]
    assert sorted(olds) == list(range(g.n_lems))
    assert all(from_old(to_old(lem)) == lem for lem in range(1, 13))
    # LEM 1 is the corner cell (0, 0), LEM 2 its neighbour along the 1 m axis, LEM 3 along 3 m.
    assert g.lem_number(10.0, 10.0) == 1 and g.lem_number(60.0, 10.0) == 2
    assert g.lem_number(10.0, 60.0) == 3
    assert to_old(1) == 0 and to_old(3) == 1 and to_old(2) == 6
    with pytest.raises(ValueError, match="13"):
        to_old(13)
    with pytest.raises(ValueError, match="12"):
        from_old(12)


def test_old_numbering_lives_in_the_geometry_and_the_analysis_re_exports_it() -> None:
    assert analysis_lem.to_old is detector.to_old and analysis_lem.from_old is detector.from_old
    g = WA105_3X1X1
    assert [g.lem_to_old(n) for n in range(1, 13)] == [to_old(n) for n in range(1, 13)]
    assert all(g.lem_from_old(g.lem_to_old(n)) == n for n in range(1, 13))
