"""The :class:`Storage` interface, its result types and errors, shared by every backend.

``put`` is written once here (destination check, conflict rule, verification); backends supply
the primitives: ``_copy`` (one-pass copy to a temporary name + checksum), ``_verify_remote``,
``_publish`` (temporary -> final name without replacing anything), ``checksum``, ``stat``...
Imports only the standard library and :mod:`farmtools.storage.checksum`; the backends import it,
never the reverse (:mod:`farmtools.storage.factory` chooses one).
"""

from __future__ import annotations

import abc
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from farmtools.storage.checksum import adler32_file, adler32_hex

log = logging.getLogger(__name__)


class StorageError(Exception):
    """A storage operation failed; ``path`` names the file concerned."""

    #: True when trying again later may succeed (server down, disk full, timeout).
    transient = False

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}")


class TransientStorageError(StorageError):
    """Server unreachable, disk full, timeout: retry with back-off."""

    transient = True


class ChecksumMismatch(StorageError):
    """The destination's checksum differs from the source's after a copy (the copy was removed)."""

    transient = True


class DestinationConflict(StorageError):
    """Different bytes already sit under the final name: never overwritten, quarantine."""


class SourceChanged(TransientStorageError):
    """The source shrank (or vanished) while it was being copied; ``path`` is the source.

    A subclass of :class:`TransientStorageError` so that callers that only know about storage
    errors still retry; ingest tells it apart because it is the input's fault, not the storage's
    (the storage is not "down"), and quarantines the file as it does for any source modified
    during its copy.  Copies read the source with ``read()``, never through a memory map, so a
    source truncated under them gives this error instead of a SIGBUS that kills the daemon.
    """

    @classmethod
    def shrank(cls, src: str | os.PathLike[str], done: int, size: int) -> SourceChanged:
        """The error for a source that ended after ``done`` of the ``size`` bytes it had."""
        return cls(os.fsdecode(src), f"source shrank during the copy ({done} of {size} bytes)")


@dataclass(frozen=True)
class PutResult:
    """Outcome of :meth:`Storage.put`."""

    url: str
    size: int
    adler32: str
    #: False when the same bytes were already there (nothing was copied)
    copied: bool


@dataclass(frozen=True)
class StatInfo:
    size: int
    is_dir: bool


class Storage(abc.ABC):
    """Where raw files go.  Paths are relative to the backend's root (``run1/run1-seq0.dat``)."""

    #: Bandwidth limit of one copy in bytes/s (0: none), to spare the DAQ's network link.
    max_rate: float = 0.0

    def _step(self, default: int) -> int:
        """Bytes per copy step: ``default``, or about 0.1 s of ``max_rate`` (at least 1 MiB).

        With a bandwidth limit, large steps would copy in bursts of seconds followed by
        pauses; small ones keep the rate smooth and the copy's progress visible.
        """
        if self.max_rate > 0:
            return max(1 << 20, min(default, int(self.max_rate / 10)))
        return default

    def _pace(self, started: float, done: int) -> None:
        """Sleep as long as needed for ``done`` bytes since ``started`` to respect ``max_rate``."""
        if self.max_rate > 0:
            ahead = done / self.max_rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    @abc.abstractmethod
    def url(self, rel: str) -> str:
        """Full name of ``rel`` (a local path or a ``root://`` URL), as recorded in the DB."""

    @abc.abstractmethod
    def stat(self, rel: str) -> StatInfo | None:
        """Size and kind of ``rel``, None when it does not exist."""

    @abc.abstractmethod
    def checksum(self, rel: str) -> int | None:
        """adler32 of ``rel`` as the storage computes it, None when it does not exist."""

    @abc.abstractmethod
    def mkdir(self, rel: str) -> None:
        """Create ``rel`` and its parents (no error if it exists)."""

    @abc.abstractmethod
    def list(self, rel: str = "") -> list[str]:
        """Names in directory ``rel``."""

    @abc.abstractmethod
    def _copy(self, src: Path, dest_rel: str, tmp_rel: str) -> tuple[int, int]:
        """Copy ``src`` to ``tmp_rel`` reading it once; returns (bytes, adler32 of the bytes read)."""

    @abc.abstractmethod
    def _verified_checksum(self, tmp_rel: str, copied: int) -> int:
        """Checksum of the complete temporary file, as the destination vouches for it."""

    @abc.abstractmethod
    def _publish(self, tmp_rel: str, dest_rel: str) -> None:
        """Rename the temporary file to its final name; FileExistsError rather than replace."""

    @abc.abstractmethod
    def _discard(self, tmp_rel: str) -> None:
        """Remove a temporary file (no error if it is gone)."""

    def _discard_after_failure(self, tmp_rel: str) -> None:
        """Remove the temporary file of a failed put, without hiding why it failed.

        The storage that just refused the copy (read-only, full, unreachable) often refuses the
        removal too; raising that would replace the real error (on a read-only file system the
        ingest would see an "unexpected" OSError about the .part file instead of a transient
        storage error).  A temporary file left behind is harmless: it never carries the final
        name, and the next try truncates or replaces it.
        """
        try:
            self._discard(tmp_rel)
        except Exception as exc:
            log.warning("%s: temporary file left behind (%s)", self.url(tmp_rel), exc)

    def exists(self, rel: str) -> bool:
        return self.stat(rel) is not None

    @staticmethod
    def temp_name(dest_rel: str) -> str:
        """The hidden temporary name a copy is written to; never matches ``run<N>-seq<M>.dat``."""
        head, _, tail = dest_rel.rpartition("/")
        return f"{head}/.{tail}.part" if head else f".{tail}.part"

    def put(self, src: str | os.PathLike[str], dest_rel: str) -> PutResult:
        """Copy ``src`` to ``dest_rel``, verified; the source is only ever read.

        * same bytes already at ``dest_rel`` (same size and adler32) -> nothing copied,
          ``copied=False``;
        * different bytes there -> :class:`DestinationConflict` (never overwritten);
        * otherwise the file is written under :meth:`temp_name`, its checksum verified at the
          destination, and only then renamed to ``dest_rel``.  A failed verification removes the
          temporary file and raises :class:`ChecksumMismatch`.
        """
        src = Path(src)
        present = self.stat(dest_rel)
        if present is not None:
            return self._compare_existing(src, dest_rel, present)
        tmp = self.temp_name(dest_rel)
        try:
            size, value = self._copy(src, dest_rel, tmp)
            remote = self._verified_checksum(tmp, value)
        except BaseException:
            self._discard_after_failure(tmp)
            raise
        if remote != value:
            self._discard_after_failure(tmp)
            raise ChecksumMismatch(
                self.url(dest_rel),
                f"adler32 at the destination {adler32_hex(remote)} != source {adler32_hex(value)}",
            )
        try:
            self._publish(tmp, dest_rel)
        except FileExistsError:
            # somebody put a file there meanwhile: judge it like any existing file
            self._discard_after_failure(tmp)
            present = self.stat(dest_rel)
            if present is None:
                raise TransientStorageError(
                    self.url(dest_rel), "vanished while publishing"
                ) from None
            return self._compare_existing(src, dest_rel, present)
        return PutResult(self.url(dest_rel), size, adler32_hex(value), copied=True)

    def _compare_existing(self, src: Path, dest_rel: str, present: StatInfo) -> PutResult:
        size = src.stat().st_size
        mine = adler32_file(src)
        theirs = self.checksum(dest_rel)
        if present.size == size and theirs == mine:
            return PutResult(self.url(dest_rel), size, adler32_hex(mine), copied=False)
        raise DestinationConflict(
            self.url(dest_rel),
            f"already holds different bytes (size {present.size}, adler32 "
            f"{adler32_hex(theirs) if theirs is not None else '?'}) than {os.fsdecode(src)!r} "
            f"(size {size}, adler32 {adler32_hex(mine)}); not overwritten",
        )
