"""Estimators of a dQ/ds distribution: truncated mean and Landau x Gauss most probable value.

Both come with a statistical error, because the closure tests and the purity fit need them:

* the truncated mean drops the lowest ``low`` and highest ``high`` fractions (5 % and 25 % in
  the seed's gain analysis); its standard error is the winsorised standard deviation over
  ``(1 - low - high) sqrt(n)`` (Tukey-McLaughlin);
* the MPV is the peak of a Landau convolved with a Gaussian, fitted by binned maximum likelihood
  with iminuit to the distribution; its error is propagated from the fit.

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
