"""Where things sit in the 6x6x6 (ProtoDUNE-DP) volume: CRPs, PMTs, the beam window [choice].

No public source we read gives the CRP placement in a coordinate frame, the PMT positions or
the beam-window position in a form the farm can use, so this module fixes them for the emulator
and the reconstruction alike (docs/protodune-dp.md, "The volume"):

* frame: ``x`` 0..600 cm and ``y`` 0..600 cm span the anode plane, ``z`` is the drift
  coordinate, 0 at the anode (top) to 600 cm at the cathode, as in the 3x1x1 (``z`` down);
* CRP ``c`` (0..3) covers ``x`` in ``[300 (c % 2), +300)`` and ``y`` in ``[300 (c // 2), +300)``;
  inside it the CRP's own frame is the 3x1x1's: view 0 strips measure the local ``x``, view 1
  strips the local ``y`` (:meth:`farmtools.detector.Geometry.crp_geometry`), LEM
  ``1 + ix + 6 iy`` of 50 x 50 cm2 (36 per CRP);
* 36 PMTs under the cathode, a 6 x 6 grid of 1 m pitch centred on the anode's grid,
  ``z = 700 cm`` (1 m below the cathode), facing up; PMT ``p = i + 6 j`` at
  ``x = 50 + 100 i``, ``y = 50 + 100 j``;
* the beam enters through the upstream face ``y = 0`` at the beam window ``x = 150 cm``,
  ``z = 200 cm`` below the anode, heading along ``+y`` with an 11 degree dip (downwards) and
  a 10 degree horizontal angle towards ``+x``: it crosses from CRP 0 into CRP 2.

Imports nothing from farmtools (the lowest layer, beside :mod:`farmtools.detector`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: Size of the drift volume: anode plane x, y and drift length (cm).
VOLUME_CM = (600.0, 600.0, 600.0)
#: Side of one CRP (cm) and their arrangement (2 x 2).
CRP_SIDE_CM = 300.0
CRP_GRID = (2, 2)
N_CRPS = CRP_GRID[0] * CRP_GRID[1]
#: PMT grid under the cathode: 6 x 6 at 1 m pitch, 1 m below the cathode.
PMT_GRID = (6, 6)
PMT_PITCH_CM = 100.0
PMT_Z_CM = 700.0
N_PMTS = PMT_GRID[0] * PMT_GRID[1]
#: Where the beam enters (cm) and its direction angles (degrees) [choice].
BEAM_WINDOW_CM = (150.0, 0.0, 200.0)
BEAM_DIP_DEG = 11.0
BEAM_YAW_DEG = 10.0


def crp_origin_cm(crp: int) -> tuple[float, float]:
    """(x, y) of the corner of CRP ``crp`` where its strips 0 start."""
    if not 0 <= crp < N_CRPS:
        raise ValueError(f"CRP {crp} is outside 0..{N_CRPS - 1}")
    return (CRP_SIDE_CM * (crp % CRP_GRID[0]), CRP_SIDE_CM * (crp // CRP_GRID[0]))


def crp_of(x_cm: float, y_cm: float) -> int:
    """CRP above the anode-plane point (x, y); points outside are clamped to the nearest CRP."""
    ix = min(max(int(x_cm // CRP_SIDE_CM), 0), CRP_GRID[0] - 1)
    iy = min(max(int(y_cm // CRP_SIDE_CM), 0), CRP_GRID[1] - 1)
    return ix + CRP_GRID[0] * iy


def pmt_positions_cm() -> npt.NDArray[np.float64]:
    """(36, 3) array: x, y, z (cm) of PMT 0..35 (see the module doc)."""
    p = np.arange(N_PMTS)
    i, j = p % PMT_GRID[0], p // PMT_GRID[0]
    return np.stack(
        [
            PMT_PITCH_CM * (i + 0.5),
            PMT_PITCH_CM * (j + 0.5),
            np.full(N_PMTS, PMT_Z_CM),
        ],
        axis=1,
    )


def beam_direction() -> tuple[float, float, float]:
    """Unit vector of the nominal beam (mostly +y, dipping down into the drift, yawed to +x)."""
    dip = math.radians(BEAM_DIP_DEG)
    yaw = math.radians(BEAM_YAW_DEG)
    return (
        math.cos(dip) * math.sin(yaw),
        math.cos(dip) * math.cos(yaw),
        math.sin(dip),
    )
