"""Which stored raw files go into which archive: a pure function over file lists, no I/O.

Two ways to plan, as the 3x1x1 farm did by hand:

* **automatic** (:func:`plan_auto`): files in run order, cut into archives of at most the target
  size (5 GB for the 6x6x6).  A file is never split; a run stays in one archive whenever it fits
  in one; the last, still open archive waits for more data while it is under the minimum size
  (1 GB) unless the caller forces it out;
* **by selection** (:func:`plan_selection`): the operator names runs (``1012-1020,1030``) and a
  tag (``hv-scan``), for a group of runs of one kind of measurement; the same cutting rules apply
  inside the selection, and a selection is always planned whole (the operator asked for it).

Sizes are decimal: ``5GB`` is 5,000,000,000 bytes (:func:`parse_size`; ``GiB`` is binary).
Imports only :mod:`farmtools.rawdata.naming`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby, pairwise

from farmtools.rawdata.naming import parse_raw_name

#: Multipliers of :func:`parse_size`; decimal prefixes as storage vendors (and EOS quotas) count.
_UNITS: dict[str, int] = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", re.IGNORECASE)
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")

DEFAULT_TAG = "auto"


class PlanError(ValueError):
    """A size, run selection or tag given by the operator is not valid; the message says why."""


def parse_size(text: str) -> int:
    """Bytes in ``5GB``, ``1.5 GB``, ``500MB``, ``2GiB`` or ``12345``.

    Decimal units (kB, MB, GB, TB = powers of 1000) unless written with ``i`` (KiB, MiB, GiB,
    TiB = powers of 1024): "5 GB archives" in the seed are decimal gigabytes.
    """
    m = _SIZE.fullmatch(text)
    if m is None:
        raise PlanError(f"size {text!r}: expected a number and a unit such as 5GB, 500MB or 2GiB")
    value = float(m.group(1)) * _UNITS[(m.group(2) or "").upper()]
    if value < 1:
        raise PlanError(f"size {text!r}: must be at least one byte")
    return int(value)


def format_size(n: int) -> str:
    """``5.00 GB`` (decimal), for plans and logs that people read."""
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n} B"


def parse_runs(text: str) -> tuple[int, ...]:
    """Sorted run numbers of ``1012-1020,1030`` (ranges inclusive, duplicates merged)."""
    runs: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d{1,9})(?:\s*-\s*(\d{1,9}))?", part)
        if m is None:
            raise PlanError(
                f"run selection {text!r}: {part!r} is not a run or a range like 1012-1020"
            )
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if last < first:
            raise PlanError(f"run selection {text!r}: range {part!r} goes backwards")
        if last - first > 1_000_000:
            raise PlanError(f"run selection {text!r}: range {part!r} is implausibly long")
        runs.update(range(first, last + 1))
    return tuple(sorted(runs))


def check_tag(tag: str) -> str:
    """The tag itself if it is safe in file names and URLs (letters, digits, ``._-``, <= 40)."""
    if _TAG.fullmatch(tag) is None:
        raise PlanError(
            f"tag {tag!r}: use 1-40 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return tag


@dataclass(frozen=True, order=True)
class PlanFile:
    """A stored raw file that may be archived: run, sequence, name and size in bytes."""

    run: int
    seq: int
    name: str = field(compare=False)
    size: int = field(compare=False)

    @classmethod
    def from_name(cls, name: str, size: int) -> PlanFile:
        """A file from its raw name (``run1012-seq3.dat``); other names are refused."""
        raw = parse_raw_name(name)
        if raw is None:
            raise PlanError(f"{name!r} is not a raw file name run<N>-seq<M>.dat")
        return cls(raw.run, raw.seq, raw.filename, size)


@dataclass(frozen=True)
class PlannedArchive:
    """One archive to create: its name, tag, files (in run order) and total size of the files.

    ``note`` says why an archive is out of the ordinary (under the minimum, bigger than the
    target because of one huge file); empty otherwise.
    """

    name: str
    tag: str
    files: tuple[PlanFile, ...]
    note: str = ""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def runs(self) -> tuple[int, ...]:
        return tuple(sorted({f.run for f in self.files}))


@dataclass(frozen=True)
class Plan:
    """Archives to create now, and the files that wait for more data (under the minimum)."""

    archives: tuple[PlannedArchive, ...]
    waiting: tuple[PlanFile, ...] = ()
    #: Runs of an explicit selection that have no stored, unarchived file (shown to the operator).
    missing_runs: tuple[int, ...] = ()


def archive_name(tag: str, files: Sequence[PlanFile]) -> str:
    """``<tag>_<run>.<seq>-<run>.<seq>``: first and last file, unique as a file is archived once."""
    first, last = files[0], files[-1]
    return f"{tag}_{first.run}.{first.seq}-{last.run}.{last.seq}"


def _cut(files: Sequence[PlanFile], target: int) -> list[list[PlanFile]]:
    """Cut files (sorted by run, seq) into groups of at most ``target`` bytes.

    A run goes whole into the current group if it fits, else whole into a new group if it fits
    in one; a run bigger than the target fills groups file by file.  A single file bigger than
    the target is a group of its own.
    """
    groups: list[list[PlanFile]] = []
    current: list[PlanFile] = []
    used = 0
    for _run, run_iter in groupby(files, key=lambda f: f.run):
        run_files = list(run_iter)
        run_size = sum(f.size for f in run_files)
        if used + run_size <= target:
            current.extend(run_files)
            used += run_size
            continue
        if run_size <= target:
            if current:
                groups.append(current)
            current, used = list(run_files), run_size
            continue
        for f in run_files:  # the run cannot stay whole: fill archives file by file
            if current and used + f.size > target:
                groups.append(current)
                current, used = [], 0
            current.append(f)
            used += f.size
    if current:
        groups.append(current)
    return groups


def _note(group: Sequence[PlanFile], target: int, minimum: int) -> str:
    size = sum(f.size for f in group)
    if size > target:
        return f"one file bigger than the target {format_size(target)}"
    if size < minimum:
        return f"under the minimum {format_size(minimum)}"
    return ""


def _check_sizes(target: int, minimum: int) -> None:
    if target < 1 or minimum < 0:
        raise PlanError("target size must be positive and minimum size not negative")
    if minimum > target:
        raise PlanError(
            f"minimum size {format_size(minimum)} is larger than the target {format_size(target)}"
        )


def _unique(files: Iterable[PlanFile]) -> list[PlanFile]:
    ordered = sorted(files)
    for a, b in pairwise(ordered):
        if (a.run, a.seq) == (b.run, b.seq):
            raise PlanError(f"{a.name} is listed twice")
    return ordered


def plan_auto(
    files: Iterable[PlanFile],
    target: int,
    minimum: int,
    *,
    force: bool = False,
    tag: str = DEFAULT_TAG,
) -> Plan:
    """Archives of the given (stored, not yet archived) files in run order; see module docstring.

    Only the last archive can still grow, so only it waits when under ``minimum``; an earlier
    archive under the minimum is one that the next run would overflow, planned anyway with a
    note (keeping runs whole is the stronger rule, and in run order nothing else can join it).
    """
    _check_sizes(target, minimum)
    check_tag(tag)
    groups = _cut(_unique(files), target)
    waiting: tuple[PlanFile, ...] = ()
    if groups and not force and sum(f.size for f in groups[-1]) < minimum:
        waiting = tuple(groups.pop())
    archives = tuple(
        PlannedArchive(archive_name(tag, g), tag, tuple(g), _note(g, target, minimum))
        for g in groups
    )
    return Plan(archives, waiting)


def plan_selection(
    files: Iterable[PlanFile],
    runs: Iterable[int],
    tag: str,
    target: int,
    minimum: int,
) -> Plan:
    """Archives of exactly the files of ``runs``, tagged ``tag``; planned whole, even if small.

    Files of other runs are ignored.  Runs of the selection without any file (a range often
    spans numbers never taken) are listed in :attr:`Plan.missing_runs`; a selection with no
    file at all is an error.
    """
    _check_sizes(target, minimum)
    check_tag(tag)
    wanted = set(runs)
    chosen = [f for f in files if f.run in wanted]
    if not chosen:
        raise PlanError("no stored, unarchived file in the selected runs")
    plan = plan_auto(chosen, target, minimum, force=True, tag=tag)
    missing = tuple(sorted(wanted - {f.run for f in chosen}))
    return Plan(plan.archives, plan.waiting, missing)
