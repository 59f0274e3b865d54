"""Raw file names: ``run<N>-seq<M>.dat``, the one convention every stage relies on."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_NAME = re.compile(r"run(\d{1,9})-seq(\d{1,9})\.dat")


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

    Only the exact pattern counts: ``run12-seq3.dat.tmp``, ``run12-seq3.dat `` or names with
    other bytes are not raw files and are left alone by every stage.
    """
    base = os.path.basename(os.fsdecode(name) if not isinstance(name, str) else name)
    m = _NAME.fullmatch(base)
    if m is None:
        return None
    return RawName(int(m.group(1)), int(m.group(2)))
