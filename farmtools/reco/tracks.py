"""Straight tracks in each view, the matching of the two views, and the dQ/ds path length.

Spec section 5.  A view is the plane (strip coordinate ``u`` in cm, drift coordinate ``z`` in cm
with ``z = tick * drift velocity``); hits are points there.  Hits are clustered by
neighbourhood, each cluster of at least ``min_hits`` hits is searched with a Hough transform for
its dominant line, which a total-least-squares fit then refines (so vertical and horizontal
tracks are handled alike); inliers become a track and the rest are searched again, so two
crossing muons in one cluster become two tracks.

Pure functions over numpy arrays; may import numpy, numba and :mod:`farmtools.detector`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class TrackParams:
    """Knobs of the 2D track finder."""

    min_hits: int = 30
    #: Hits on strips up to this far apart (1 = neighbours) may belong to one cluster.
    max_channel_gap: int = 2
    #: ...if their tick windows overlap after widening by this many ticks.
    max_tick_gap: int = 6
    #: Distance (cm) of a hit to the line to count as an inlier.
    inlier_cm: float = 1.0
    #: Most tracks searched in one cluster.
    max_tracks_per_cluster: int = 4


@dataclass(frozen=True)
class Line2D:
    """A straight line in one view: a point ``(u, z)`` on it and a unit direction with ``dz >= 0``."""

    u0: float
    z0: float
    du: float
    dz: float

    @property
    def slope(self) -> float:
        """dz/du (cm/cm): the ``a`` of the spec's dQ/ds formula; +-inf for a track along the drift."""
        if self.du == 0.0:
            return math.inf
        return self.dz / self.du

    @property
    def intercept(self) -> float:
        """z at u = 0 (cm); NaN for a track along the drift."""
        if self.du == 0.0:
            return math.nan
        return self.z0 - self.slope * self.u0

    def u_at(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Strip coordinate of the line at drift coordinate ``z`` (NaN if the line is flat in z)."""
        zz = np.asarray(z, dtype=np.float64)
        if self.dz == 0.0:
            return np.full_like(zz, np.nan)
        return self.u0 + (zz - self.z0) * self.du / self.dz

    def distance(
        self, u: npt.NDArray[np.float64], z: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        return np.abs((u - self.u0) * self.dz - (z - self.z0) * self.du)


@dataclass(frozen=True)
class Track2D:
    """A track in one view: its line and the indices (into the view's hit arrays) of its hits."""

    line: Line2D
    hits: npt.NDArray[np.intp]


# --- clustering --------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _find(parent: npt.NDArray[np.intp], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _cluster(
    ch: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    te: npt.NDArray[np.int64],
    ch_gap: int,
    t_gap: int,
) -> npt.NDArray[np.intp]:
    n = ch.shape[0]
    parent = np.arange(n)
    # hits are sorted by channel: for each hit, look ahead while the channel is close enough
    for i in range(n):
        j = i + 1
        while j < n and ch[j] - ch[i] <= ch_gap:
            if ts[j] - t_gap <= te[i] and ts[i] - t_gap <= te[j]:
                a = _find(parent, i)
                b = _find(parent, j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            j += 1
    labels = np.empty(n, dtype=np.intp)
    for i in range(n):
        labels[i] = _find(parent, i)
    return labels


def cluster_hits(
    ch: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    te: npt.NDArray[np.int64],
    max_channel_gap: int = 2,
    max_tick_gap: int = 6,
) -> npt.NDArray[np.intp]:
    """Cluster label of each hit (hits sorted by channel): neighbours in strip and in time join."""
    if ch.size == 0:
        return np.empty(0, dtype=np.intp)
    return _cluster(
        np.ascontiguousarray(ch, dtype=np.int64),
        np.ascontiguousarray(ts, dtype=np.int64),
        np.ascontiguousarray(te, dtype=np.int64),
        max_channel_gap,
        max_tick_gap,
    )


# --- line finding ------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _hough(
    u: npt.NDArray[np.float64], z: npt.NDArray[np.float64], n_theta: int, rho_bin: float
) -> tuple[float, float]:
    uc = u.mean()
    zc = z.mean()
    rmax = 0.0
    for i in range(u.shape[0]):
        r = math.hypot(u[i] - uc, z[i] - zc)
        if r > rmax:
            rmax = r
    n_rho = int(2 * rmax / rho_bin) + 3
    acc = np.zeros((n_theta, n_rho), dtype=np.int32)
    cos_t = np.cos(np.arange(n_theta) * math.pi / n_theta)
    sin_t = np.sin(np.arange(n_theta) * math.pi / n_theta)
    for i in range(u.shape[0]):
        du = u[i] - uc
        dz = z[i] - zc
        for k in range(n_theta):
            r = du * cos_t[k] + dz * sin_t[k]
            b = int((r + rmax) / rho_bin + 0.5)
            acc[k, b] += 1
            if b + 1 < n_rho:
                acc[k, b + 1] += 1
    best = 0
    bk = 0
    bb = 0
    for k in range(n_theta):
        for b in range(n_rho):
            if acc[k, b] > best:
                best = acc[k, b]
                bk = k
                bb = b
    theta = bk * math.pi / n_theta
    rho = (bb - 0.5) * rho_bin - rmax
    # return a point on the line and the angle of its normal
    return theta, rho + uc * math.cos(theta) + zc * math.sin(theta)


def hough_line(
    u: npt.NDArray[np.float64], z: npt.NDArray[np.float64], n_theta: int = 180, rho_bin: float = 0.6
) -> Line2D:
    """Dominant straight line of the points ``(u, z)`` by a Hough transform (normal form)."""
    theta, rho = _hough(
        np.ascontiguousarray(u, np.float64), np.ascontiguousarray(z, np.float64), n_theta, rho_bin
    )
    nu, nz = math.cos(theta), math.sin(theta)
    return _oriented(rho * nu, rho * nz, -nz, nu)


def _oriented(u0: float, z0: float, du: float, dz: float) -> Line2D:
    if dz < 0 or (dz == 0 and du < 0):
        du, dz = -du, -dz
    return Line2D(u0, z0, du, dz)


def fit_line(
    u: npt.NDArray[np.float64], z: npt.NDArray[np.float64], w: npt.NDArray[np.float64] | None = None
) -> Line2D:
    """Total-least-squares line (principal axis) of the points: any orientation, no special case."""
    if w is None:
        w = np.ones_like(u)
    sw = w.sum()
    uc = float((w * u).sum() / sw)
    zc = float((w * z).sum() / sw)
    du = u - uc
    dz = z - zc
    cov = np.array(
        [[(w * du * du).sum(), (w * du * dz).sum()], [(w * du * dz).sum(), (w * dz * dz).sum()]]
    )
    vals, vecs = np.linalg.eigh(cov)
    d = vecs[:, int(np.argmax(vals))]
    return _oriented(uc, zc, float(d[0]), float(d[1]))


@numba.njit(cache=True, nogil=True)
def _oriented_tuple(
    u0: float, z0: float, du: float, dz: float
) -> tuple[float, float, float, float]:
    if dz < 0 or (dz == 0 and du < 0):
        du, dz = -du, -dz
    return u0, z0, du, dz


@numba.njit(cache=True, nogil=True)
def _inliers(
    u: npt.NDArray[np.float64],
    z: npt.NDArray[np.float64],
    pool: npt.NDArray[np.intp],
    line: tuple[float, float, float, float],
    tol: float,
) -> npt.NDArray[np.intp]:
    u0, z0, du, dz = line
    keep = np.empty(pool.size, dtype=np.bool_)
    for k in range(pool.size):
        i = pool[k]
        keep[k] = abs((u[i] - u0) * dz - (z[i] - z0) * du) < tol
    return pool[keep]


@numba.njit(cache=True, nogil=True)
def _fit(
    u: npt.NDArray[np.float64], z: npt.NDArray[np.float64], idx: npt.NDArray[np.intp]
) -> tuple[float, float, float, float]:
    """:func:`fit_line` of the points ``idx`` (unit weights)."""
    uu = u[idx]
    zz = z[idx]
    sw = float(idx.size)
    uc = uu.sum() / sw
    zc = zz.sum() / sw
    du = uu - uc
    dz = zz - zc
    cov = np.empty((2, 2))
    cov[0, 0] = (du * du).sum()
    cov[0, 1] = (du * dz).sum()
    cov[1, 0] = cov[0, 1]
    cov[1, 1] = (dz * dz).sum()
    vals, vecs = np.linalg.eigh(cov)
    k = int(np.argmax(vals))
    return _oriented_tuple(uc, zc, vecs[0, k], vecs[1, k])


@numba.njit(cache=True, nogil=True)
def _find_tracks(
    u: npt.NDArray[np.float64],
    z: npt.NDArray[np.float64],
    labels: npt.NDArray[np.intp],
    min_hits: int,
    max_tracks: int,
    inlier_cm: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """:func:`find_tracks` in one call without the GIL: (lines (k, 4) as u0, z0, du, dz; the
    tracks' hit indices one after the other; where each track's start, k + 1 entries)."""
    n = labels.size
    order = np.argsort(labels, kind="mergesort")  # stable: a cluster's hits stay in order
    lines = np.empty((n // max(min_hits, 1) + 1, 4))
    hits = np.empty(n, dtype=np.intp)
    starts = np.zeros(n // max(min_hits, 1) + 2, dtype=np.intp)
    n_tracks = 0
    n_hits = 0
    first = 0
    while first < n:
        last = first
        while last < n and labels[order[last]] == labels[order[first]]:
            last += 1
        pool = order[first:last].copy()
        first = last
        if pool.size < min_hits:
            continue
        for _ in range(max_tracks):
            if pool.size < min_hits:
                break
            theta, rho = _hough(u[pool], z[pool], 180, 0.6)
            nu = math.cos(theta)
            nz = math.sin(theta)
            line = _oriented_tuple(rho * nu, rho * nz, -nz, nu)
            inl = _inliers(u, z, pool, line, 2.0 * inlier_cm)
            for _it in range(3):
                if inl.size < 2:
                    break
                line = _fit(u, z, inl)
                inl = _inliers(u, z, pool, line, inlier_cm)
            if inl.size < max(min_hits, 1):  # at most n // min_hits tracks: the arrays' size
                break
            lines[n_tracks, 0] = line[0]
            lines[n_tracks, 1] = line[1]
            lines[n_tracks, 2] = line[2]
            lines[n_tracks, 3] = line[3]
            hits[n_hits : n_hits + inl.size] = inl
            n_hits += inl.size
            n_tracks += 1
            starts[n_tracks] = n_hits
            taken = np.zeros(n, dtype=np.bool_)
            taken[inl] = True
            rest = np.empty(pool.size, dtype=np.bool_)
            for k in range(pool.size):
                rest[k] = not taken[pool[k]]
            pool = pool[rest]
    return lines[:n_tracks], hits[:n_hits], starts[: n_tracks + 1]


def find_tracks(
    u: npt.NDArray[np.float64],
    z: npt.NDArray[np.float64],
    labels: npt.NDArray[np.intp],
    params: TrackParams = TrackParams(),
) -> list[Track2D]:
    """Tracks of one view from its hits' positions and cluster labels (see the module doc).

    Clusters in label order; in each, up to ``max_tracks_per_cluster`` times: the Hough line
    (:func:`hough_line`) of the hits left, its hits within ``2 inlier_cm``, three
    total-least-squares refits (:func:`fit_line`) each taking the hits within ``inlier_cm``;
    a track if ``min_hits`` remain, its hits removed.  One numba call (GIL released: the
    CRPs of a 6x6x6 event find their tracks on several threads at once).
    """
    if labels.size == 0:
        return []
    lines, hits, starts = _find_tracks(
        np.ascontiguousarray(u, dtype=np.float64),
        np.ascontiguousarray(z, dtype=np.float64),
        np.ascontiguousarray(labels, dtype=np.intp),
        params.min_hits,
        params.max_tracks_per_cluster,
        params.inlier_cm,
    )
    return [
        Track2D(Line2D(*(float(x) for x in lines[k])), hits[starts[k] : starts[k + 1]])
        for k in range(lines.shape[0])
    ]


# --- view matching -----------------------------------------------------------------------------
def match_views(
    ranges0: list[tuple[float, float]], ranges1: list[tuple[float, float]], min_overlap: float = 0.5
) -> list[tuple[int, int]]:
    """Pairs (track of view 0, track of view 1) whose drift-time ranges overlap best.

    The overlap of two ranges is their intersection over their union; pairs are taken greedily
    from the best overlap down, each track at most once, and only above ``min_overlap``.
    """
    scores: list[tuple[float, int, int]] = []
    for i, (a0, a1) in enumerate(ranges0):
        for j, (b0, b1) in enumerate(ranges1):
            inter = min(a1, b1) - max(a0, b0)
            union = max(a1, b1) - min(a0, b0)
            if inter > 0 and union > 0:
                scores.append((inter / union, i, j))
    scores.sort(reverse=True)
    used0: set[int] = set()
    used1: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for s, i, j in scores:
        if s < min_overlap:
            break
        if i in used0 or j in used1:
            continue
        used0.add(i)
        used1.add(j)
        pairs.append((i, j))
    return pairs


# --- dQ/ds -------------------------------------------------------------------------------------
def path_length(pitch_cm: float, a_this: float, a_other: float) -> float:
    """3D track length under one strip (spec section 5): ``pitch*sqrt(1 + a0^2 (1 + 1/a1^2))``.

    ``a_this`` and ``a_other`` are dz/du of the track in this view and in the other view.  A track
    along the strips of the other view (``a_other = 0``) has no finite length per strip here:
    the result is ``inf`` and its dQ/ds is 0, which the analyses drop.
    """
    if a_other == 0.0:
        return math.inf if a_this != 0.0 else pitch_cm
    if math.isinf(a_this):
        return math.inf
    return pitch_cm * math.sqrt(1.0 + a_this * a_this * (1.0 + 1.0 / (a_other * a_other)))
