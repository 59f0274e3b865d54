"""Raw file names: ``run<N>-seq<M>.dat``, the one convention every stage relies on."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

#: ASCII digits only: ``\d`` would also accept other scripts' digits (``run١-seq٢.dat``), which
#: ``int()`` turns into the same numbers as an ASCII name: two different files, one raw name.
_NAME = re.compile(r"run([0-9]{1,9})-seq([0-9]{1,9})\.dat", re.ASCII)


@dataclass(frozen=True, order=True)
class RawName:
    """Run and sequence number parsed from a raw file name."""

    run: int
    seq: int

    @property
    def filename(self) -> str:
        return f"run{self.run}-seq{self.seq}.dat"

    @property
    def run_dir(self) -> str:
        """Directory of the run on the farm storage: ``run<N>``."""
        return f"run{self.run}"

    @property
    def reco_filename(self) -> str:
        """Name of the reconstruction output, as the seed named it."""
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
        return None
    return RawName(int(m.group(1)), int(m.group(2)))
