"""``farmtools verify-output DIR``: every reconstruction output opens and has all its events.

The seed checked this by hand after every data challenge (open each ROOT file, count its
entries, compare with the raw file).  Here each raw file under the raw directory is paired with
its output under the output directory (any depth, so both the ``<dir>/run<N>/`` layout of the
storage and a flat directory work): ``run<N>-seq<M>.dat`` with ``recotask_run<N>-seq<M>.root``,
a 6x6x6 event file ``<run>_<seq>_<id>.dat`` with ``recotask_<run>_<seq>_<id>.root``
(:attr:`farmtools.rawdata.naming.RawName.reco_filename`, the name processing gives it; the
L2 builder id keeps the two builders' files of one sequence apart), and:

* a raw file without its ROOT file is *missing*;
* a ROOT file that does not open, or lacks one of the trees, is *unreadable*;
* a ROOT file whose ``events`` tree has fewer (or more) entries than the raw file has events
  is *short* (or *long*);
* a ROOT file without a raw file to compare with is *unchecked* (also a failure: nothing
  proves it complete);
* a corrupt raw file is *skipped*: the reconstruction refuses it (exit 65), so no output is due.

Imports uproot, :mod:`farmtools.rawdata` and the output's tree names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from farmtools.detector import Geometry
from farmtools.rawdata import RawDataError
from farmtools.rawdata.naming import RawName, parse_raw_name
from farmtools.rawdata.pddp_reader import open_raw
from farmtools.reco.output import TREES

_RECO_NAME = re.compile(r"recotask_(.+)\.root")

#: Statuses that do not make the verification fail.
GOOD = frozenset({"ok", "skipped"})


@dataclass(frozen=True)
class OutputCheck:
    """The verdict on one (raw file, ROOT file) pair."""

    name: RawName
    status: str  # ok, missing, unreadable, short, long, unchecked, skipped
    root: Path | None
    raw: Path | None
    entries: int | None = None
    raw_events: int | None = None
    message: str = ""

    def line(self) -> str:
        where = str(self.root if self.root is not None else self.raw)
        counts = []
        if self.entries is not None:
            counts.append(f"{self.entries} entries")
        if self.raw_events is not None:
            counts.append(f"raw file {self.raw_events} events")
        counts_text = f" ({', '.join(counts)})" if counts else ""
        detail = f": {self.message}" if self.message else ""
        return f"{self.status} {where}{counts_text}{detail}"


@dataclass
class VerifyReport:
    """All checks of one verification, in run/sequence order."""

    checks: list[OutputCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status in GOOD for c in self.checks)

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for c in self.checks:
            counts[c.status] = counts.get(c.status, 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no files"
        return f"{'OK' if self.ok else 'FAILED'}: {len(self.checks)} files checked ({parts})"


def parse_reco_name(name: str | os.PathLike[str]) -> RawName | None:
    """The raw name whose output is ``name`` (a base name or a path): ``recotask_`` + the raw
    file's name with ``.root`` for ``.dat`` (both detectors' conventions), else None."""
    m = _RECO_NAME.fullmatch(os.path.basename(os.fspath(name)))
    return parse_raw_name(m.group(1) + ".dat") if m else None


def root_entries(path: str | os.PathLike[str]) -> int:
    """Entries of the ``events`` tree, after reading every tree whole.

    Raises ValueError naming what is wrong: truncated (shorter than the header's end of
    file), a tree missing, a basket that does not decompress.
    """
    import uproot

    try:
        size = os.path.getsize(path)
        with uproot.open(os.fspath(path)) as f:
            end = int(f.file.fEND)
            if size < end:
                raise ValueError(f"truncated: {size} bytes, the ROOT header says {end}")
            keys = {k.split(";")[0] for k in f}
            missing = [t for t in TREES if t not in keys]
            if missing:
                raise ValueError(f"no {', '.join(missing)} tree(s) in the file")
            # read every basket: a damaged one fails here rather than in the analyses
            entries = [len(f[t].arrays(library="np")[f[t].keys()[0]]) for t in TREES]
            if entries[0] != int(f["events"].num_entries):
                raise ValueError("events tree holds fewer entries than it declares")
            return entries[0]
    except ValueError:
        raise
    except Exception as exc:  # uproot raises many types for a damaged file
        raise ValueError(f"cannot be read: {type(exc).__name__}: {exc}") from None


def _index(
    root: Path, parse: Callable[[Path], RawName | None], pattern: str
) -> dict[RawName, Path]:
    found: dict[RawName, Path] = {}
    if not root.is_dir():
        return found
    for p in sorted(root.rglob(pattern)):
        name = parse(p)
        if name is not None and p.is_file():
            found.setdefault(name, p)
    return found


def check_pair(
    name: RawName, root: Path | None, raw: Path | None, geometry: Geometry
) -> OutputCheck:
    """Check one pair (either side may be absent)."""
    raw_events: int | None = None
    if raw is not None:
        try:
            with open_raw(raw, name, geometry) as f:
                raw_events = f.n_events
        except RawDataError as exc:
            if root is None:
                return OutputCheck(name, "skipped", None, raw, message=f"raw file corrupt: {exc}")
            return OutputCheck(
                name, "unchecked", root, raw, message=f"raw file corrupt, output exists: {exc}"
            )
    if root is None:
        return OutputCheck(
            name, "missing", None, raw, raw_events=raw_events, message="no ROOT output"
        )
    try:
        entries = root_entries(root)
    except ValueError as exc:
        return OutputCheck(name, "unreadable", root, raw, raw_events=raw_events, message=str(exc))
    if raw_events is None:
        return OutputCheck(
            name, "unchecked", root, None, entries=entries, message="no raw file to compare with"
        )
    status = "ok" if entries == raw_events else ("short" if entries < raw_events else "long")
    return OutputCheck(name, status, root, raw, entries=entries, raw_events=raw_events)


def verify_tree(out_dir: Path, raw_dir: Path, geometry: Geometry) -> VerifyReport:
    """Pair every raw file under ``raw_dir`` with its ROOT file under ``out_dir`` and check them."""
    roots = _index(out_dir, parse_reco_name, "recotask_*.root")
    raws = _index(raw_dir, parse_raw_name, "*.dat")
    report = VerifyReport()
    for name in sorted(set(roots) | set(raws)):
        report.checks.append(check_pair(name, roots.get(name), raws.get(name), geometry))
    return report
