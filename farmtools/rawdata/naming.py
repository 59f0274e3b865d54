"""Raw file names: ``run<N>-seq<M>.dat``, the one convention every stage relies on.

The 6x6x6's event files, ``<run>_<seq>_<L2 id>.dat`` (:mod:`farmtools.rawdata.pddp_naming`),
are raw files too: :func:`parse_raw_name` gives them a :class:`RawName` with their L2 builder
id, so that ingest, the bookkeeping and the archives take them as they take 311 files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

#: ASCII digits only: ``\d`` would also accept other scripts' digits (``run١-seq٢.dat``), which
#: ``int()`` turns into the same numbers as an ASCII name: two different files, one raw name.
_NAME = re.compile(r"run([0-9]{1,9})-seq([0-9]{1,9})\.dat", re.ASCII)
#: The 6x6x6 event files the farm's L2 builders write (extension ``dat`` only).
_L2_NAME = re.compile(r"([0-9]{1,9})_([0-9]{1,9})_([A-Za-z0-9])\.dat", re.ASCII)


@dataclass(frozen=True, order=True)
class RawName:
    """Run and sequence number parsed from a raw file name (and the L2 builder of a 6x6x6 file)."""

    run: int
    seq: int
    #: L2 builder id of a 6x6x6 (ProtoDUNE-DP) event file; empty for a 3x1x1 file.
    builder: str = ""

    @property
    def pddp(self) -> bool:
        """A 6x6x6 event file (ProtoDUNE-DP format), not a 311 file."""
        return bool(self.builder)

    @property
    def filename(self) -> str:
        if self.builder:
            return f"{self.run}_{self.seq}_{self.builder}.dat"
        return f"run{self.run}-seq{self.seq}.dat"

    @property
    def run_dir(self) -> str:
        """Directory of the run on the farm storage: ``run<N>``."""
        return f"run{self.run}"

    @property
    def job_name(self) -> str:
        """Name of its processing job: ``reco_run<N>-seq<M>``, ``reco_<run>_<seq>_<id>`` (6x6x6:
        two L2 builders write the same run and sequence numbers)."""
        return "reco_" + self.filename.removesuffix(".dat")

    @property
    def reco_filename(self) -> str:
        """Name of the reconstruction output, as the seed named it."""
        if self.builder:
            return f"recotask_{self.run}_{self.seq}_{self.builder}.root"
        return f"recotask_run{self.run}-seq{self.seq}.root"


def parse_raw_name(name: str | bytes | os.PathLike[str]) -> RawName | None:
    """Run and sequence of a raw file name (a base name or a path), or None if it is not one.

    Only the exact pattern counts: ``run12-seq3.dat.tmp``, ``run12-seq3.dat ``, names with
    non-ASCII digits or other bytes are not raw files and are left alone by every stage.
    Leading zeros are accepted and normalised (``run01-seq2.dat`` is run 1, sequence 2, whose
    :attr:`RawName.filename` is ``run1-seq2.dat``): callers that key files by that name must
    check whether another file already holds it (ingest records the second one as ignored).
    """
    base = os.path.basename(os.fsdecode(name) if not isinstance(name, str) else name)
    m = _NAME.fullmatch(base)
    if m is None:
        l2 = _L2_NAME.fullmatch(base)
        if l2 is None:
            return None
        return RawName(int(l2.group(1)), int(l2.group(2)), l2.group(3))
    return RawName(int(m.group(1)), int(m.group(2)))
