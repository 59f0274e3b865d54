"""The run ledger: how far each run got, file by file, from the DAQ to the archive.

One :class:`RunLedger` per run, computed from the bookkeeping alone (``files``, ``run_status``,
``archives``, ``evb_counts``, ``run_flags``): files expected (the DAQ's end-of-run record,
:mod:`farmtools.rawdata.endofrun`), detected, stored, reconstructed, analysed and archived;
the sequence numbers missing; the files named by the record and never seen; size or checksum
disagreements with the record; files stuck in a state longer than a threshold; the 6x6x6
event-building counts; the run's status (open, closed, finished) and quality flag.

Counts are cumulative along the chain (``detected -> stored -> ... -> analysed``): an analysed
file counts as stored and reconstructed too, so each number says "got at least this far".
Failed and quarantined files count apart (they stopped).  ``archived`` counts files in an
archive transferred or verified on central storage; ``archive_planned`` those in any archive.

What ``farmtools runs`` / ``farmtools run N`` print and ``farmtools status`` uses
(:func:`incomplete_runs`).  Imports SQLAlchemy, the bookkeeping and the raw file names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from farmtools.bookkeeping import schema
from farmtools.bookkeeping.registry import UNKNOWN, all_flags
from farmtools.bookkeeping.schema import files, now
from farmtools.bookkeeping.states import BEFORE_RECO, CHAIN, FileState
from farmtools.rawdata.naming import parse_raw_name

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import Bookkeeping

#: states in which a file waits for the farm and can be stuck (the monitor's ACTIVE_STATES)
WAITING = BEFORE_RECO
#: archive states in which the bytes are on central storage
ON_CENTRAL: frozenset[str] = frozenset({"transferred", "verified"})

OPEN, CLOSED, FINISHED = "open", "closed", "finished"
#: kinds of problems (the alarm kinds the closing step raises)
GAP, MISSING, CHECKSUM, FAILED = "run_gap", "run_missing_files", "run_checksum", "run_failed_files"


@dataclass(frozen=True)
class StuckFile:
    """A file that kept a waiting state longer than the threshold."""

    name: str
    state: str
    since: datetime


@dataclass(frozen=True)
class FileLine:
    """What the ledger knows of one file of a run."""

    name: str
    seq: int | None
    state: str
    since: datetime
    size: int | None
    adler32: str | None
    archive: str | None


@dataclass(frozen=True)
class RunLedger:
    """One run from DAQ to archive; see the module docstring (``to_json`` = ``runs --json``)."""

    run: int
    status: str
    first_seen: datetime | None = None
    closed: datetime | None = None
    close_reason: str | None = None
    finished: datetime | None = None
    expected_files: int | None = None
    expected_events: int | None = None
    detected: int = 0
    stored: int = 0
    reconstructed: int = 0
    analysed: int = 0
    archived: int = 0
    archive_planned: int = 0
    failed: int = 0
    quarantined: int = 0
    bytes: int = 0
    states: dict[str, int] = field(default_factory=dict)
    gaps: list[int] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stuck: list[StuckFile] = field(default_factory=list)
    evb: dict[str, int] | None = None
    flag: str = UNKNOWN
    #: (alarm kind, one line) of each problem: :data:`GAP`, :data:`MISSING`, :data:`CHECKSUM`,
    #: :data:`FAILED`
    issues: list[tuple[str, str]] = field(default_factory=list)
    summary: str | None = None
    files: list[FileLine] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """One line per problem: what is missing, disagreeing or failed."""
        return [text for _kind, text in self.issues]

    @property
    def complete(self) -> bool:
        """Closed, and nothing missing, disagreeing, failed or quarantined."""
        return self.status != OPEN and not self.problems

    def to_json(self, *, with_files: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "run": self.run,
            "status": self.status,
            "complete": self.complete,
            "flag": self.flag,
            "first_seen": self.first_seen,
            "closed": self.closed,
            "close_reason": self.close_reason,
            "finished": self.finished,
            "expected_files": self.expected_files,
            "expected_events": self.expected_events,
            "detected": self.detected,
            "stored": self.stored,
            "reconstructed": self.reconstructed,
            "analysed": self.analysed,
            "archived": self.archived,
            "archive_planned": self.archive_planned,
            "failed": self.failed,
            "quarantined": self.quarantined,
            "bytes": self.bytes,
            "states": self.states,
            "gaps": self.gaps,
            "missing": self.missing,
            "stuck": [{"name": s.name, "state": s.state, "since": s.since} for s in self.stuck],
            "evb": self.evb,
            "problems": self.problems,
            "summary": self.summary,
        }
        if with_files:
            doc["files"] = [
                {
                    "name": f.name,
                    "seq": f.seq,
                    "state": f.state,
                    "since": f.since,
                    "size": f.size,
                    "adler32": f.adler32,
                    "archive": f.archive,
                }
                for f in self.files
            ]
        return doc


def gaps(seqs: Iterable[int], last: int | None = None) -> list[int]:
    """Sequence numbers missing from 0 to the highest seen (or ``last``, when the DAQ said)."""
    have = set(seqs)
    top = max(have, default=-1)
    if last is not None:
        top = max(top, last)
    return [s for s in range(top + 1) if s not in have]


def record_problems(
    eor: Mapping[str, Any] | None, lines: Iterable[FileLine]
) -> list[tuple[str, str]]:
    """What the end-of-run record says that the bookkeeping disagrees with, one line each.

    Files it names that were never detected, and sizes or adler32 checksums that differ from
    what ingest measured (a file not yet copied has no checksum and is not compared).
    """
    if not eor:
        return []
    known = {f.name: f for f in lines}
    out: list[tuple[str, str]] = []
    for entry in eor.get("file_list") or []:
        f = known.get(str(entry.get("name")))
        if f is None:
            continue  # listed by :func:`_missing`
        size, a32 = entry.get("size"), entry.get("adler32")
        if size is not None and f.size is not None and int(size) != f.size:
            text = f"{f.name}: {f.size} bytes here, {size} in the end-of-run record"
            out.append((CHECKSUM, text))
        if a32 and f.adler32 and str(a32).lower() != f.adler32.lower():
            text = f"{f.name}: adler32 {f.adler32} here, {a32} in the end-of-run record"
            out.append((CHECKSUM, text))
    return out


def _missing(eor: Mapping[str, Any] | None, names: set[str]) -> list[str]:
    if not eor:
        return []
    return [str(e["name"]) for e in eor.get("file_list") or [] if str(e.get("name")) not in names]


def _build(
    run: int,
    lines: list[FileLine],
    status_row: Mapping[str, Any] | None,
    first_seen: datetime | None,
    evb: dict[str, int] | None,
    flag: str,
    on_central: set[str],
    stuck_cut: datetime,
) -> RunLedger:
    states: dict[str, int] = {}
    for f in lines:
        states[f.state] = states.get(f.state, 0) + 1

    def reached(state: FileState) -> int:
        later = CHAIN[CHAIN.index(state) :]
        return sum(n for s, n in states.items() if s in later)

    st = status_row or {}
    eor = st.get("eor")
    last_seq = eor.get("last_seq") if eor else None
    # the 6x6x6's L2 builders each number their files from 0: gaps per builder
    by_builder: dict[str, list[int]] = {}
    for f in lines:
        raw = parse_raw_name(f.name)
        if f.seq is not None:
            by_builder.setdefault(raw.builder if raw is not None else "", []).append(f.seq)
    builder_gaps = {
        b: gaps(seqs, last_seq if b == "" else None) for b, seqs in sorted(by_builder.items())
    }
    if not lines and last_seq is not None:
        builder_gaps[""] = gaps((), last_seq)
    seq_gaps = sorted({s for g in builder_gaps.values() for s in g})
    missing = _missing(eor, {f.name for f in lines})
    issues: list[tuple[str, str]] = []
    # a gap the record names a file for is reported as that file (below), not twice
    named = {e.get("seq") for e in (eor or {}).get("file_list") or [] if e.get("name") in missing}
    for builder, found in builder_gaps.items():
        unnamed = [s for s in found if s not in named]
        if unnamed:
            plural = "s" if len(unnamed) > 1 else ""
            of = f" of L2 builder {builder}" if builder else ""
            text = f"run {run}: sequence number{plural} {_ranges(unnamed)}{of} missing"
            issues.append((GAP, text))
    if missing:
        text = f"run {run}: {', '.join(missing)} named by the end-of-run record, never detected"
        issues.append((MISSING, text))
    expected = st.get("eor_files")
    if expected is not None and expected != len(lines) and not missing:
        text = f"run {run}: {len(lines)} files detected, the end-of-run record says {expected}"
        issues.append((MISSING, text))
    issues += record_problems(eor, lines)
    bad = [f.name for f in lines if f.state in (FileState.FAILED, FileState.QUARANTINED)]
    if bad:
        issues.append((FAILED, f"run {run}: {', '.join(bad)} failed or quarantined"))
    status = FINISHED if st.get("finished") else CLOSED if st.get("closed") else OPEN
    return RunLedger(
        run=run,
        status=status,
        first_seen=first_seen,
        closed=st.get("closed"),
        close_reason=st.get("close_reason"),
        finished=st.get("finished"),
        expected_files=expected,
        expected_events=st.get("eor_events"),
        detected=len(lines),
        stored=reached(FileState.STORED),
        reconstructed=reached(FileState.RECONSTRUCTED),
        analysed=reached(FileState.ANALYSED),
        archived=sum(1 for f in lines if f.archive in on_central),
        archive_planned=sum(1 for f in lines if f.archive is not None),
        failed=states.get(FileState.FAILED, 0),
        quarantined=states.get(FileState.QUARANTINED, 0),
        bytes=sum(f.size or 0 for f in lines),
        states=states,
        gaps=seq_gaps,
        missing=missing,
        stuck=[
            StuckFile(f.name, f.state, f.since)
            for f in lines
            if f.state in WAITING and f.since < stuck_cut
        ],
        evb=evb,
        flag=flag,
        issues=issues,
        summary=st.get("summary"),
        files=lines,
    )


def _ranges(seqs: list[int]) -> str:
    """``1, 3-5, 9`` for [1, 3, 4, 5, 9]."""
    parts: list[str] = []
    start = prev = seqs[0]
    for s in [*seqs[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ", ".join(parts)


def run_ledgers(
    bk: Bookkeeping,
    *,
    run: int | None = None,
    stuck_after_s: float = 3600.0,
    since_run: int | None = None,
) -> list[RunLedger]:
    """The ledger of every run (of ``run`` only; of runs from ``since_run`` on), ascending.

    One query per table, files of all the runs asked for at once: ``since_run`` keeps a
    listing of a long-lived farm to its latest runs (:func:`latest_runs`).
    """
    rs, am, ar = schema.run_status, schema.archive_members, schema.archives
    fq = (
        select(
            files.c.run,
            files.c.name,
            files.c.seq,
            files.c.state,
            files.c.state_since,
            files.c.size,
            files.c.adler32,
            am.c.archive,
        )
        .join(am, am.c.file == files.c.name, isouter=True)
        .where(files.c.run.is_not(None))
        .order_by(files.c.run, files.c.seq, files.c.name)
    )
    sq = select(rs)
    runq = select(schema.runs.c.run, schema.runs.c.first_seen)
    if run is not None:
        fq = fq.where(files.c.run == run)
        sq = sq.where(rs.c.run == run)
        runq = runq.where(schema.runs.c.run == run)
    if since_run is not None:
        fq = fq.where(files.c.run >= since_run)
        sq = sq.where(rs.c.run >= since_run)
        runq = runq.where(schema.runs.c.run >= since_run)
    by_run: dict[int, list[FileLine]] = {}
    with bk.engine.connect() as conn:
        for r in conn.execute(fq):
            by_run.setdefault(r.run, []).append(
                FileLine(r.name, r.seq, r.state, r.state_since, r.size, r.adler32, r.archive)
            )
        statuses = {r.run: dict(r._mapping) for r in conn.execute(sq)}
        first = {r.run: r.first_seen for r in conn.execute(runq)}
        central = {
            r[0] for r in conn.execute(select(ar.c.name).where(ar.c.state.in_(sorted(ON_CENTRAL))))
        }
    evb = bk.evb_counts()
    flags = all_flags(bk)
    numbers = set(by_run) | set(statuses) | set(first)
    numbers |= {n for n in evb if run in (None, n) and (since_run is None or n >= since_run)}
    cut = now() - timedelta(seconds=stuck_after_s)
    return [
        _build(
            n,
            by_run.get(n, []),
            statuses.get(n),
            first.get(n),
            evb.get(n),
            flags.get(n, UNKNOWN),
            central,
            cut,
        )
        for n in sorted(numbers)
    ]


def latest_runs(bk: Bookkeeping, last: int) -> int | None:
    """The lowest of the ``last`` highest run numbers the database knows (None: no run)."""
    q = select(schema.runs.c.run).order_by(schema.runs.c.run.desc()).limit(last)
    with bk.engine.connect() as conn:
        found = conn.execute(q).scalars().all()
    return min(found) if found else None


def run_ledger(bk: Bookkeeping, run: int, *, stuck_after_s: float = 3600.0) -> RunLedger | None:
    """The ledger of one run, with its files; None when the bookkeeping knows nothing of it."""
    found = run_ledgers(bk, run=run, stuck_after_s=stuck_after_s)
    return found[0] if found else None


def incomplete_runs(
    bk: Bookkeeping, *, stuck_after_s: float = 3600.0, last: int | None = None
) -> list[RunLedger]:
    """Runs that need a look: closed with a problem or not yet finished, or open with stuck files.

    ``last``: among the ``last`` highest run numbers only (a ledger of every run of a year of
    data reads every file row: ~1 s per 20,000 files measured on the loaded test machine).
    """
    since = latest_runs(bk, last) if last is not None else None
    return [
        r
        for r in run_ledgers(bk, stuck_after_s=stuck_after_s, since_run=since)
        if (r.problems and r.status != OPEN) or r.status == CLOSED or r.stuck
    ]
