"""The archive stage as one in-process API: :class:`Archiver` (plan, create, transfer, verify...).

The CLI and the data challenge call these methods; each one claims archives by state from the
bookkeeping (compare-and-set, so two callers never work on one archive), calls the pure core or
the streaming writer/reader, and records what happened: the archive row, and a story event on
every member file (``archived``, ``archive_transferred``, ``archive_verified``, ``restored``).
A failure moves the archive to ``failed`` with the reason and raises an alarm; it never stops
the loop over the other archives.  :meth:`Archiver.run_ready` does the whole chain for whatever
is ready (the data challenge's entry point).

Imports the archive modules, :mod:`farmtools.bookkeeping`, :mod:`farmtools.config` and (through
``transfer``) :mod:`farmtools.storage`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from farmtools.archive import planner
from farmtools.archive.catalog import (
    EV_ARCHIVE_TRANSFERRED,
    EV_ARCHIVE_VERIFIED,
    EV_ARCHIVED,
    EV_RESTORED,
    ArchiveRecord,
    ArchiveState,
    Catalog,
)
from farmtools.archive.manifest import parse_log_checksum
from farmtools.archive.restore import RestoreError, restore_member
from farmtools.archive.tarwriter import (
    LOG_SUFFIX,
    TAR_SUFFIX,
    ArchiveError,
    Source,
    write_archive,
)
from farmtools.archive.transfer import TransferError, transfer
from farmtools.archive.verify import Expected, VerifyResult, verify_stream
from farmtools.bookkeeping import Bookkeeping, FileRecord
from farmtools.bookkeeping.schema import now
from farmtools.config import FarmConfig
from farmtools.storage.checksum import adler32_hex, parse_adler32
from farmtools.storage.location import LocationError, is_url, open_reader

log = logging.getLogger(__name__)


def _retry_logger(archive: str) -> Callable[[int, Exception], None]:
    """One log line per failed transfer attempt: the shift sees a retrying copy, not silence."""

    def say(attempt: int, exc: Exception) -> None:
        log.warning("archive %s: transfer attempt %d failed, retrying: %s", archive, attempt, exc)

    return say


Progress = Callable[[int], None]
ALARM_SOURCE = "archive"


@dataclass
class StepReport:
    """What one call did: archives that went through, and (name, reason) of those that failed."""

    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class Archiver:
    """The archive stage of one farm (configuration + bookkeeping database)."""

    def __init__(
        self, cfg: FarmConfig, bk: Bookkeeping | None = None, *, destination: str | None = None
    ) -> None:
        self.cfg = cfg
        self.bk = bk if bk is not None else Bookkeeping.from_config(cfg)
        self.catalog = Catalog(self.bk)
        self.workdir = cfg.path(cfg.archive.workdir)
        dest = destination or cfg.archive.destination
        self.destination = dest if is_url(dest) else str(cfg.path(dest))

    # -- plan ------------------------------------------------------------------------------
    def plan(
        self,
        *,
        target: int | None = None,
        minimum: int | None = None,
        runs: Sequence[int] | None = None,
        tag: str | None = None,
        force: bool = False,
    ) -> planner.Plan:
        """Plan archives of the stored files not archived yet (nothing is recorded)."""
        target = target if target is not None else planner.parse_size(self.cfg.archive.target_size)
        minimum = minimum if minimum is not None else planner.parse_size(self.cfg.archive.min_size)
        files = [planner.PlanFile.from_name(f.name, f.size or 0) for f in self.catalog.unarchived()]
        if runs:
            return planner.plan_selection(files, runs, tag or "runs", target, minimum)
        return planner.plan_auto(
            files, target, minimum, force=force, tag=tag or planner.DEFAULT_TAG
        )

    def record_plan(self, plan: planner.Plan) -> list[ArchiveRecord]:
        """Store the planned archives (state ``planned``) with their members."""
        out = []
        for a in plan.archives:
            recs = [self.bk.get(f.name) for f in a.files]
            out.append(self.catalog.add(a.name, a.tag, [r for r in recs if r is not None]))
        return out

    # -- create ----------------------------------------------------------------------------
    def _files(self, name: str) -> list[FileRecord]:
        recs = [self.bk.get(m.file) for m in self.catalog.members(name)]
        return [r for r in recs if r is not None]

    def _fail(self, rec: ArchiveRecord, froms: Iterable[ArchiveState], reason: str) -> None:
        self.catalog.move(rec.name, froms, ArchiveState.FAILED, last_error=reason)
        self.bk.raise_alarm(None, ALARM_SOURCE, "archive_failed", f"archive {rec.name}: {reason}")

    def create(
        self, names: Sequence[str] | None = None, *, progress: Progress | None = None
    ) -> StepReport:
        """Write the tar and log of each planned archive (or of ``names``) in the work directory."""
        report = StepReport()
        todo = [
            r
            for r in self.catalog.find([ArchiveState.PLANNED, ArchiveState.FAILED])
            if r.created is None and (names is None or r.name in names)
        ]
        for rec in todo:
            if not self.catalog.move(rec.name, [rec.state], ArchiveState.PLANNED, last_error=None):
                continue
            files = self._files(rec.name)
            try:
                sources = []
                for f in files:
                    if not f.storage_path:
                        raise ArchiveError(f"{f.name}: no storage path in the bookkeeping")
                    sources.append(Source(f.storage_path, f.size, parse_adler32(f.adler32 or "1")))
                size, adler, offsets = self._write_or_adopt(rec, sources, files, progress)
            except (ArchiveError, LocationError, OSError) as exc:
                self._fail(rec, [ArchiveState.PLANNED], str(exc))
                report.failed.append((rec.name, str(exc)))
                continue
            self.catalog.set_offsets(rec.name, offsets)
            self.catalog.move(
                rec.name,
                [ArchiveState.PLANNED],
                ArchiveState.CREATED,
                size=size,
                adler32=adler32_hex(adler),
                created=now(),
            )
            for f in files:
                self.bk.record(
                    f.name, EV_ARCHIVED, {"archive": rec.name, "offset": offsets.get(f.name)}
                )
            report.done.append(rec.name)
        return report

    def _write_or_adopt(
        self,
        rec: ArchiveRecord,
        sources: list[Source],
        files: list[FileRecord],
        progress: Progress | None,
    ) -> tuple[int, int, dict[str, int]]:
        """Write the archive; or take over one a crashed run completed but did not record."""
        tar = self.workdir / (rec.name + TAR_SUFFIX)
        log = self.workdir / (rec.name + LOG_SUFFIX)
        if tar.exists() and log.exists():
            size, adler = parse_log_checksum(log.read_text(), str(log))
            with open_reader(str(tar)) as r:
                res = verify_stream(
                    r, expected_members=_expected(files), expected_archive=(size, adler)
                )
            if not res.ok or res.manifest is None:
                raise ArchiveError(
                    f"{tar}: left by an earlier run and not matching: {'; '.join(res.problems)}"
                )
            return size, adler, {m.name: m.offset for m in res.manifest.members}
        written = write_archive(self.workdir, rec.name, rec.tag, sources, progress=progress)
        return written.size, written.adler32, {m.name: m.offset for m in written.manifest.members}

    # -- transfer --------------------------------------------------------------------------
    def transfer(self, names: Sequence[str] | None = None) -> StepReport:
        """Copy created archives (and their logs) to the destination, verified; retried."""
        report = StepReport()
        states = [ArchiveState.CREATED, ArchiveState.TRANSFERRING, ArchiveState.FAILED]
        todo = [
            r
            for r in self.catalog.find(states)
            if r.created is not None
            and r.transferred is None
            and (names is None or r.name in names)
        ]
        for rec in todo:
            if not self.catalog.move(
                rec.name, [rec.state], ArchiveState.TRANSFERRING, last_error=None
            ):
                continue
            assert rec.adler32 is not None
            try:
                done = transfer(
                    self.workdir / (rec.name + TAR_SUFFIX),
                    self.workdir / (rec.name + LOG_SUFFIX),
                    self.destination,
                    parse_adler32(rec.adler32),
                    retries=self.cfg.storage.retries,
                    backoff_s=self.cfg.storage.backoff_s,
                    backoff_max_s=self.cfg.storage.backoff_max_s,
                    on_retry=_retry_logger(rec.name),
                )
            except (TransferError, OSError) as exc:
                self._fail(rec, [ArchiveState.TRANSFERRING], str(exc))
                report.failed.append((rec.name, str(exc)))
                continue
            self.catalog.move(
                rec.name,
                [ArchiveState.TRANSFERRING],
                ArchiveState.TRANSFERRED,
                transferred=now(),
                destination=done.url,
            )
            for f in self._files(rec.name):
                self.bk.record(
                    f.name,
                    EV_ARCHIVE_TRANSFERRED,
                    {"archive": rec.name, "destination": done.url, "copied": done.copied},
                )
            report.done.append(rec.name)
        return report

    # -- verify ----------------------------------------------------------------------------
    def location(self, rec: ArchiveRecord) -> str:
        """Where the archive lies now: at the destination once transferred, else the workdir."""
        if rec.destination:
            return rec.destination
        return str(self.workdir / (rec.name + TAR_SUFFIX))

    def verify_one(self, rec: ArchiveRecord, *, progress: Progress | None = None) -> VerifyResult:
        """Re-read one archive where it lies and compare with the manifest and the database."""
        files = self._files(rec.name)
        expected_archive = None
        if rec.size is not None and rec.adler32 is not None:
            expected_archive = (rec.size, parse_adler32(rec.adler32))
        where = self.location(rec)
        try:
            with open_reader(where) as r:
                return verify_stream(
                    r,
                    expected_members=_expected(files),
                    expected_archive=expected_archive,
                    progress=progress,
                )
        except LocationError as exc:
            return VerifyResult(where, problems=[str(exc)])

    def verify(
        self,
        names: Sequence[str] | None = None,
        *,
        every: bool = False,
        progress: Progress | None = None,
    ) -> list[tuple[ArchiveRecord, VerifyResult]]:
        """Verify transferred archives (or ``names``, wherever they lie); record the outcome.

        ``every``: re-read every created archive, already verified or not (a periodic check that
        the copies at the destination are still good).  A transferred archive that passes becomes
        ``verified`` (its files' stories say so); one that fails becomes ``failed`` with the
        problems as the reason, and an alarm is raised.
        """
        if names is None and every:
            todo = [r for r in self.catalog.find() if r.created is not None]
        elif names is None:
            todo = self.catalog.find([ArchiveState.TRANSFERRED])
        else:
            found = [self.catalog.get(n) for n in names]
            missing = [n for n, r in zip(names, found, strict=True) if r is None]
            if missing:
                raise KeyError(f"no such archive: {', '.join(missing)}")
            todo = [r for r in found if r is not None]
        out = []
        for rec in todo:
            if rec.created is None:
                out.append((rec, VerifyResult(rec.name, problems=[f"{rec.name}: not created yet"])))
                continue
            res = self.verify_one(rec, progress=progress)
            out.append((rec, res))
            at_destination = rec.transferred is not None
            if res.ok and at_destination:
                moved = self.catalog.move(
                    rec.name,
                    [ArchiveState.TRANSFERRED, ArchiveState.VERIFIED, ArchiveState.FAILED],
                    ArchiveState.VERIFIED,
                    verified=now(),
                    last_error=None,
                )
                if moved:
                    for f in self._files(rec.name):
                        self.bk.record(
                            f.name,
                            EV_ARCHIVE_VERIFIED,
                            {"archive": rec.name, "location": res.location},
                        )
            elif not res.ok:
                self._fail(rec, [rec.state], "verify: " + "; ".join(res.problems))
        return out

    # -- restore ---------------------------------------------------------------------------
    def restore(self, file: str, to: Path, *, progress: Progress | None = None) -> Path:
        """Extract raw file ``file`` from its archive into ``to``, checked against its adler32."""
        member = self.catalog.member_of(file)
        rec = self.bk.get(file)
        if member is None or rec is None:
            raise RestoreError(f"{file}: not in any archive")
        arch = self.catalog.get(member.archive)
        assert arch is not None
        if arch.created is None or member.offset is None:
            raise RestoreError(f"{file}: archive {arch.name} is {arch.state}, not written yet")
        original = parse_adler32(rec.adler32 or member.adler32 or "")
        where = self.location(arch)
        try:
            with open_reader(where) as r:
                path = restore_member(
                    r, file, member.offset, member.size, original, to, progress=progress
                )
        except LocationError as exc:
            raise RestoreError(f"{file}: archive {arch.name}: {exc}") from None
        self.bk.record(file, EV_RESTORED, {"archive": arch.name, "from": where, "to": str(path)})
        return path

    # -- all at once -----------------------------------------------------------------------
    def run_ready(self, *, force: bool = False) -> dict[str, StepReport]:
        """Plan, create, transfer and verify whatever is ready (the data challenge's call)."""
        self.record_plan(self.plan(force=force))
        created = self.create()
        transferred = self.transfer()
        verified = StepReport()
        for rec, res in self.verify():
            if res.ok:
                verified.done.append(rec.name)
            else:
                verified.failed.append((rec.name, "; ".join(res.problems)))
        return {"create": created, "transfer": transferred, "verify": verified}


def _expected(files: Iterable[FileRecord]) -> dict[str, Expected]:
    return {
        f.name: Expected(f.size or 0, parse_adler32(f.adler32 or "1"))
        for f in files
        if f.adler32 is not None
    }
