"""The analyses' outputs: the seed's summary text file, its JSON twin, the optional ROOT file.

Seed format (spec section 6), read by :mod:`farmtools.monitor.summary`::

    DDMMYY HHMMSS                 time stamp of the analysis (UTC)
    tau0 err0 tau1 err1           electron lifetime (us) per view with fit errors (100000.0 = inf)
    lem dQds0 err0 dQds1 err1     one line per LEM 1..12 (fC/cm, truncated mean per view,
                                  lifetime-corrected); ``nan`` where a cell has < 10 hits

The purity analysis writes the first two lines; the gain analysis reads them back and writes
the whole file.  The seed's line 2 keeps its dummy 100000.0 for both "infinite" and "no
measurement" (four numbers, read by the seed's own tools); the JSON twin tells them apart
(``status``) and gives k = 1/tau with its error and tau's asymmetric interval.  The JSON is
strict: a NaN or an infinity is written as ``null`` (:func:`strict`), which every parser reads.  The JSON twin (same stem) carries the same numbers and everything else
(``run``, ``time``, ``files``, ``lifetime_us``, ``lifetime_err_us``, ``purity``, ``gain`` and
``lems``, keys listed in docs/analysis.md); the monitor prefers it.  Files are written under a
temporary name and renamed, so the monitor never reads half a summary.  May import numpy and
uproot (ROOT output only).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from farmtools.analysis.gain import GainResult
from farmtools.analysis.purity import INFINITE_US, NO_MEASUREMENT, Lifetime, PurityResult
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


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None: JSON has no NaN or Infinity, and
    strict parsers (JavaScript's, jq) reject Python's bare ``NaN``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict(v) for v in obj]
    if isinstance(obj, np.generic):
        return strict(obj.item())
    return obj


def dumps(doc: Any) -> str:
    """Strict JSON text of ``doc`` (see :func:`strict`); raises on anything else non-standard."""
    return json.dumps(strict(doc), indent=1, allow_nan=False)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summary_json(
    t: datetime,
    run: int | None,
    files: Sequence[str],
    purity: PurityResult | Mapping[str, Any] | None,
    views: Sequence[Lifetime],
    gain: GainResult | None,
) -> dict[str, Any]:
    """The JSON twin: the seed file's numbers under the monitor's keys, plus the details.

    ``purity`` is the analysis' result, or the block read back from a purity summary by the
    gain analysis (:attr:`PuritySummary.block`).  Not yet strict: :func:`dumps` writes it.
    """
    blocks = [v.to_json() for v in views[:2]]
    doc: dict[str, Any] = {
        "format": JSON_FORMAT,
        "run": run,
        "time": t.astimezone(UTC).isoformat(),
        "files": list(files),
        "lifetime_us": [b["tau_us"] for b in blocks],
        "lifetime_err_us": [b["error_us"] for b in blocks],
        "lifetime_status": [b["status"] for b in blocks],
    }
    if isinstance(purity, PurityResult):
        doc["purity"] = purity.to_json()
    elif purity is not None:
        doc["purity"] = dict(purity)
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
    purity: PurityResult | Mapping[str, Any] | None,
    views: Sequence[Lifetime],
    gain: GainResult | None = None,
) -> tuple[Path, Path]:
    """Write ``path`` (seed text) and its ``.json`` twin atomically; returns both paths."""
    txt = Path(path)
    js = txt.with_suffix(".json")
    doc = summary_json(t, run, files, purity, views, gain)
    _atomic_write(js, dumps(doc) + "\n")
    _atomic_write(txt, seed_text(t, views, gain))
    return txt, js


@dataclass(frozen=True)
class PuritySummary:
    """What the gain analysis takes from a purity summary."""

    views: tuple[Lifetime, Lifetime]
    combined: Lifetime
    #: The ``purity`` block the gain analysis copies into its own JSON: the purity JSON's own,
    #: or one made from the text's lifetimes (``source: "seed text"``, no points).
    block: dict[str, Any] = field(default_factory=dict)


def _float(v: Any) -> float:
    """A JSON number, None (a strict JSON's NaN) as NaN."""
    return math.nan if v is None else float(v)


def _lifetime(d: dict[str, Any]) -> Lifetime:
    k, k_err = _float(d.get("k_per_us")), _float(d.get("k_error"))
    if math.isfinite(k) and math.isfinite(k_err):
        return Lifetime.from_k(k, k_err, _float(d.get("chi2_ndof")))
    tau = d.get("tau_us")
    return Lifetime.from_tau(_float(INFINITE_US if tau is None else tau), _float(d["error_us"]))


def _combine(views: Sequence[Lifetime]) -> Lifetime:
    """Inverse-variance mean of the views' 1/tau (a text summary has no combined value).

    A view reported as the dummy carries no usable error and is left out; when every view is,
    there is no measurement.
    """
    ks = []
    ws = []
    for v in views:
        if v.status == NO_MEASUREMENT:
            continue
        k, k_err = v.k_pair()
        ks.append(k)
        ws.append(1.0 / k_err**2)
    if not ks:
        return Lifetime.from_k(math.nan, math.nan)
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
            return PuritySummary(views, _lifetime(pur["combined"]), dict(pur))
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
    views = (Lifetime.from_tau(values[0], values[1]), Lifetime.from_tau(values[2], values[3]))
    combined = _combine(views)
    block = {
        "source": "seed text",
        "file": str(p),
        "views": [v.to_json() for v in views],
        "combined": combined.to_json(),
        "points": [],
    }
    return PuritySummary(views, combined, block)


#: The LEM maps of :func:`write_root`: name -> (title with units, value and error of a LemGain).
LEM_MAPS: dict[str, tuple[str, str, str]] = {
    "gain": ("effective gain G (calibrated truncated mean)", "gain", "gain_err"),
    "gain_mpv": ("effective gain G (calibrated MPV)", "gain_mpv", "gain_mpv_err"),
    "asymmetry": (
        "view asymmetry A = (Q1 - Q0)/(Q1 + Q0) (calibrated MPV)",
        "asymmetry",
        "asymmetry_err",
    ),
    "dqds_view0": ("dQ/ds view 0, truncated mean 5-25 % (fC/cm)", "dqds0", "dqds_err0"),
    "dqds_view1": ("dQ/ds view 1, truncated mean 5-25 % (fC/cm)", "dqds1", "dqds_err1"),
}


def _lem_values(r: Any) -> dict[str, float]:
    return {
        "gain": r.gain,
        "gain_err": r.gain_err,
        "gain_mpv": r.gain_mpv,
        "gain_mpv_err": r.gain_mpv_err,
        "asymmetry": r.asymmetry,
        "asymmetry_err": r.asymmetry_err,
        "dqds0": r.dqds[0],
        "dqds_err0": r.dqds_err[0],
        "dqds1": r.dqds[1],
        "dqds_err1": r.dqds_err[1],
    }


def write_root(
    path: str | os.PathLike[str], gain: GainResult, geometry: Geometry = WA105_3X1X1
) -> Path:
    """ROOT file with 2D histograms of the segmented CRP (x: 1 m axis, y: 3 m axis, cm).

    ``gain``, ``gain_mpv``, ``asymmetry``, ``dqds_view0`` and ``dqds_view1``: one bin per LEM, so
    bin (ix+1, iy+1) is LEM ``1 + ix + nx*iy``; titled with their units, the analysis' errors in
    the bins.  A LEM without data (fewer than the minimum hits in a view) has content 0 and
    error 0 there and 0 in the TH2D ``valid`` (1 where measured); the TTree ``lems`` has one
    entry per LEM with every number, NaN where there is none, and ``valid``.
    """
    import uproot

    from farmtools.roothist import th2d

    nx, ny = geometry.lem_grid
    xe = np.arange(nx + 1, dtype=np.float64) * geometry.lem_size_cm
    ye = np.arange(ny + 1, dtype=np.float64) * geometry.lem_size_cm
    values = {k: np.zeros((nx, ny)) for k in LEM_MAPS}
    errors = {k: np.zeros((nx, ny)) for k in LEM_MAPS}
    valid = np.zeros((nx, ny))
    rows: dict[str, list[float]] = {"lem": [], "lem_old": [], "ix": [], "iy": [], "valid": []}
    for r in gain.lems:
        vals = _lem_values(r)
        ok = math.isfinite(r.gain) and math.isfinite(r.gain_mpv)
        valid[r.ix, r.iy] = 1.0 if ok else 0.0
        for k, (_, v, e) in LEM_MAPS.items():
            if math.isfinite(vals[v]) and math.isfinite(vals[e]):
                values[k][r.ix, r.iy] = vals[v]
                errors[k][r.ix, r.iy] = vals[e]
        for key, n in (("lem", r.lem), ("lem_old", r.lem_old), ("ix", r.ix), ("iy", r.iy)):
            rows[key].append(n)
        rows["valid"].append(ok)
        for key, x in vals.items():
            rows.setdefault(key, []).append(x)
    xt, yt = "x, along the 1 m side (cm)", "y, along the 3 m side (cm)"
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with uproot.recreate(tmp) as f:
        for k, (what, _, _) in LEM_MAPS.items():
            title = f"{what}, per LEM (0 where no data: see valid)"
            f[k] = th2d(k, title, values[k], xe, ye, xt, yt, errors[k])
        f["valid"] = th2d("valid", "LEM measured (1) or without data (0)", valid, xe, ye, xt, yt)
        columns = {k: np.asarray(v) for k, v in rows.items()}
        f.mktree(
            "lems",
            {k: v.dtype for k, v in columns.items()},
            title="per LEM: gain (G), asymmetry, dqds0/1 (fC/cm), errors; NaN and valid=0 "
            "where no data",
        )
        f["lems"].extend(columns)
    os.replace(tmp, out)
    return out
