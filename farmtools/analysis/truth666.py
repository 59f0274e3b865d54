"""The 6x6x6 reconstruction against the emulator's truth: which particle each 3D track is.

The t0 matching (:mod:`farmtools.reco.t0match`) must be proved on events whose truth is known:
the fraction of the selected cosmics whose t0 is right (within 1 us), the purity and efficiency
of the beam and cosmic tags, and how many particles become a 3D track at all.  This
module compares the ``tracks`` columns of one event (:mod:`farmtools.reco.event`, as the ROOT
output or :func:`farmtools.reco.multicrp.reconstruct_detector_event` gives them) with the
event's particles (the truth dictionaries of :mod:`farmtools.emulator.pddp_event`: ``t0_us``,
``entry_cm``, ``exit_cm``, ``kind``).

A 3D track is a particle's when every end of its view-matched segments (:mod:`farmtools.reco.crpjoin`,
drift coordinate from the trigger) lies within ``max_cm`` of the particle's line placed at its
own t0 (depth + t0 times the drift velocity), the nearest such particle.  The association uses
positions only, never the reconstructed t0, so a track timed by the wrong flash is still
recognised (and counted wrong).

For benchmarks and tests only: production code never reads the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from farmtools.detector import Geometry
from farmtools.reco import crpjoin
from farmtools.reco.t0match import TAG_BEAM, TAG_COSMIC

Columns = dict[str, npt.NDArray[Any]]

#: Farthest (cm) a segment's end may lie from a particle's line to be that particle's.
MAX_CM = 6.0
#: A particle counts as visible (expected to become a 3D track) when this much of it (cm)
#: drifts into the readout window.
VISIBLE_CM = 30.0
#: The 6x6x6 t0 target: a cosmic's t0 is right within this of the truth (us).
T0_WITHIN_US = 1.0


def _distance(
    points: npt.NDArray[np.float64], a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Distance of each of ``points`` (n, 3) to the segment ``a``..``b``."""
    d = b - a
    ll = float(d @ d)
    s = np.clip((points - a) @ d / ll, 0.0, 1.0) if ll > 0 else np.zeros(len(points))
    return np.linalg.norm(points - (a + s[:, None] * d), axis=1)


def particle_lines(particles: list[dict[str, Any]], geometry: Geometry) -> npt.NDArray[np.float64]:
    """(n, 2, 3) entry and exit of each particle with z from the trigger (depth + t0 * v)."""
    v = geometry.drift_velocity_mm_per_us * 0.1
    out = np.zeros((len(particles), 2, 3))
    for i, p in enumerate(particles):
        for j, key in enumerate(("entry_cm", "exit_cm")):
            x, y, z = p[key]
            out[i, j] = (x, y, z + p["t0_us"] * v)
    return out


def visible_cm(particles: list[dict[str, Any]], geometry: Geometry) -> npt.NDArray[np.float64]:
    """Per particle: its length (cm) whose charge arrives inside the readout window."""
    lines = particle_lines(particles, geometry)
    z_hi = geometry.samples * geometry.drift_velocity_cm_per_tick
    out = np.zeros(len(particles))
    for i, (a, b) in enumerate(lines):
        dz = b[2] - a[2]
        if abs(dz) < 1e-9:
            inside = 1.0 if 0.0 <= a[2] <= z_hi else 0.0
        else:
            s0, s1 = sorted(((0.0 - a[2]) / dz, (z_hi - a[2]) / dz))
            inside = max(0.0, min(1.0, s1) - max(0.0, s0))
        out[i] = inside * float(np.linalg.norm(b - a))
    return out


def associate(
    tracks: Columns, particles: list[dict[str, Any]], geometry: Geometry, max_cm: float = MAX_CM
) -> dict[int, int]:
    """Particle index (into ``particles``) of each 3D track (``track3d``) of one event's columns
    (rows numbered as the ``id`` and ``partner`` columns); tracks of no particle are left out."""
    if not particles or tracks["view"].size == 0:
        return {}
    segs = crpjoin.segments(tracks, geometry)
    lines = particle_lines(particles, geometry)
    ends: dict[int, list[tuple[float, float, float]]] = {}
    for s in segs:
        label = int(tracks["track3d"][s.track0])
        if label >= 0:
            ends.setdefault(label, []).extend((s.start, s.end))
    out: dict[int, int] = {}
    for label, pts in ends.items():
        p = np.asarray(pts)
        worst = np.array([_distance(p, a, b).max() for a, b in lines])
        best = int(np.argmin(worst))
        if worst[best] <= max_cm:
            out[label] = best
    return out


@dataclass
class T0Figures:
    """Counts behind the t0 figures (right t0, tag purity and efficiency), summed over events (:meth:`add`)."""

    #: Selected cosmics (3D tracks) and those whose t0 is within T0_WITHIN_US of their particle's.
    selected: int = 0
    selected_right: int = 0
    #: Selected tracks of no particle, or of a beam particle.
    selected_unknown: int = 0
    selected_beam: int = 0
    #: 3D tracks of a particle tagged beam / cosmic, and how many of them are of a beam /
    #: cosmic particle (the tag's purity: whether the light and the beam line tell beam from
    #: cosmic); timed 3D tracks of no particle (two muons' views paired) are counted apart.
    tagged_unknown: int = 0
    tagged_beam: int = 0
    tagged_beam_right: int = 0
    tagged_cosmic: int = 0
    tagged_cosmic_right: int = 0
    #: 3D tracks of a beam / cosmic particle, and how many got the right tag.
    beam_tracks: int = 0
    beam_tracks_tagged: int = 0
    cosmic_tracks: int = 0
    cosmic_tracks_tagged: int = 0
    #: Matched (timed) 3D tracks and those with the right t0.
    timed: int = 0
    timed_right: int = 0
    #: Visible particles, and those with at least one 3D track, by kind.
    visible: dict[str, int] = field(default_factory=lambda: {"beam": 0, "cosmic": 0})
    found: dict[str, int] = field(default_factory=lambda: {"beam": 0, "cosmic": 0})
    #: Per selected cosmic: (event key, track3d, right t0): for diagnosis.
    selected_keys: list[tuple[int, int, bool]] = field(default_factory=list)

    def add(
        self,
        tracks: Columns,
        particles: list[dict[str, Any]],
        geometry: Geometry,
        selected: npt.NDArray[np.bool_],
        event_key: int = 0,
    ) -> dict[int, int]:
        """Count one event: its track columns, its truth particles and the cosmic selection's
        row mask (:func:`farmtools.analysis.cosmics.select_cosmics`); returns the association."""
        assoc = associate(tracks, particles, geometry)
        labels = np.unique(tracks["track3d"][tracks["track3d"] >= 0])
        for label in labels:
            rows = np.flatnonzero(tracks["track3d"] == label)
            tag = int(tracks["tag"][rows[0]])
            t0 = float(tracks["t0_us"][rows[0]])
            who = assoc.get(int(label), -1)
            kind = particles[who]["kind"] if who >= 0 else ""
            right = who >= 0 and abs(t0 - particles[who]["t0_us"]) <= T0_WITHIN_US
            if tag in (TAG_BEAM, TAG_COSMIC):
                self.timed += 1
                self.timed_right += int(right)
            if tag in (TAG_BEAM, TAG_COSMIC) and who < 0:
                self.tagged_unknown += 1
            elif tag == TAG_BEAM:
                self.tagged_beam += 1
                self.tagged_beam_right += int(kind == "beam")
            elif tag == TAG_COSMIC:
                self.tagged_cosmic += 1
                self.tagged_cosmic_right += int(kind == "cosmic")
            if kind == "beam":
                self.beam_tracks += 1
                self.beam_tracks_tagged += int(tag == TAG_BEAM)
            elif kind == "cosmic":
                self.cosmic_tracks += 1
                self.cosmic_tracks_tagged += int(tag == TAG_COSMIC)
            if selected[rows].any():
                self.selected += 1
                self.selected_right += int(right)
                self.selected_unknown += int(who < 0)
                self.selected_beam += int(kind == "beam")
                self.selected_keys.append((event_key, int(label), bool(right)))
        seen = set(assoc.values())
        for i, (p, vis) in enumerate(zip(particles, visible_cm(particles, geometry), strict=True)):
            if vis >= VISIBLE_CM:
                self.visible[p["kind"]] += 1
                self.found[p["kind"]] += int(i in seen)
        return assoc

    def lines(self) -> list[str]:
        """The figures for people, each with its target."""

        def pct(a: int, b: int) -> str:
            return f"{100 * a / b:.1f} % ({a}/{b})" if b else "n/a (0)"

        ok_t0 = self.selected and self.selected_right >= 0.95 * self.selected
        purity_ok = min(
            (self.tagged_beam_right / self.tagged_beam) if self.tagged_beam else 1.0,
            (self.tagged_cosmic_right / self.tagged_cosmic) if self.tagged_cosmic else 1.0,
        )
        return [
            f"t0: selected cosmics within {T0_WITHIN_US:g} us of the true t0: "
            f"{pct(self.selected_right, self.selected)} (target >= 95 %: "
            f"{'met' if ok_t0 else 'NOT met'}); of no particle {self.selected_unknown}, "
            f"of a beam particle {self.selected_beam}",
            f"t0: all timed 3D tracks within {T0_WITHIN_US:g} us: "
            f"{pct(self.timed_right, self.timed)}",
            f"tags: purity beam {pct(self.tagged_beam_right, self.tagged_beam)}, cosmic "
            f"{pct(self.tagged_cosmic_right, self.tagged_cosmic)} (target >= 99 %: "
            f"{'met' if purity_ok >= 0.99 else 'NOT met'}); efficiency beam "
            f"{pct(self.beam_tracks_tagged, self.beam_tracks)}, cosmic "
            f"{pct(self.cosmic_tracks_tagged, self.cosmic_tracks)}; timed tracks of no particle "
            f"{self.tagged_unknown}",
            f"3D tracks per particle (>= {VISIBLE_CM:g} cm in the window): beam "
            f"{pct(self.found['beam'], self.visible['beam'])}, cosmic "
            f"{pct(self.found['cosmic'], self.visible['cosmic'])}",
        ]
