"""The analyses' outputs: the seed's summary text file, its JSON twin, the optional ROOT file.

Seed format (spec section 6), read by :mod:`farmtools.monitor.summary`::

    DDMMYY HHMMSS                 time stamp of the analysis (UTC)
    tau0 err0 tau1 err1           electron lifetime (us) per view with fit errors (100000.0 = inf)
    lem dQds0 err0 dQds1 err1     one line per LEM 1..12 (fC/cm, truncated mean per view,
                                  lifetime-corrected); ``nan`` where a cell has < 10 hits

The purity analysis writes the first two lines; the gain analysis reads them back and writes
the whole file.  The JSON twin (same stem) carries the same numbers and everything else
(``run``, ``time``, ``files``, ``lifetime_us``, ``lifetime_err_us``, ``purity``, ``gain`` and
``lems``, keys listed in docs/analysis.md); the monitor prefers it.  Files are written under a
temporary name and renamed, so the monitor never reads half a summary.  May import numpy and
uproot (ROOT output only).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from farmtools.analysis.gain import GainResult
from farmtools.analysis.purity import INFINITE_US, Lifetime, PurityResult
from farmtools.detector import WA105_3X1X1, Geometry

JSON_FORMAT = "farmtools-analysis/1"


class SummaryFileError(ValueError):
    """A purity summary given to the gain analysis cannot be read; names the file and line."""


def stamp(t: datetime) -> str:
    """The seed's time stamp ``DDMMYY HHMMSS`` (UTC)."""
    return t.astimezone(UTC).strftime("%d%m%y %H%M%S")


def _num(v: float, digits: int) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{digits}f}"


def seed_text(t: datetime, views: Sequence[Lifetime], gain: GainResult | None = None) -> str:
    """The summary file's text: time stamp, lifetime line and, with ``gain``, one line per LEM."""
    lines = [stamp(t)]
    lines.append(" ".join(f"{_num(v.tau_us, 1)} {_num(v.error_us, 1)}" for v in views[:2]))
    if gain is not None:
        for r in gain.lems:
            lines.append(
                f"{r.lem} {_num(r.dqds[0], 4)} {_num(r.dqds_err[0], 4)} "
                f"{_num(r.dqds[1], 4)} {_num(r.dqds_err[1], 4)}"
            )
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summary_json(
    t: datetime,
    run: int | None,
    files: Sequence[str],
    purity: PurityResult | None,
    views: Sequence[Lifetime],
    gain: GainResult | None,
) -> dict[str, Any]:
    """The JSON twin: the seed file's numbers under the monitor's keys, plus the details."""
    doc: dict[str, Any] = {
        "format": JSON_FORMAT,
        "run": run,
        "time": t.astimezone(UTC).isoformat(),
        "files": list(files),
        "lifetime_us": [views[0].tau_us, views[1].tau_us],
        "lifetime_err_us": [views[0].error_us, views[1].error_us],
    }
    if purity is not None:
        doc["purity"] = purity.to_json()
    if gain is not None:
        g = gain.to_json()
        doc["lems"] = g.pop("lems")
        doc["gain"] = g
    return doc


def write_summary(
    path: str | os.PathLike[str],
    t: datetime,
    run: int | None,
    files: Sequence[str],
    purity: PurityResult | None,
    views: Sequence[Lifetime],
    gain: GainResult | None = None,
) -> tuple[Path, Path]:
    """Write ``path`` (seed text) and its ``.json`` twin atomically; returns both paths."""
    txt = Path(path)
    js = txt.with_suffix(".json")
    doc = summary_json(t, run, files, purity, views, gain)
    _atomic_write(js, json.dumps(doc, indent=1) + "\n")
    _atomic_write(txt, seed_text(t, views, gain))
    return txt, js


@dataclass(frozen=True)
class PuritySummary:
    """What the gain analysis takes from a purity summary."""

    views: tuple[Lifetime, Lifetime]
    combined: Lifetime
    purity: PurityResult | None = None


def _lifetime(d: dict[str, Any]) -> Lifetime:
    return Lifetime(
        float(d["tau_us"]),
        float(d["error_us"]),
        float(d.get("k_per_us", math.nan)),
        float(d.get("k_error", math.nan)),
        float(d.get("chi2_ndof", math.nan)),
    )


def _combine(views: Sequence[Lifetime]) -> Lifetime:
    """Inverse-variance mean of the views' 1/tau (a text summary has no combined value).

    A view reported as the infinite dummy carries no usable error and is left out; when every
    view is, the result is the dummy too.
    """
    ks = []
    ws = []
    for v in views:
        if v.tau_us >= INFINITE_US or not (v.tau_us > 0 and v.error_us > 0):
            continue
        k = 1.0 / v.tau_us
        ks.append(k)
        ws.append(1.0 / (v.error_us * k * k) ** 2)
    if not ks:
        return Lifetime.from_k(0.0, math.nan)
    k = float(np.average(ks, weights=ws))
    return Lifetime.from_k(k, float(1.0 / math.sqrt(sum(ws))))


def read_purity_summary(path: str | os.PathLike[str]) -> PuritySummary:
    """Read a purity result from a JSON summary or a seed text summary (lines 1-2)."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SummaryFileError(f"{p}: cannot read purity summary: {exc}") from None
    if p.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
            pur = doc["purity"]
            views = (_lifetime(pur["views"][0]), _lifetime(pur["views"][1]))
            return PuritySummary(views, _lifetime(pur["combined"]))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise SummaryFileError(f"{p}: not a purity JSON summary: {exc!r}") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        raise SummaryFileError(f"{p}: too short: a time stamp and a lifetime line are required")
    parts = lines[1].split()
    try:
        values = [float(x) for x in parts]
    except ValueError:
        raise SummaryFileError(f"{p}, line 2: not a number in {lines[1]!r}") from None
    if len(values) != 4:
        raise SummaryFileError(f"{p}, line 2: expected 'tau0 err0 tau1 err1', got {lines[1]!r}")
    views = (
        Lifetime(values[0], values[1], math.nan, math.nan),
        Lifetime(values[2], values[3], math.nan, math.nan),
    )
    return PuritySummary(views, _combine(views))


def write_root(
    path: str | os.PathLike[str], gain: GainResult, geometry: Geometry = WA105_3X1X1
) -> Path:
    """ROOT file with 2D histograms of the segmented CRP (x: 1 m axis, y: 3 m axis, cm).

    ``gain``, ``gain_mpv``, ``asymmetry``, ``dqds_view0`` and ``dqds_view1``: one bin per LEM, so
    bin (ix+1, iy+1) is LEM ``1 + ix + nx*iy``.
    """
    import uproot

    nx, ny = geometry.lem_grid
    xe = np.arange(nx + 1, dtype=np.float64) * geometry.lem_size_cm
    ye = np.arange(ny + 1, dtype=np.float64) * geometry.lem_size_cm
    maps = {
        k: np.zeros((nx, ny)) for k in ("gain", "gain_mpv", "asymmetry", "dqds_view0", "dqds_view1")
    }
    for r in gain.lems:
        vals = {
            "gain": r.gain,
            "gain_mpv": r.gain_mpv,
            "asymmetry": r.asymmetry,
            "dqds_view0": r.dqds[0],
            "dqds_view1": r.dqds[1],
        }
        for k, v in vals.items():
            maps[k][r.ix, r.iy] = v if math.isfinite(v) else 0.0
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with uproot.recreate(tmp) as f:
        for k, values in maps.items():
            f[k] = (values, xe, ye)
    os.replace(tmp, out)
    return out
