"""Analysis results as the monitor sees them: readers for the summary directory.

The analyses write, per group of reconstructed files, the seed's summary file (spec section 6)
and a JSON file with the same numbers.  This module owns :class:`AnalysisResult` (one summary),
the two readers (:func:`read_seed_summary`, :func:`read_json_summary`) and the rule that merges
the files of one analysis (:func:`group_results`); :mod:`farmtools.monitor.store` keeps them
up to date.  Pure standard library; imports nothing from the rest of farmtools.

The seed format::

    DDMMYY HHMMSS                          time stamp of the analysis (UTC)
    tau0 err0 tau1 err1                    electron lifetime (us) per view, with fit errors
    lem dQds0 err0 dQds1 err1              one line per LEM (fC/cm per view), LEM 1..12

Blank lines and lines starting with ``#`` are ignored; a purity file may stop after the
lifetime line (the gain analysis appends the LEM lines later: the changed file is read again).
The run number is not in the seed file: it comes from the file's path below the summary
directory (``.../run<N>/...`` or ``...run<N>...`` in the name) or from the JSON's ``run``.  A
lifetime of :data:`INFINITE_US` or more means "no attenuation seen".

Results of one analysis written twice (a seed file and its JSON twin, same stem; or a purity
file and a separate gain file repeating its lifetimes) are merged into one
:class:`AnalysisResult` (:func:`group_results`).  The JSON twin's numbers win where both have
them: it carries the gain and asymmetry the analysis calibrated (docs/analysis.md), where the
seed format has only dQ/ds, from which the seed's own definitions are derived.  A JSON file
that cannot be read leaves the seed file's result standing.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The seed's dummy for an infinite electron lifetime (us).
INFINITE_US = 100000.0
#: MIP charge the gain is normalised to, mean (truncated mean) estimate, both views (fC/cm).
MIP_FC_PER_CM = 10.0

RUN_RE = re.compile(r"run(\d+)")
#: Names never read: temporary names of a writer (write, then rename) and binary outputs.
SKIPPED = (".part", ".tmp", ".root", ".swp", "~")
_STAMP_RE = re.compile(r"^\s*(\d{6})\s+(\d{6})\s*$")


class SummaryError(ValueError):
    """A summary file that cannot be read; the message names the file and the line."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, what: str) -> None:
        where = f"{os.fspath(path)}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {what}")
        self.path = os.fspath(path)
        self.line = line


@dataclass(frozen=True)
class LemResult:
    """One LEM's dQ/ds per view (fC/cm) with errors, and what follows from them."""

    lem: int
    dqds: tuple[float, float]
    dqds_err: tuple[float, float]
    gain: float
    gain_err: float
    asymmetry: float

    @classmethod
    def from_dqds(cls, lem: int, dqds: tuple[float, float], err: tuple[float, float]) -> LemResult:
        """Gain and asymmetry as the seed derived them: G = (Q0 + Q1) / 10 fC/cm, A = (Q1-Q0)/(Q1+Q0)."""
        total = dqds[0] + dqds[1]
        gain = total / MIP_FC_PER_CM
        gain_err = math.hypot(err[0], err[1]) / MIP_FC_PER_CM
        asym = (dqds[1] - dqds[0]) / total if total > 0 else math.nan
        return cls(lem, dqds, err, gain, gain_err, asym)


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis summary: a run, a time, lifetimes per view and the LEM results."""

    run: int
    time: datetime
    lifetime_us: tuple[float, float]
    lifetime_err_us: tuple[float, float]
    lems: dict[int, LemResult] = field(default_factory=dict)
    source: str = ""
    #: both views' lifetime combined (us) and its error, when the JSON twin gives it
    combined_us: tuple[float, float] | None = None

    @property
    def key(self) -> tuple[datetime, int, str]:
        return (self.time, self.run, self.source)

    @property
    def fingerprint(self) -> tuple[object, ...]:
        """Changes when any number changes (a gain appended to a purity file is a new result)."""
        return (
            self.key,
            self.lifetime_us,
            tuple(sorted((k, r.dqds, r.gain) for k, r in self.lems.items())),
        )


def run_from_name(path: str | os.PathLike[str]) -> int | None:
    """The run number in a file name (``purity_run1014_seq0-3.txt`` -> 1014), None if absent."""
    m = RUN_RE.search(Path(path).name)
    return int(m.group(1)) if m else None


def run_from_path(path: str | os.PathLike[str], top: str | os.PathLike[str]) -> int | None:
    """The run of a file below ``top``: from its name, else from the nearest ``run<N>`` folder."""
    p = Path(path)
    run = run_from_name(p)
    if run is not None:
        return run
    try:
        parts = p.parent.relative_to(top).parts
    except ValueError:
        return None
    for part in reversed(parts):
        m = RUN_RE.search(part)
        if m:
            return int(m.group(1))
    return None


def _floats(path: Path, lineno: int, line: str, n: int, what: str) -> list[float]:
    parts = line.split()
    if len(parts) != n:
        raise SummaryError(
            path, lineno, f"{what}: expected {n} numbers, found {len(parts)}: {line!r}"
        )
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise SummaryError(path, lineno, f"{what}: not a number in {line!r}") from None


def read_seed_summary(path: str | os.PathLike[str], run: int | None = None) -> AnalysisResult:
    """Read a summary file in the seed's format; ``run`` defaults to the one in the file name."""
    p = Path(path)
    run = run if run is not None else run_from_name(p)
    if run is None:
        raise SummaryError(p, None, "no run number in the file name (expected ...run<N>...)")
    try:
        lines = p.read_text(encoding="ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise SummaryError(p, None, f"not a text file (byte {exc.start} is not ASCII)") from None
    numbered = [
        (i, ln)
        for i, ln in enumerate(lines, start=1)
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    lines = [ln for _, ln in numbered]
    lineno = [i for i, _ in numbered]
    if len(lines) < 2:
        raise SummaryError(
            p,
            (lineno[-1] + 1) if lineno else 1,
            "too short: a time stamp and a lifetime line are required",
        )
    m = _STAMP_RE.match(lines[0])
    if m is None:
        raise SummaryError(
            p, lineno[0], f"time stamp: expected 'DDMMYY HHMMSS', found {lines[0]!r}"
        )
    try:
        stamp = datetime.strptime(m.group(1) + m.group(2), "%d%m%y%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise SummaryError(p, lineno[0], f"time stamp {lines[0]!r}: {exc}") from None
    tau0, e0, tau1, e1 = _floats(p, lineno[1], lines[1], 4, "lifetime line (tau0 err0 tau1 err1)")
    lems: dict[int, LemResult] = {}
    for i, line in zip(lineno[2:], lines[2:], strict=True):
        values = _floats(p, i, line, 5, "LEM line (lem dQds0 err0 dQds1 err1)")
        lem = int(values[0])
        if lem != values[0] or not 1 <= lem <= 64:
            raise SummaryError(p, i, f"LEM number {values[0]!r} is not a LEM of the CRP")
        lems[lem] = LemResult.from_dqds(lem, (values[1], values[3]), (values[2], values[4]))
    return AnalysisResult(run, stamp, (tau0, tau1), (e0, e1), lems, str(p))


def _get(d: dict[str, Any], *names: str) -> Any:
    for n in names:
        if n in d:
            return d[n]
    return None


def _num(v: Any, none: float = math.nan) -> float:
    """A JSON number; ``null`` (how a strict JSON writes NaN, or "no measurement") as ``none``."""
    return none if v is None else float(v)


def _pair(v: Any, none: float = math.nan) -> tuple[float, float] | None:
    if isinstance(v, list | tuple) and len(v) == 2:
        return (_num(v[0], none), _num(v[1], none))
    return None


def read_json_summary(path: str | os.PathLike[str], run: int | None = None) -> AnalysisResult:
    """Read the JSON twin of a summary (the keys are listed in docs/monitor.md).

    Accepted: ``run``, ``time`` (ISO 8601) and either ``lifetime_us``/``lifetime_err_us`` pairs
    or a ``purity`` object with ``views`` [{``tau_us``, ``error_us``}, ...]; LEMs under ``lems``
    as objects with ``lem``, ``dqds`` / ``dqds_err`` pairs and optionally ``gain``,
    ``gain_err`` and ``asymmetry`` (else derived as the seed did).
    """
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SummaryError(p, None, f"not valid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise SummaryError(p, None, "JSON summary must be an object")
    if isinstance(d.get("run"), int):
        run = d["run"]
    elif run is None:  # absent or null: from the path, as for a seed file
        run = run_from_name(p)
    if not isinstance(run, int) or isinstance(run, bool):
        raise SummaryError(p, None, "no integer 'run' (and none in the file name)")
    try:
        t = d.get("time")
        stamp = datetime.fromisoformat(t) if isinstance(t, str) else None
    except ValueError:
        raise SummaryError(p, None, f"'time' is not ISO 8601: {d.get('time')!r}") from None
    if stamp is None:
        stamp = datetime.fromtimestamp(p.stat().st_mtime, UTC)
    elif stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    # A lifetime written as null was not measured: the seed's dummy, which the seed file has.
    tau = _pair(d.get("lifetime_us"), INFINITE_US)
    err = _pair(d.get("lifetime_err_us"))
    purity = d.get("purity")
    if tau is None and isinstance(purity, dict) and isinstance(purity.get("views"), list):
        views = purity["views"][:2]
        if len(views) == 2:
            tau = (_num(views[0]["tau_us"], INFINITE_US), _num(views[1]["tau_us"], INFINITE_US))
            err = (_num(views[0]["error_us"]), _num(views[1]["error_us"]))
    if tau is None:
        raise SummaryError(
            p, None, "no lifetime: expected 'lifetime_us' [v0, v1] or 'purity.views'"
        )
    combined = None
    if isinstance(purity, dict) and isinstance(purity.get("combined"), dict):
        try:
            c = purity["combined"]
            combined = (_num(c["tau_us"], INFINITE_US), _num(c["error_us"]))
        except (KeyError, TypeError, ValueError):
            combined = None
    lems: dict[int, LemResult] = {}
    for entry in d.get("lems") or []:
        try:
            lem = int(entry["lem"])
            dq = _pair(entry["dqds"])
            dqe = _pair(entry.get("dqds_err")) or (math.nan, math.nan)
        except (KeyError, TypeError, ValueError) as exc:
            raise SummaryError(p, None, f"LEM entry {entry!r}: {exc}") from None
        if dq is None:
            raise SummaryError(p, None, f"LEM {lem}: 'dqds' must be a pair")
        r = LemResult.from_dqds(lem, dq, dqe)
        gain = _get(entry, "gain", "gain_mean")
        if gain is not None:
            r = LemResult(
                lem,
                dq,
                dqe,
                _num(gain),
                _num(entry.get("gain_err", r.gain_err)),
                _num(entry.get("asymmetry", r.asymmetry)),
            )
        lems[lem] = r
    return AnalysisResult(run, stamp, tau, err or (math.nan, math.nan), lems, str(p), combined)


def merge(results: list[AnalysisResult]) -> AnalysisResult:
    """One result of several files of one analysis, ``results`` in order of preference: the
    first one's lifetime and time, every LEM (a preferred file's entry wins)."""
    first = results[0]
    lems: dict[int, LemResult] = {}
    for r in reversed(results):
        lems.update(r.lems)
    combined = next((r.combined_us for r in results if r.combined_us is not None), None)
    return AnalysisResult(
        first.run,
        first.time,
        first.lifetime_us,
        first.lifetime_err_us,
        dict(sorted(lems.items())),
        " + ".join(r.source for r in results),
        combined,
    )


def _same_lifetimes(a: AnalysisResult, b: AnalysisResult) -> bool:
    """Equal up to what a text file keeps (one decimal): the numbers of one fit."""
    return all(
        math.isclose(x, y, rel_tol=1e-6, abs_tol=0.051) or (math.isnan(x) and math.isnan(y))
        for x, y in zip(a.lifetime_us, b.lifetime_us, strict=True)
    )


def _one_analysis(a: AnalysisResult, b: AnalysisResult) -> bool:
    """Two files of one run holding the same fit: the same lifetimes, written within the same
    second, or within an hour when a lifetime is finite (two fits never agree to 0.05 us; two
    "infinite" results of pure argon do, so those must share the second)."""
    if a.run != b.run or not _same_lifetimes(a, b):
        return False
    dt = abs((a.time - b.time).total_seconds())
    if a.time.replace(microsecond=0) == b.time.replace(microsecond=0):
        return True
    finite = any(math.isfinite(t) and t < INFINITE_US for t in a.lifetime_us)
    return finite and dt <= 3600


def group_results(results: dict[str, AnalysisResult]) -> list[AnalysisResult]:
    """Merge the files of one analysis, oldest first.

    Files are of one analysis when they share a stem (``x.txt`` and ``x.json``: the JSON is
    preferred, it has the analysis's calibrated gain and asymmetry where the seed format has
    dQ/ds only), or when :func:`_one_analysis` says so (a purity file and a gain file written
    from it, ``farmtools analyse purity`` then ``gain``).  Two analyses of other files of a run
    differ in their lifetimes and stay apart.
    """
    # JSON before seed files, then by path: a deterministic order of preference
    paths = sorted(results, key=lambda p: (not p.endswith(".json"), p))
    groups: list[list[AnalysisResult]] = []
    by_stem: dict[str, int] = {}
    by_run: dict[int, list[int]] = {}
    for path in paths:
        r = results[path]
        stem = path.rsplit(".", 1)[0] if "." in Path(path).name else path
        idx = by_stem.get(stem)
        if idx is None:
            idx = next((i for i in by_run.get(r.run, []) if _one_analysis(groups[i][0], r)), None)
        if idx is None:
            idx = len(groups)
            groups.append([])
            by_run.setdefault(r.run, []).append(idx)
        groups[idx].append(r)
        by_stem.setdefault(stem, idx)
    merged = [g[0] if len(g) == 1 else merge(g) for g in groups]
    return sorted(merged, key=lambda r: r.key)
