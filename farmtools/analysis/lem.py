"""LEM numbering: the continuous numbering the farm uses, and the older experiment numbering.

The analyses number LEM cells like the bins of a 2D histogram (spec section 6):
``lem = 1 + ix + nx*iy``, ``ix`` along the 1 m axis (0..1), ``iy`` along the 3 m axis (0..5),
so LEM 1..12; :meth:`farmtools.detector.Geometry.lem_number` and ``lem_cell`` are the reference.

The older numbering [choice, the sources do not spell it out]: 0-based and running along the
3 m axis first, ``old = iy + ny*ix`` (0..11), the order of the anode modules along the long
side of the CRP in the 3x1x1 documents.  :func:`to_old` and :func:`from_old` convert; the JSON
summary carries both numbers so a comparison with an old output never needs this module.
May import :mod:`farmtools.detector` only.
"""

from __future__ import annotations

from farmtools.detector import WA105_3X1X1, Geometry


def to_old(lem: int, geometry: Geometry = WA105_3X1X1) -> int:
    """Older numbering of continuous LEM ``lem`` (1..n_lems); ValueError if out of range."""
    _check(lem, geometry)
    ix, iy = geometry.lem_cell(lem)
    _, ny = geometry.lem_grid
    return iy + ny * ix


def from_old(old: int, geometry: Geometry = WA105_3X1X1) -> int:
    """Continuous LEM number of the older number ``old`` (0..n_lems-1)."""
    if not 0 <= old < geometry.n_lems:
        raise ValueError(f"old LEM number {old} is outside 0..{geometry.n_lems - 1}")
    nx, ny = geometry.lem_grid
    ix, iy = divmod(old, ny)
    return 1 + ix + nx * iy


def _check(lem: int, geometry: Geometry) -> None:
    if not 1 <= lem <= geometry.n_lems:
        raise ValueError(f"LEM number {lem} is outside 1..{geometry.n_lems}")
