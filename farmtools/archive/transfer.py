"""Copy an archive and its log to central storage: a local directory or an XRootD URL (EOS).

The copy itself is :meth:`farmtools.storage.Storage.put`, the same verified copy ingest uses:
written under a hidden ``.<name>.part``, its adler32 checked at the destination (the server's
own checksum on XRootD), renamed to the final name only then, never over different bytes
(:class:`~farmtools.storage.DestinationConflict`), and "already there with the same bytes"
counts as done.  On top of that this module

* compares the checksum the copy measured with the one recorded when the archive was written,
  so an archive damaged while waiting in the work directory is not shipped;
* retries transient failures (server down, checksum mismatch) with the back-off ingest uses
  (:class:`farmtools.retry.Backoff`: doubling, capped, with jitter, so that the archive
  transfer and the ingest daemons do not hit a storage that just came back in the same second).

An interrupted transfer leaves at most the hidden ``.part`` file; the next attempt rewrites it
from the start (neither backend appends), so no duplicate or half file ever carries the
archive's name.  Imports :mod:`farmtools.storage` and the archive location helpers,
and the back-off policy of :mod:`farmtools.retry` (standard library only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from farmtools.retry import Backoff
from farmtools.storage import (
    LocalStorage,
    PutResult,
    Storage,
    StorageError,
    XRootDStorage,
    adler32_hex,
)
from farmtools.storage.location import is_url, split_url


class TransferError(Exception):
    """A transfer failed for good (or after its retries); the message names archive and place."""


@dataclass(frozen=True)
class Transferred:
    """Where the archive and its log now are, and whether bytes had to be copied."""

    url: str
    log_url: str
    copied: bool


def storage_for(destination: str) -> Storage:
    """The storage backend of a destination: ``root://host:port//dir`` or a local directory."""
    if is_url(destination):
        server, path = split_url(destination)
        return XRootDStorage(server, path)
    return LocalStorage(Path(destination))


def _put_with_retries(
    storage: Storage,
    src: Path,
    rel: str,
    retries: int,
    backoff: Backoff,
    on_retry: Callable[[int, Exception], None] | None,
) -> PutResult:
    attempt = 0
    while True:
        attempt += 1
        try:
            return storage.put(src, rel)
        except StorageError as exc:
            if not exc.transient or attempt > retries:
                raise TransferError(
                    f"{src.name} -> {storage.url(rel)}: failed (attempt {attempt}): {exc}"
                ) from None
            if on_retry is not None:
                on_retry(attempt, exc)
            time.sleep(backoff.delay(attempt))


def transfer(
    tar: Path,
    log: Path,
    destination: str,
    adler32: int,
    *,
    retries: int = 3,
    backoff_s: float = 1.0,
    backoff_max_s: float = 300.0,
    on_retry: Callable[[int, Exception], None] | None = None,
    extra: Sequence[Path] = (),
) -> Transferred:
    """Copy ``tar`` (whose recorded adler32 is ``adler32``) and ``log`` to ``destination``.

    ``extra`` files (a final file's manifest) are copied after the log, the same verified way.
    """
    storage = storage_for(destination)
    backoff = Backoff(backoff_s, backoff_max_s)
    result = _put_with_retries(storage, tar, tar.name, retries, backoff, on_retry)
    if result.adler32 != adler32_hex(adler32):
        raise TransferError(
            f"{result.url}: adler32 {result.adler32} but the archive was written with "
            f"{adler32_hex(adler32)}; the archive in the work directory is damaged"
        )
    log_result = _put_with_retries(storage, log, log.name, retries, backoff, on_retry)
    for path in extra:
        _put_with_retries(storage, path, path.name, retries, backoff, on_retry)
    return Transferred(result.url, log_result.url, result.copied)
