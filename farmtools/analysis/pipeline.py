"""The pipeline hook: analyse each complete group of reconstructed files of a run.

:func:`run_ready_analyses` is called by the farm (the data challenge calls it in-process after
each processing cycle; cron or a daemon loop can call ``farmtools analyse ready``).  For every
run with at least ``[analysis] group_size`` files in state ``reconstructed``, it takes them in
sequence order by groups of ``group_size``, runs the purity analysis, then the gain analysis
with that lifetime, writes ``<summary_dir>/run<N>/analysis_run<N>_seq<a>-<b>.{txt,json,root}``
(the directory the monitor reads) and moves the files ``reconstructed -> analysed`` with the
results in the story event (``analysed``: summary, lifetimes, LEM gains).  A file whose ROOT
output cannot be read is moved to ``failed`` with an alarm; the rest of its group waits for the
next call.  Nothing here raises on bad input.  With ``[processing] program`` other than
``reco`` the jobs make no ROOT output and nothing is done.  May import the bookkeeping and the config.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farmtools.analysis.gain import gain as gain_analysis
from farmtools.analysis.hits import RecoFileError, concat, read_reco_file
from farmtools.analysis.purity import purity as purity_analysis
from farmtools.analysis.summary import write_root, write_summary

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping, FileRecord
    from farmtools.config import FarmConfig

log = logging.getLogger("farmtools.analysis")


def reco_output(cfg: FarmConfig, bk: Bookkeeping, rec: FileRecord) -> Path:
    """The ROOT output of ``rec``: the one its ``reconstructed`` event names, else the layout's."""
    from farmtools.bookkeeping.states import Event
    from farmtools.rawdata.naming import RawName

    for ev in reversed(bk.story(rec.name)):
        if ev.event == Event.RECONSTRUCTED and ev.details and ev.details.get("output"):
            return Path(str(ev.details["output"]))
    raw = RawName(rec.run or 0, rec.seq or 0)
    return cfg.path(cfg.storage.output) / raw.run_dir / raw.reco_filename


def summary_path(cfg: FarmConfig, run: int, seqs: list[int]) -> Path:
    """``<summary_dir>/run<N>/analysis_run<N>_seq<first>-<last>.txt``."""
    return (
        cfg.path(cfg.analysis.summary_dir)
        / f"run{run}"
        / f"analysis_run{run}_seq{min(seqs)}-{max(seqs)}.txt"
    )


def _results(pur: Any, gain: Any, summary: Path) -> dict[str, Any]:
    def num(v: float) -> float | None:
        return v if math.isfinite(v) else None

    return {
        "summary": str(summary),
        "lifetime_us": [num(v.tau_us) for v in pur.views],
        "lifetime_err_us": [num(v.error_us) for v in pur.views],
        "lifetime_combined_us": num(pur.combined.tau_us),
        "gain": {str(r.lem): num(r.gain) for r in gain.lems},
        "asymmetry": {str(r.lem): num(r.asymmetry) for r in gain.lems},
    }


def analyse_group(cfg: FarmConfig, bk: Bookkeeping, group: list[FileRecord]) -> Path | None:
    """Analyse one group; the summary's path, or None when a file could not be read."""
    from farmtools.bookkeeping.states import Event, FileState

    parts = []
    names = []
    for rec in group:
        path = reco_output(cfg, bk, rec)
        try:
            parts.append(read_reco_file(path))
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
        names.append(str(path))
    hits = concat(parts)
    run = group[0].run or 0
    seqs = [r.seq or 0 for r in group]
    pur = purity_analysis(hits)
    gain = gain_analysis(hits, pur.combined.tau_us, cfg.geometry)
    out = summary_path(cfg, run, seqs)
    t = datetime.now(UTC)
    write_summary(out, t, run, names, pur, pur.views, gain)
    try:
        write_root(out.with_suffix(".root"), gain, cfg.geometry)
    except Exception as exc:  # the histogram file is optional; the summary is what matters
        log.warning("%s: ROOT histogram not written: %s", out, exc)
    details = _results(pur, gain, out)
    for rec in group:
        bk.transition(
            rec.name, FileState.RECONSTRUCTED, FileState.ANALYSED, Event.ANALYSED, details
        )
    log.info(
        "run %d seq %d-%d analysed: tau %.0f +- %.0f us -> %s",
        run,
        min(seqs),
        max(seqs),
        pur.combined.tau_us,
        pur.combined.error_us,
        out,
    )
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
