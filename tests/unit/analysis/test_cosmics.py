"""The cosmic subsample of a 6x6x6 output: long, deep, flash-timed, isolated from the beam."""

from __future__ import annotations

import numpy as np

from farmtools.analysis.cosmics import CosmicSelection, select_cosmics
from farmtools.detector import PDDP_6X6X6 as G
from farmtools.reco.t0match import TAG_BEAM, TAG_COSMIC, TAG_UNMATCHED


def _tracks(rows: list[tuple[int, int, int, float, float, float, float]]) -> dict[str, np.ndarray]:
    """Rows (track3d, crp, tag, u from-to cm, drift from-to cm), both views each, one event."""
    vz = G.drift_velocity_cm_per_tick
    cols: dict[str, list[float]] = {}
    for t3, crp, tag, u_a, u_b, z_a, z_b in rows:
        for view in (0, 1):
            du, dz = u_b - u_a, z_b - z_a
            n = float(np.hypot(du, dz))
            row = {
                "event": 0,
                "id": len(cols.get("event", [])),
                "view": view,
                "crp": crp,
                "track3d": t3,
                "tag": tag,
                "u0": u_a,
                "z0": z_a,
                "du": du / n,
                "dz": dz / n,
                "tick_min": z_a / vz,
                "tick_max": z_b / vz,
                "length3d": n,
                "drift_min_cm": z_a,
                "drift_max_cm": z_b,
                "t0": 0.0,
                "match_quality": 1.0,
            }
            for k, v in row.items():
                cols.setdefault(k, []).append(v)
    return {k: np.asarray(v) for k, v in cols.items()}


def test_selection_keeps_long_deep_isolated_cosmics() -> None:
    rows = [
        (0, 0, TAG_COSMIC, 10.0, 60.0, 50.0, 450.0),  # long and deep: selected
        (1, 0, TAG_COSMIC, 100.0, 180.0, 50.0, 120.0),  # 106 cm long, 70 cm of drift: shallow
        (2, 1, TAG_COSMIC, 100.0, 150.0, 50.0, 450.0),  # beside the beam in CRP 1
        (3, 1, TAG_BEAM, 160.0, 290.0, 200.0, 260.0),
        (4, 2, TAG_UNMATCHED, 10.0, 60.0, 50.0, 450.0),  # no flash: drift not absolute
    ]
    t = _tracks(rows)
    chosen = select_cosmics(t, G)
    assert set(t["track3d"][chosen]) == {0}
    assert chosen.sum() == 2  # both views of it
    near = select_cosmics(t, G, CosmicSelection(isolation_cm=5.0))
    assert set(t["track3d"][near]) == {0, 2}  # 10 cm from the beam's box: isolated at 5 cm
    shallow = select_cosmics(t, G, CosmicSelection(min_drift_cm=50.0))
    assert set(t["track3d"][shallow]) == {0, 1}


def test_views_of_two_muons_or_a_poor_flash_match_are_not_selected() -> None:
    rows = [
        (0, 0, TAG_COSMIC, 10.0, 60.0, 50.0, 450.0),
        (1, 2, TAG_COSMIC, 10.0, 60.0, 50.0, 450.0),
        (2, 3, TAG_COSMIC, 10.0, 60.0, 50.0, 450.0),
    ]
    t = _tracks(rows)
    assert set(t["track3d"][select_cosmics(t, G)]) == {0, 1, 2}
    # track 1's view 1 ends 40 us earlier than its view 0: another muon's view paired with it
    late = np.flatnonzero((t["track3d"] == 1) & (t["view"] == 1))
    t["tick_max"][late] -= 40.0 / G.tick_us
    # track 2's flash fits its light badly
    t["match_quality"][t["track3d"] == 2] = 3.0
    assert set(t["track3d"][select_cosmics(t, G)]) == {0}
    loose = CosmicSelection(max_view_mismatch_us=50.0, max_match_quality=4.0)
    assert set(t["track3d"][select_cosmics(t, G, loose)]) == {0, 1, 2}
