"""LEM numbering for the analyses: a re-export of the geometry's conversions.

The analyses number LEM cells like the bins of a 2D histogram (spec section 6):
``lem = 1 + ix + nx*iy``, ``ix`` along the 1 m axis (0..1), ``iy`` along the 3 m axis (0..5),
so LEM 1..12; :meth:`farmtools.detector.Geometry.lem_number` and ``lem_cell`` are the reference.

The conversion to the older experiment numbering lives with the rest of the geometry in
:mod:`farmtools.detector` (one place for the detector's layout); it is re-exported here because
this is where the analyses and older callers look for it.  That older numbering is this
project's assumption, not a fact of the spec: see :func:`farmtools.detector.to_old`.
"""

from __future__ import annotations

from farmtools.detector import from_old, to_old

__all__ = ["from_old", "to_old"]
