"""The final stage per run, as one in-process API: classify, filter, pack, transfer, verify, deletable.

Each function takes the farm configuration, the bookkeeping and a run, does what is left to do
for that run (every step can be run again: what is done is skipped) and returns what it did.
The raw files are the run's L2 event files (``<run>_<seq>_<id>.dat``) that the bookkeeping has
on the farm storage with a verified checksum (the raw buffer).  docs/final.md describes the
whole chain and the counts each step leaves in the bookkeeping; the 6x6x6 data challenge calls
these functions.  Imports the final stage's modules, the archive's transfer, the bookkeeping
and the storage location helpers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from farmtools.archive.catalog import ARCHIVABLE
from farmtools.archive.planner import parse_size
from farmtools.archive.transfer import TransferError, transfer
from farmtools.bookkeeping import Bookkeeping, FileRecord
from farmtools.bookkeeping.schema import now
from farmtools.config import FarmConfig
from farmtools.final.catalog import FinalCatalog, FinalFile, FinalState
from farmtools.final.classify import Classifier, Thresholds
from farmtools.final.policy import Decision, Policy, count
from farmtools.final.verify import ExpectedEvent, FinalVerifyResult, verify_final
from farmtools.final.writer import (
    LETTER_OF,
    LOG_SUFFIX,
    MANIFEST_SUFFIX,
    OpenFiles,
    PackItem,
    final_name,
    pack_events,
)
from farmtools.rawdata.errors import RawDataError
from farmtools.rawdata.pddp_naming import parse_l2_name
from farmtools.rawdata.pddp_reader import PDDPFile
from farmtools.storage.checksum import adler32_hex, parse_adler32
from farmtools.storage.location import LocationError, is_url, join, open_reader

log = logging.getLogger(__name__)
ALARM_SOURCE = "final"


@dataclass
class ClassifyReport:
    run: int
    files: int = 0  # raw files classified by this call
    events: int = 0
    by_class: dict[str, int] = field(default_factory=dict)  # of the events classified now
    failed: list[tuple[str, str]] = field(default_factory=list)  # (raw file, why)


@dataclass
class FilterReport:
    run: int
    policy_version: str
    counts: dict[str, dict[str, int]]

    def total(self, decision: Decision) -> int:
        return sum(c[str(decision)] for c in self.counts.values())

    @property
    def kept(self) -> int:
        return self.total(Decision.KEPT)

    @property
    def prescaled_out(self) -> int:
        return self.total(Decision.PRESCALED_OUT)

    @property
    def dropped(self) -> int:
        return self.total(Decision.DROPPED)


@dataclass(frozen=True)
class Deletable:
    """A raw file of the buffer: may it be deleted, and the proof (or why not)."""

    file: str
    path: str | None
    allowed: bool
    proof: str


def raw_files(bk: Bookkeeping, run: int) -> list[FileRecord]:
    """The run's L2 event files on the farm storage with a verified checksum, in order."""
    return [
        r
        for r in bk.files(run)
        if parse_l2_name(r.name) is not None
        and str(r.state) in ARCHIVABLE
        and r.storage_path
        and r.adler32
    ]


@contextmanager
def local_copy(location: str, workdir: Path) -> Iterator[str]:
    """A local path of ``location``: itself, or a temporary copy of a file on XRootD."""
    if not is_url(location):
        yield location
        return
    workdir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=workdir)
    try:
        with os.fdopen(fd, "wb") as out, open_reader(location) as reader:
            while data := reader.read(8 << 20):
                out.write(data)
        yield tmp
    finally:
        os.unlink(tmp)


def _workdir(cfg: FarmConfig, run: int) -> Path:
    return cfg.path(cfg.final.workdir) / f"run{run}"


def classify_run(
    cfg: FarmConfig, bk: Bookkeeping, run: int, *, thresholds: Thresholds | None = None
) -> ClassifyReport:
    """Classify every event of the run's raw files not classified yet (tables final_sources/events)."""
    cat = FinalCatalog(bk)
    done = cat.sources(run)
    report = ClassifyReport(run)
    classifier = Classifier(cfg.geometry, thresholds)
    for rec in raw_files(bk, run):
        if rec.name in done:
            continue
        assert rec.storage_path is not None and rec.size is not None
        try:
            with (
                local_copy(rec.storage_path, _workdir(cfg, run)) as path,
                PDDPFile(path, cfg.geometry) as f,
            ):
                events = [classifier.classify(f, i) for i in range(f.n_events)]
        except (RawDataError, LocationError, OSError) as exc:
            report.failed.append((rec.name, str(exc)))
            bk.raise_alarm(rec.name, ALARM_SOURCE, "classify_failed", f"{rec.name}: {exc}")
            continue
        if cat.add_source(rec.name, run, rec.size, rec.adler32, events):
            report.files += 1
            report.events += len(events)
            for e in events:
                report.by_class[str(e.klass)] = report.by_class.get(str(e.klass), 0) + 1
    return report


def filter_run(
    cfg: FarmConfig, bk: Bookkeeping, run: int, *, policy: Policy | None = None
) -> FilterReport:
    """Decide every classified event of the run by the policy; record decisions and counts.

    Filtering again (another policy) re-decides every event; events already packed stay in
    their final files, and newly kept ones are packed by the next :func:`pack_run`.
    """
    pol = policy if policy is not None else Policy.from_config(cfg.final)
    cat = FinalCatalog(bk)
    events = cat.events(run)
    decisions = pol.decide(e.klass for e in events)
    counts = count((e.klass for e in events), decisions)
    cat.record_filter(
        run,
        pol.version,
        pol.as_json(),
        [(e.file, e.idx, d) for e, d in zip(events, decisions, strict=True)],
        counts,
    )
    return FilterReport(run, pol.version, counts)


_SEQ = re.compile(r"[0-9]+_([0-9]+)_[A-Z]\.dat")


def pack_run(
    cfg: FarmConfig, bk: Bookkeeping, run: int, *, target_bytes: int | None = None
) -> list[FinalFile]:
    """Write the run's kept events not yet in a final file into final files, per stream."""
    cat = FinalCatalog(bk)
    flt = cat.filter_record(run)
    if flt is None:
        return []
    target = target_bytes if target_bytes is not None else parse_size(cfg.final.target_size)
    paths = {r.name: r.storage_path for r in raw_files(bk, run)}
    todo = [e for e in cat.events(run) if e.decision == Decision.KEPT and e.final_file is None]
    gone = sorted({e.file for e in todo if e.file not in paths})
    if gone:  # re-filtered after its raw files left the buffer: said, never silently skipped
        bk.raise_alarm(
            None,
            ALARM_SOURCE,
            "raw_gone",
            f"run {run}: kept events of raw files no longer in the buffer: {', '.join(gone)}",
        )
        todo = [e for e in todo if e.file in paths]
    workdir = _workdir(cfg, run)
    workdir.mkdir(parents=True, exist_ok=True)
    out: list[FinalFile] = []
    seqs = {stream: 0 for stream in LETTER_OF}
    for f in cat.finals(run):
        if (m := _SEQ.fullmatch(f.name)) is not None:
            seqs[f.stream] = max(seqs[f.stream], int(m.group(1)))

    def names(stream: str) -> str:
        """The stream's next name; an unrecorded file of a crashed pack there is removed."""
        seqs[stream] += 1
        name = final_name(run, seqs[stream], stream)
        (workdir / name).unlink(missing_ok=True)
        return name

    items = [PackItem(e.file, paths[e.file] or "", e.idx, e.klass) for e in todo]
    with OpenFiles(cfg.geometry, lambda loc: local_copy(loc, workdir)) as opened:
        for w in pack_events(workdir, names, run, items, opened, flt.policy_version, target):
            out.append(
                cat.add_final(
                    name=w.path.name,
                    run=run,
                    stream=w.stream,
                    size=w.size,
                    adler32=adler32_hex(w.adler32),
                    policy_version=flt.policy_version,
                    events=[(p.source, p.index) for p in w.events],
                )
            )
    return out


def transfer_run(cfg: FarmConfig, bk: Bookkeeping, run: int) -> list[FinalFile]:
    """Copy the run's written final files (with manifest and log) to ``final.destination``."""
    cat = FinalCatalog(bk)
    dest = _destination(cfg, run)
    workdir = _workdir(cfg, run)
    out = []
    for f in cat.finals(run, [FinalState.WRITTEN, FinalState.TRANSFERRING, FinalState.FAILED]):
        if f.state == FinalState.FAILED and f.transferred is not None:
            continue  # failed at verification: verify_run tries again
        if not cat.move(f.name, [f.state], FinalState.TRANSFERRING, last_error=None):
            continue
        path = workdir / f.name
        try:
            done = transfer(
                path,
                workdir / (f.name + LOG_SUFFIX),
                dest,
                parse_adler32(f.adler32),
                retries=cfg.storage.retries,
                backoff_s=cfg.storage.backoff_s,
                backoff_max_s=cfg.storage.backoff_max_s,
                extra=[workdir / (f.name + MANIFEST_SUFFIX)],
            )
        except (TransferError, OSError) as exc:
            cat.move(f.name, [FinalState.TRANSFERRING], FinalState.FAILED, last_error=str(exc))
            bk.raise_alarm(None, ALARM_SOURCE, "final_failed", f"final file {f.name}: {exc}")
            continue
        cat.move(
            f.name,
            [FinalState.TRANSFERRING],
            FinalState.TRANSFERRED,
            transferred=now(),
            destination=done.url.rsplit("/", 1)[0],
        )
        rec = cat.get(f.name)
        assert rec is not None
        out.append(rec)
    return out


def _destination(cfg: FarmConfig, run: int) -> str:
    d = cfg.final.destination
    base = d if is_url(d) else str(cfg.path(d))
    return join(base, f"run{run}")


def _manifest_events(location: str) -> list[ExpectedEvent]:
    with open_reader(location) as r:
        blob = b""
        while data := r.read(1 << 20):
            blob += data
    doc = json.loads(blob)
    return [
        ExpectedEvent(int(e["trigger"]), int(e["size"]), parse_adler32(str(e["adler32"])))
        for e in doc["events"]
    ]


def verify_run(
    cfg: FarmConfig, bk: Bookkeeping, run: int, *, again: bool = False
) -> list[tuple[FinalFile, FinalVerifyResult]]:
    """Re-read the run's transferred final files at the destination, event by event."""
    cat = FinalCatalog(bk)
    states = [FinalState.TRANSFERRED, FinalState.FAILED]
    if again:
        states.append(FinalState.VERIFIED)
    out = []
    for f in cat.finals(run, states):
        if f.destination is None or f.transferred is None:
            continue
        where = join(f.destination, f.name)
        try:
            expected = _manifest_events(join(f.destination, f.name + MANIFEST_SUFFIX))
        except (LocationError, OSError, ValueError, KeyError) as exc:
            res = FinalVerifyResult(where, problems=[f"{where}: manifest unreadable: {exc}"])
        else:
            triggers = [e.trigger for e in cat.events(run) if e.final_file == f.name]
            res = verify_final(where, expected, f.size, parse_adler32(f.adler32))
            if sorted(triggers) != sorted(e.trigger for e in expected):
                res.problems.append(
                    f"{where}: the manifest's triggers differ from the bookkeeping's"
                )
        if res.ok:
            cat.move(f.name, [f.state], FinalState.VERIFIED, verified=now(), last_error=None)
        else:
            cat.move(f.name, [f.state], FinalState.FAILED, last_error="; ".join(res.problems))
            bk.raise_alarm(
                None, ALARM_SOURCE, "final_failed", f"final file {f.name}: {res.problems[0]}"
            )
        rec = cat.get(f.name)
        assert rec is not None
        out.append((rec, res))
    return out


def deletable_run(cfg: FarmConfig, bk: Bookkeeping, run: int) -> list[Deletable]:
    """Which raw files of the run may go from the buffer, with the bookkeeping's proof.

    A raw file may go only when it was classified whole (one row per event it holds, taken
    from the same bytes: same adler32), the run was filtered, and every one of its events is
    either in a final file verified at the destination or was not kept by the policy
    (prescaled out or dropped).  Nothing is deleted here.
    """
    cat = FinalCatalog(bk)
    sources = cat.sources(run)
    flt = cat.filter_record(run)
    verified = {f.name for f in cat.finals(run, FinalState.VERIFIED)}
    events = cat.events(run)
    out = []
    for rec in raw_files(bk, run):
        src = sources.get(rec.name)
        mine = [e for e in events if e.file == rec.name]
        if src is None:
            out.append(Deletable(rec.name, rec.storage_path, False, "not classified"))
            continue
        if src.adler32 != rec.adler32 or len(mine) != src.events:
            out.append(
                Deletable(
                    rec.name,
                    rec.storage_path,
                    False,
                    f"classified {src.events} events of adler32 {src.adler32}; the bookkeeping "
                    f"has {len(mine)} rows and adler32 {rec.adler32}",
                )
            )
            continue
        if flt is None:
            out.append(Deletable(rec.name, rec.storage_path, False, "run not filtered"))
            continue
        in_final = [e for e in mine if e.final_file in verified]
        not_kept = [
            e
            for e in mine
            if e.final_file not in verified
            and e.decision in (Decision.PRESCALED_OUT, Decision.DROPPED)
        ]
        left = [e for e in mine if e not in in_final and e not in not_kept]
        if left:
            e = left[0]
            why = (
                f"in final file {e.final_file}, not verified"
                if e.final_file
                else f"decision {e.decision or 'none'}, in no final file"
            )
            out.append(
                Deletable(
                    rec.name,
                    rec.storage_path,
                    False,
                    f"{len(left)} of {len(mine)} events unaccounted (trigger {e.trigger}: {why})",
                )
            )
            continue
        files = sorted({e.final_file for e in in_final if e.final_file})
        pres = sum(1 for e in not_kept if e.decision == Decision.PRESCALED_OUT)
        drop = len(not_kept) - pres
        out.append(
            Deletable(
                rec.name,
                rec.storage_path,
                True,
                f"{len(mine)} events: {len(in_final)} in verified final files "
                f"{','.join(files) or '-'}; {pres} prescaled out, {drop} dropped by policy "
                f"{flt.policy_version} (filtered {flt.filtered:%Y-%m-%d %H:%M:%S})",
            )
        )
    return out


__all__ = [
    "ClassifyReport",
    "Deletable",
    "FilterReport",
    "classify_run",
    "deletable_run",
    "filter_run",
    "pack_run",
    "raw_files",
    "transfer_run",
    "verify_run",
]
