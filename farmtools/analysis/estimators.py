"""Estimators of a dQ/ds distribution: truncated mean and most probable value.

All come with a statistical error, because the closure tests and the purity fit need them:

* the truncated mean drops the lowest ``low`` and highest ``high`` fractions (5 % and 25 % in
  the seed's gain analysis); its standard error is the winsorised standard deviation over
  ``(1 - low - high) sqrt(n)`` (Tukey-McLaughlin);
* :func:`mpv` (the one the analyses use) is the mode of the distribution smoothed by a
  Gaussian whose width is a fixed fraction of the interquartile range, with a parabola through
  the three highest bins; its error comes from a Poisson bootstrap of the histogram.  It scales
  exactly with the data (``mpv(c x) = c mpv(x)``), which is what a gain ratio or an asymmetry
  needs, and takes about a millisecond;
* :func:`langau_mpv` is the classic Landau x Gauss fit (iminuit).  It is kept for comparison but
  not used: on the real mixture of path lengths per strip it is not a good model, its peak
  scattered by 2-4 % between LEM cells of 20,000 hits of the same distribution, and one fit
  took from 0.1 s to over 100 s (measured on emulator hits, docs/analysis.md).

Pure functions over numpy; may import scipy and iminuit.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: Fractions the seed's truncated mean drops at the low and the high end (spec section 6).
TRUNCATION: tuple[float, float] = (0.05, 0.25)


def truncated_mean(
    values: npt.ArrayLike, low: float = TRUNCATION[0], high: float = TRUNCATION[1]
) -> tuple[float, float]:
    """(truncated mean, its standard error); NaNs for fewer than 3 values."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n < 3:
        return math.nan, math.nan
    lo = math.floor(low * n)
    hi = n - math.floor(high * n)
    kept = x[lo:hi]
    tm = float(kept.mean())
    w = np.clip(x, kept[0], kept[-1])
    se = float(w.std(ddof=1) / ((hi - lo) / n) / math.sqrt(n))
    return tm, se


#: Width of the smoothing Gaussian of :func:`mpv`, as a fraction of the interquartile range.
MPV_SMOOTHING = 0.25


def mpv(values: npt.ArrayLike, boot: int = 40, seed: int = 12345) -> tuple[float, float]:
    """(most probable value, its error): mode of the smoothed distribution; NaNs if < 20 values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 20:
        return math.nan, math.nan
    q25, q75 = np.percentile(x, [25.0, 75.0])
    iqr = float(q75 - q25)
    if not iqr > 0:
        return float(q25), 0.0
    lo = float(np.percentile(x, 0.5)) - iqr
    hi = float(np.percentile(x, 90.0)) + iqr
    width = iqr / 40.0
    nbins = max(int((hi - lo) / width), 10)
    counts, edges = np.histogram(x, bins=nbins, range=(lo, lo + nbins * width))
    k = np.arange(-int(4 * MPV_SMOOTHING * 40) - 1, int(4 * MPV_SMOOTHING * 40) + 2)
    kernel = np.exp(-0.5 * (k / (MPV_SMOOTHING * 40.0)) ** 2)

    def mode(c: npt.NDArray[np.float64]) -> float:
        sm = np.convolve(c, kernel, mode="same")
        i = int(np.clip(np.argmax(sm), 1, sm.size - 2))
        a, b, cc = sm[i - 1], sm[i], sm[i + 1]
        den = a - 2 * b + cc
        shift = 0.5 * (a - cc) / den if den < 0 else 0.0
        return float(edges[0] + (i + 0.5 + shift) * width)

    best = mode(counts.astype(np.float64))
    rng = np.random.default_rng(seed)
    reps = [mode(rng.poisson(counts).astype(np.float64)) for _ in range(boot)]
    return best, float(np.std(reps, ddof=1))


def _langau_pdf(
    x: npt.NDArray[np.float64], mpv: float, eta: float, sigma: float
) -> npt.NDArray[np.float64]:
    """Landau (scale ``eta``, mode ``mpv``) convolved with a Gaussian (``sigma``), on the grid ``x``.

    The convolution is numerical on a fine grid around the data; scipy's ``landau`` has its mode
    at -0.22278 in the standard Landau variable (scipy location 0, scale 1 => mode at ~ -0.2228).
    """
    from scipy.stats import landau, norm

    step = max(min(eta, sigma if sigma > 0 else eta) / 8.0, (x[-1] - x[0]) / 4000.0)
    lo = x[0] - 5 * sigma - 5 * eta
    hi = x[-1] + 5 * sigma + 5 * eta
    grid = np.arange(lo, hi + step, step)
    mode_std = _LANDAU_MODE
    lan = landau.pdf((grid - mpv) / eta + mode_std) / eta
    if sigma > 0:
        k = np.arange(-5 * sigma, 5 * sigma + step, step)
        g = norm.pdf(k / sigma) / sigma * step
        lan = np.convolve(lan, g, mode="same")
    return np.interp(x, grid, lan)


def _landau_mode() -> float:
    from scipy.optimize import minimize_scalar
    from scipy.stats import landau

    res = minimize_scalar(
        lambda v: -landau.pdf(v), bounds=(-2.0, 2.0), method="bounded", options={"xatol": 1e-8}
    )
    return float(res.x)


_LANDAU_MODE = math.nan


def langau_mpv(values: npt.ArrayLike, bins: int = 60) -> tuple[float, float]:
    """(most probable value, its error) of a Landau x Gauss fitted to ``values``; NaNs if < 20 values.

    The fit range is from the 1st percentile to 2.5 x the median, where the Landau tail stops
    mattering for the peak; the MPV is read off the fitted curve (the peak of the convolution,
    not the Landau parameter, which differs when the Gaussian is wide).
    """
    global _LANDAU_MODE
    from iminuit import Minuit

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 20:
        return math.nan, math.nan
    if math.isnan(_LANDAU_MODE):
        _LANDAU_MODE = _landau_mode()
    med = float(np.median(x))
    lo = float(np.percentile(x, 1.0))
    hi = 2.5 * med
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = edges[1] - edges[0]
    n_in = counts.sum()

    def nll(mpv: float, eta: float, sigma: float) -> float:
        pdf = _langau_pdf(centres, mpv, eta, sigma)
        norm_in = pdf.sum() * width
        if not (norm_in > 0):
            return 1e30
        mu = np.clip(n_in * pdf * width / norm_in, 1e-12, None)
        return float(2.0 * np.sum(mu - counts * np.log(mu)))

    q25, q75 = np.percentile(x, [25, 75])
    spread = max(float(q75 - q25), 1e-6)
    m = Minuit(nll, mpv=med * 0.9, eta=spread / 4, sigma=spread / 4)
    m.errordef = Minuit.LIKELIHOOD * 2  # nll is -2 log L
    m.limits["eta"] = (spread * 1e-3, spread * 10)
    m.limits["sigma"] = (0.0, spread * 10)
    m.limits["mpv"] = (lo, hi)
    m.migrad()
    p = m.values
    fine = np.linspace(lo, hi, 2000)
    curve = _langau_pdf(fine, p["mpv"], p["eta"], p["sigma"])
    peak = float(fine[int(np.argmax(curve))])
    shift = peak - p["mpv"]
    err = float(m.errors["mpv"]) if m.valid else math.nan
    return peak if math.isfinite(shift) else math.nan, err
