"""Deleting raw files from the event builder: THE ONLY PLACE FARMTOOLS EVER DELETES A RAW FILE.

A raw file on the event builder's disk may go only when every copy that replaces it is proven:

1. the bookkeeping knows it and it is on the farm storage (a state from ``stored`` on);
2. its checksum was verified when it was stored (a ``verified``/``already_stored`` story event);
3. it is in an archive, and that archive is ``verified`` *at the destination* (re-read there);
4. the bytes on the event builder are still the bytes that were archived (size and adler32
   recomputed now), so a file rewritten since is never taken for its archived namesake.

Anything else is refused, and each refusal names the file and the reason.  The default is a dry
run; deleting needs an explicit flag.  Every deletion is a story event of the file.
Imports :mod:`farmtools.archive.catalog`, :mod:`farmtools.bookkeeping` and
:mod:`farmtools.storage.checksum`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from farmtools.archive.catalog import ARCHIVABLE, EV_CLEANED, ArchiveState, Catalog
from farmtools.bookkeeping import Bookkeeping, Event
from farmtools.rawdata.naming import parse_raw_name
from farmtools.storage.checksum import adler32_file, adler32_hex


@dataclass(frozen=True)
class Decision:
    """One raw file on the event builder: may it be deleted, and if not, why not."""

    path: Path
    allowed: bool
    reason: str
    deleted: bool = False


def raw_files(watch_dir: Path) -> Iterator[Path]:
    """Raw files (exact ``run<N>-seq<M>.dat`` names) below the event builder's data directory."""
    for dirpath, _dirs, names in os.walk(watch_dir):
        for n in sorted(names):
            if parse_raw_name(n) is not None:
                yield Path(dirpath) / n


def judge(bk: Bookkeeping, catalog: Catalog, path: Path) -> Decision:
    """Whether ``path`` may be deleted (see the module docstring for the four conditions)."""
    name = path.name
    rec = bk.get(name)
    if rec is None:
        return Decision(path, False, "unknown to the bookkeeping")
    if str(rec.state) not in ARCHIVABLE:
        return Decision(path, False, f"state is {rec.state}, not stored on the farm storage")
    if rec.adler32 is None or not any(
        e.event in (Event.VERIFIED, Event.ALREADY_STORED) for e in bk.story(name)
    ):
        return Decision(path, False, "its stored copy was never verified")
    member = catalog.member_of(name)
    if member is None:
        return Decision(path, False, "not archived")
    arch = catalog.get(member.archive)
    if arch is None or arch.state != ArchiveState.VERIFIED:
        state = arch.state if arch is not None else "missing"
        return Decision(
            path, False, f"archive {member.archive} is {state}, not verified at the destination"
        )
    try:
        size = path.stat().st_size
        if size != rec.size:
            return Decision(path, False, f"size {size} differs from the archived {rec.size}")
        now_sum = adler32_hex(adler32_file(path))
    except OSError as exc:
        return Decision(path, False, f"cannot read it: {exc.strerror}")
    if now_sum != rec.adler32:
        return Decision(path, False, f"adler32 {now_sum} differs from the archived {rec.adler32}")
    return Decision(path, True, f"archived in {member.archive}, verified at {arch.destination}")


def cleanup(bk: Bookkeeping, watch_dir: Path, *, dry_run: bool = True) -> list[Decision]:
    """Judge every raw file below ``watch_dir``; delete the allowed ones unless ``dry_run``."""
    catalog = Catalog(bk)
    out = []
    for path in raw_files(watch_dir):
        d = judge(bk, catalog, path)
        if d.allowed and not dry_run:
            path.unlink()
            bk.record(path.name, EV_CLEANED, {"path": str(path), "why": d.reason})
            d = Decision(d.path, True, d.reason, deleted=True)
        out.append(d)
    return out
