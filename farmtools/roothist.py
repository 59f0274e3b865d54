"""Titled ROOT histograms with their own bin errors, for the files uproot writes.

uproot writes a ``(values, edges)`` tuple as an untitled TH1D/TH2D whose bin errors are
``sqrt(content)``: a gain of 20.68 fitted to +- 0.11 read back as +- 4.55.  These helpers build
the histogram objects themselves (``uproot.writing.identify.to_TH1x`` / ``to_TH2x``), so a file
opened in ROOT shows a title with the units, axis titles, and the errors the analysis measured
(``fSumw2`` = error squared per bin).  Used by the reconstruction's output and the gain
analysis' LEM maps; may import numpy and uproot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def _axis(name: str, title: str, edges: npt.NDArray[np.float64]) -> Any:
    from uproot.writing.identify import to_TAxis

    return to_TAxis(name, title, edges.size - 1, float(edges[0]), float(edges[-1]), edges)


def th1d(
    name: str,
    title: str,
    values: npt.ArrayLike,
    edges: npt.ArrayLike,
    xtitle: str,
    ytitle: str = "",
    errors: npt.ArrayLike | None = None,
) -> Any:
    """A TH1D with ``title`` and axis titles; bin errors ``errors`` (default 0: a mean per bin,
    not a count, has no Poisson error)."""
    from uproot.writing.identify import to_TH1x

    v = np.asarray(values, dtype=np.float64)
    e = np.zeros_like(v) if errors is None else np.asarray(errors, dtype=np.float64)
    x = np.asarray(edges, dtype=np.float64)
    data = np.r_[0.0, v, 0.0]
    sumw2 = np.r_[0.0, e * e, 0.0]
    centres = 0.5 * (x[1:] + x[:-1])
    xaxis = _axis("xaxis", xtitle, x)
    yaxis = _axis("yaxis", ytitle, np.array([0.0, 1.0]))
    return to_TH1x(
        name,
        title,
        data,
        float(v.size),
        float(v.sum()),
        float(sumw2.sum()),
        float((v * centres).sum()),
        float((v * centres * centres).sum()),
        sumw2,
        xaxis,
        yaxis,
    )


def th2d(
    name: str,
    title: str,
    values: npt.ArrayLike,
    xedges: npt.ArrayLike,
    yedges: npt.ArrayLike,
    xtitle: str,
    ytitle: str,
    errors: npt.ArrayLike | None = None,
) -> Any:
    """A TH2D of ``values[ix, iy]`` with titles and bin errors ``errors[ix, iy]`` (default 0)."""
    from uproot.writing.identify import to_TH2x

    v = np.asarray(values, dtype=np.float64)
    e = np.zeros_like(v) if errors is None else np.asarray(errors, dtype=np.float64)
    xe = np.asarray(xedges, dtype=np.float64)
    ye = np.asarray(yedges, dtype=np.float64)
    # ROOT's cell order: x fastest, with under- and overflow on both axes.
    full = np.zeros((v.shape[0] + 2, v.shape[1] + 2))
    full[1:-1, 1:-1] = v
    full_w2 = np.zeros_like(full)
    full_w2[1:-1, 1:-1] = e * e
    data = full.T.ravel()
    sumw2 = full_w2.T.ravel()
    xc = 0.5 * (xe[1:] + xe[:-1])[:, None]
    yc = 0.5 * (ye[1:] + ye[:-1])[None, :]
    return to_TH2x(
        name,
        title,
        data,
        float(v.size),
        float(v.sum()),
        float((e * e).sum()),
        float((v * xc).sum()),
        float((v * xc * xc).sum()),
        float((v * yc).sum()),
        float((v * yc * yc).sum()),
        float((v * xc * yc).sum()),
        sumw2,
        _axis("xaxis", xtitle, xe),
        _axis("yaxis", ytitle, ye),
        _axis("zaxis", "", np.array([0.0, 1.0])),
    )
