"""The pipeline hook: analyse each complete group of reconstructed files of a run.

:func:`run_ready_analyses` is called by the processing daemon after each pass (``farmtools
process run`` / ``process once`` with ``[analysis] auto = true``, the default), and by hand or
from cron through ``farmtools analyse ready``.  For every
run with at least ``[analysis] group_size`` files in state ``reconstructed``, it takes them in
sequence order by groups of ``group_size``, runs the purity analysis, then the gain analysis
with that lifetime, writes ``<summary_dir>/run<N>/analysis_run<N>_seq<a>-<b>.{txt,json,root}``
(the directory the monitor reads), and in one transaction moves the files ``reconstructed ->
analysed`` with the results in the story event (``analysed``: summary, lifetimes, LEM gains) and
stores them as a row of the ``analyses`` table (:meth:`Bookkeeping.record_analysis`), which is
where trends are queried from.  A group another process analysed meanwhile is not recorded twice.
ROOT outputs are read where the ``reconstructed`` event says they are: a local (or shared) path
is opened by uproot directly; a ``root://`` URL is fetched to a temporary local file through the
XRootD client first (uproot here has no ``fsspec-xrootd`` to open such URLs).  A file whose ROOT
output cannot be read is moved to ``failed`` with an alarm; the rest of its group waits for the
next call.  Nothing here raises on bad input.  With ``[processing] program`` other than
``reco`` the jobs make no ROOT output and nothing is done.  May import the bookkeeping and the config.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmtools.analysis.gain import gain as gain_analysis
from farmtools.analysis.hits import (
    Columns,
    RecoFileError,
    concat,
    output_channels,
    read_reco_file,
)
from farmtools.analysis.purity import purity as purity_analysis
from farmtools.analysis.summary import write_root, write_summary

if TYPE_CHECKING:
    from farmtools.analysis.gain import GainResult
    from farmtools.analysis.purity import PurityResult
    from farmtools.bookkeeping.db import AnalysisRecord, Bookkeeping, FileRecord
    from farmtools.config import FarmConfig
    from farmtools.detector import Geometry

log = logging.getLogger("farmtools.analysis")


def reco_output(cfg: FarmConfig, bk: Bookkeeping, rec: FileRecord) -> str:
    """The ROOT output of ``rec``: the one its ``reconstructed`` event names, else the layout's.

    A string, not a Path: it may be a ``root://host//path`` URL, whose double slash a Path
    would fold.
    """
    from farmtools.bookkeeping.states import Event
    from farmtools.rawdata.naming import RawName
    from farmtools.storage.derived import output_location

    for ev in reversed(bk.story(rec.name)):
        if ev.event == Event.RECONSTRUCTED and ev.details and ev.details.get("output"):
            return str(ev.details["output"])
    return output_location(cfg, RawName(rec.run or 0, rec.seq or 0))


def read_output(location: str) -> Columns:
    """The hits of the reconstruction output at ``location`` (a path or a ``root://`` URL)."""
    return read_reco_file(location)


def summary_path(cfg: FarmConfig, run: int, seqs: list[int]) -> Path:
    """``<summary_dir>/run<N>/analysis_run<N>_seq<first>-<last>.txt``."""
    return (
        cfg.path(cfg.analysis.summary_dir)
        / f"run{run}"
        / f"analysis_run{run}_seq{min(seqs)}-{max(seqs)}.txt"
    )


def _results(pur: Any, gain: Any, summary: Path) -> dict[str, Any]:
    """The story event's numbers: None where nothing was measured (see ``Lifetime.to_json``)."""

    def num(v: float | None) -> float | None:
        return v if v is not None and math.isfinite(v) else None

    views = [v.to_json() for v in pur.views]
    comb = pur.combined.to_json()
    return {
        "summary": str(summary),
        "lifetime_us": [num(v["tau_us"]) for v in views],
        "lifetime_err_us": [num(v["error_us"]) for v in views],
        "lifetime_combined_us": num(comb["tau_us"]),
        "lifetime_combined_err_us": num(comb["error_us"]),
        "lifetime_status": comb["status"],
        "k_per_us": num(comb["k_per_us"]),
        "k_error": num(comb["k_error"]),
        "gain": {str(r.lem): num(r.gain) for r in gain.lems},
        "asymmetry": {str(r.lem): num(r.asymmetry) for r in gain.lems},
    }


def _record(
    group: list[FileRecord],
    outputs: list[str],
    t: datetime,
    details: dict[str, Any],
    partial: bool = False,
) -> AnalysisRecord:
    """The ``analyses`` row of one group, from the numbers :func:`_results` put in the story."""
    from farmtools.bookkeeping.db import AnalysisRecord

    taus = [*details["lifetime_us"], None, None]
    errs = [*details["lifetime_err_us"], None, None]
    seqs = [r.seq or 0 for r in group]
    return AnalysisRecord(
        run=group[0].run or 0,
        first_seq=min(seqs),
        last_seq=max(seqs),
        files=[r.name for r in group],
        outputs=outputs,
        time=t,
        lifetimes_us=(taus[0], taus[1]),
        lifetime_errors_us=(errs[0], errs[1]),
        lifetime_us=details["lifetime_combined_us"],
        lifetime_err_us=details["lifetime_combined_err_us"],
        summary=details["summary"],
        gains={int(k): v for k, v in details["gain"].items()},
        asymmetries={int(k): v for k, v in details["asymmetry"].items()},
        partial=partial,
    )


def group_geometry(cfg: FarmConfig, group: list[FileRecord]) -> Geometry:
    """The LEM map of a group: the configuration's detector, or the 6x6x6's whole anode plane
    (144 LEMs) for its event files, whose cosmics' LEMs :mod:`.cosmics` numbers so.

    The files' names say which detector wrote them: a farm set up for the 6x6x6 that also
    takes 3x1x1 raw files (the mock farm's two event builders) analyses those with the 3x1x1's
    map, as their jobs reconstruct them (:func:`farmtools.processing.script.job_command`)."""
    from farmtools.detector import PDDP_6X6X6, geometry
    from farmtools.rawdata.naming import parse_raw_name

    raw = parse_raw_name(group[0].name)
    if raw is not None and raw.pddp:
        base = cfg.geometry if cfg.geometry.n_crps > 1 else PDDP_6X6X6
        return base.anode_geometry()
    if cfg.geometry.n_crps > 1:
        return geometry("3x1x1")
    return cfg.geometry


def output_geometry(
    paths: Sequence[str | os.PathLike[str]], detector: str | None = None
) -> Geometry:
    """The LEM map and drift of reconstructed files analysed by hand (``farmtools analyse``).

    ``detector`` (a :func:`farmtools.detector.geometry` name) when given; else the detector
    whose channel count the files' ``rms`` histograms have: the 6x6x6's whole anode plane for
    its outputs (as :func:`group_geometry` gives the pipeline), the 3x1x1 otherwise (also for
    files without the histogram, older than it).  RecoFileError when the files are of both.
    """
    from farmtools.detector import PDDP_6X6X6, WA105_3X1X1, geometry

    if detector is not None:
        g = geometry(detector)
        return g.anode_geometry() if g.n_crps > 1 else g
    found = {os.fspath(p): output_channels(p) for p in paths}
    pddp = {p for p, n in found.items() if n == PDDP_6X6X6.n_channels}
    if pddp and len(pddp) < len(found):
        other = next(p for p in found if p not in pddp)
        raise RecoFileError(f"{other}: not a 6x6x6 output like {min(pddp)}: analyse them apart")
    return PDDP_6X6X6.anode_geometry() if pddp else WA105_3X1X1


def max_drift_us(geometry: Geometry) -> float:
    """Drift times the purity fit uses: the whole bins below the full drift (594 us on the
    3x1x1, ``purity.MAX_DRIFT_US``; 3696 us on the 6x6x6)."""
    from farmtools.analysis.purity import BIN_US

    full = geometry.full_drift_ticks * geometry.tick_us
    return BIN_US * math.floor(full / BIN_US)


#: Longest drift (cm) the threshold-loss correction was calibrated on: the 3x1x1's.
THRESHOLD_CALIBRATED_CM = 100.0


def threshold_loss(geometry: Geometry) -> tuple[float, float]:
    """The purity fit's threshold-loss constants: the 3x1x1's up to its 1 m of drift, the
    6x6x6's (:data:`farmtools.analysis.purity.THRESHOLD_LOSS_6X6X6`) beyond.

    The 3x1x1's correction was calibrated on 0.6 ms of drift; on the 6x6x6's 3.7 ms it
    over-corrects (24 emulated beam events at tau = 3 ms: +4 % with it, -1.1 % without,
    ``benchmarks/bench_closure666.py``), so the 6x6x6 has its own constant.
    """
    from farmtools.analysis.purity import THRESHOLD_LOSS, THRESHOLD_LOSS_6X6X6

    return (
        THRESHOLD_LOSS
        if geometry.drift_length_cm <= THRESHOLD_CALIBRATED_CM
        else THRESHOLD_LOSS_6X6X6
    )


def gain_refs(geometry: Geometry) -> tuple[tuple[float, float], tuple[float, float]]:
    """The gain-1 (truncated mean, MPV) references per view of the detector's drift: the 3x1x1's
    up to its 1 m, the 6x6x6's beyond (more diffusion, :data:`.gain.MIP_TM_REF_6X6X6`)."""
    from farmtools.analysis.gain import (
        MIP_MPV_REF,
        MIP_MPV_REF_6X6X6,
        MIP_TM_REF,
        MIP_TM_REF_6X6X6,
    )

    if geometry.drift_length_cm <= THRESHOLD_CALIBRATED_CM:
        return MIP_TM_REF, MIP_MPV_REF
    return MIP_TM_REF_6X6X6, MIP_MPV_REF_6X6X6


def muon_offset(geometry: Geometry) -> float | None:
    """The purity fit's cut on muons off the others' charge (:data:`.purity.MAX_MUON_OFFSET`):
    the 6x6x6's, whose cosmics a wrong flash may time; none on the 3x1x1 (t0 from the charge)."""
    from farmtools.analysis.purity import MAX_MUON_OFFSET

    return None if geometry.drift_length_cm <= THRESHOLD_CALIBRATED_CM else MAX_MUON_OFFSET


def _measure(hits: Columns, geo: Geometry) -> tuple[PurityResult, GainResult]:
    """Lifetime, then gains at that lifetime, with the drift range, threshold-loss constants
    and gain references of ``geo`` (the 3x1x1's, or the 6x6x6's anode plane)."""
    loss = threshold_loss(geo)
    pur = purity_analysis(
        hits,
        max_drift_us=max_drift_us(geo),
        threshold_loss=loss,
        max_muon_offset=muon_offset(geo),
    )
    tm, mp = gain_refs(geo)
    return pur, gain_analysis(
        hits, pur.combined.tau_us, geo, tm_ref=tm, mpv_ref=mp, threshold_loss=loss
    )


def analyse_group(
    cfg: FarmConfig, bk: Bookkeeping, group: list[FileRecord], *, partial: bool = False
) -> Path | None:
    """Analyse one group; the summary's path, or None when a file could not be read.

    ``partial``: the remainder of a closed run, smaller than a group; analysed all the same
    and flagged so (``analyses.partial``, ``"partial": true`` in the story event).
    """
    from farmtools.bookkeeping.states import Event, FileState

    parts = []
    names = []
    for rec in group:
        path = reco_output(cfg, bk, rec)
        try:
            parts.append(read_output(path))
        except RecoFileError as exc:
            log.error("%s: %s", rec.name, exc)
            bk.transition(
                rec.name,
                FileState.RECONSTRUCTED,
                FileState.FAILED,
                Event.FAILED,
                {"stage": "analysis", "error": str(exc)},
                fields={"last_error": str(exc)},
                alarm=("analysis", "unreadable_output", str(exc)),
            )
            return None
        names.append(path)
    hits = concat(parts)
    run = group[0].run or 0
    seqs = [r.seq or 0 for r in group]
    geo = group_geometry(cfg, group)
    pur, gain = _measure(hits, geo)
    out = summary_path(cfg, run, seqs)
    t = datetime.now(UTC)
    write_summary(out, t, run, names, pur, pur.views, gain)
    try:
        write_root(out.with_suffix(".root"), gain, geo)
    except Exception as exc:  # the histogram file is optional; the summary is what matters
        log.warning("%s: ROOT histogram not written: %s", out, exc)
    details = _results(pur, gain, out) | ({"partial": True} if partial else {})
    if not bk.record_analysis(_record(group, names, t, details, partial), details):
        log.warning(
            "run %d seq %d-%d: analysed meanwhile by another process", run, min(seqs), max(seqs)
        )
        return None
    log.info(
        "run %d seq %d-%d analysed: %s -> %s",
        run,
        min(seqs),
        max(seqs),
        pur.combined.describe(),
        out,
    )
    return out


def run_summary_path(cfg: FarmConfig, run: int) -> Path:
    """``<summary_dir>/run<N>/analysis_run<N>.txt``: the whole run's summary."""
    return cfg.path(cfg.analysis.summary_dir) / f"run{run}" / f"analysis_run{run}.txt"


def analyse_run(cfg: FarmConfig, bk: Bookkeeping, run: int) -> Path | None:
    """The run's summary: lifetime and gains from the hits of all its analysed files at once.

    Written at the run's close (:mod:`farmtools.processing.runclose`) in the seed's format and
    its JSON twin, as a group's.  None when the run has no analysed file or an output cannot be
    read (logged; the files keep their state: their groups were analysed already).
    """
    from farmtools.bookkeeping.states import FileState

    done = bk.files(run=run, state=FileState.ANALYSED)
    if not done:
        return None
    parts, names = [], []
    for rec in done:
        path = reco_output(cfg, bk, rec)
        try:
            parts.append(read_output(path))
        except RecoFileError as exc:
            log.error("run %d summary: %s: %s", run, rec.name, exc)
            return None
        names.append(path)
    hits = concat(parts)
    pur, gain = _measure(hits, group_geometry(cfg, done))
    out = run_summary_path(cfg, run)
    write_summary(out, datetime.now(UTC), run, names, pur, pur.views, gain)
    log.info("run %d summary: %s -> %s", run, pur.combined.describe(), out)
    return out


def run_ready_analyses(cfg: FarmConfig, bk: Bookkeeping) -> list[Path]:
    """Analyse every complete group of reconstructed files; the summary files written."""
    from farmtools.bookkeeping.states import FileState

    if cfg.processing.program != "reco":
        return []  # jobs only check the raw files: there is no ROOT output to analyse
    size = cfg.analysis.group_size
    written: list[Path] = []
    for summary in bk.runs():
        if summary.states.get(str(FileState.RECONSTRUCTED), 0) < size:
            continue
        ready = bk.files(run=summary.run, state=FileState.RECONSTRUCTED)
        for start in range(0, len(ready) - size + 1, size):
            group = ready[start : start + size]
            try:
                out = analyse_group(cfg, bk, group)
            except Exception as exc:  # never let one group stop the farm
                log.exception("run %d: analysis of %s failed", summary.run, group[0].name)
                # Deterministic on the same files: park them rather than fail at every call.
                for i, rec in enumerate(group):
                    bk.transition(
                        rec.name,
                        FileState.RECONSTRUCTED,
                        FileState.FAILED,
                        "failed",
                        {"stage": "analysis", "error": repr(exc)},
                        fields={"last_error": f"analysis: {exc!r}"},
                        alarm=("analysis", "analysis_error", repr(exc)) if i == 0 else None,
                    )
                continue
            if out is not None:
                written.append(out)
    return written
