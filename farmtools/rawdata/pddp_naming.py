"""Names of the 6x6x6 files: L2 event files ``<run>_<seq>_<L2 id>.<ext>`` and L1 fragment streams.

The L2 name is the public decoder's (``198_129_b.test``: run, sequence, one character per L2
builder, any alphanumeric extension; the farm writes ``.dat``).  The L1 stream files are this
project's [choice]: ``<run>_<seq>_l1evb<k>.frag``, run, sequence and L1 builder ``k`` (0, 1),
which the decoder's pattern cannot mistake for an L2 file.

Pure standard library.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_L2 = re.compile(r"([0-9]{1,9})_([0-9]{1,9})_([A-Za-z0-9])\.([A-Za-z0-9]{1,16})", re.ASCII)
_L1 = re.compile(r"([0-9]{1,9})_([0-9]{1,9})_l1evb([0-9])\.frag", re.ASCII)
L2_EXTENSION = "dat"


@dataclass(frozen=True, order=True)
class L2Name:
    """Run, sequence and L2 builder id of an event file."""

    run: int
    seq: int
    builder: str
    ext: str = L2_EXTENSION

    @property
    def filename(self) -> str:
        return f"{self.run}_{self.seq}_{self.builder}.{self.ext}"

    @property
    def run_dir(self) -> str:
        """Directory of the run on the farm storage, as for the 3x1x1: ``run<N>``."""
        return f"run{self.run}"


@dataclass(frozen=True, order=True)
class L1Name:
    """Run, sequence and L1 builder of a fragment-stream file."""

    run: int
    seq: int
    builder: int

    @property
    def filename(self) -> str:
        return f"{self.run}_{self.seq}_l1evb{self.builder}.frag"


def _base(name: str | bytes | os.PathLike[str]) -> str:
    return os.path.basename(os.fsdecode(name) if not isinstance(name, str) else name)


def parse_l2_name(name: str | bytes | os.PathLike[str]) -> L2Name | None:
    """The L2 name of a base name or path, or None."""
    m = _L2.fullmatch(_base(name))
    if m is None:
        return None
    return L2Name(int(m.group(1)), int(m.group(2)), m.group(3), m.group(4))


def parse_l1_name(name: str | bytes | os.PathLike[str]) -> L1Name | None:
    """The L1 stream name of a base name or path, or None."""
    m = _L1.fullmatch(_base(name))
    if m is None:
        return None
    return L1Name(int(m.group(1)), int(m.group(2)), int(m.group(3)))
