"""The seed's four data-challenge tests as presets, and the time scale that shrinks them.

The 3x1x1 farm was commissioned with four mock data challenges: a 1 GiB file (335 events) every
300 s, 50 compressed then 25 uncompressed files, and a file every 10 s, 500 compressed then 500
uncompressed.  A preset reproduces one of them; ``time_scale`` divides both the interval between
files and the events per file by the same factor, so the load on the farm (reconstruction time
per file over the interval between files) stays what the seed had while the challenge runs
``time_scale`` times faster.  Pure data: imports nothing from the other stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    """How many files of how many events, how often, compressed or not, and why."""

    name: str
    files: int
    interval_s: float
    events: int
    compress: bool
    description: str

    def scaled(self, time_scale: float) -> Preset:
        """This preset ``time_scale`` times faster (interval and events divided, files kept)."""
        if not math.isfinite(time_scale) or time_scale <= 0:
            raise ValueError(f"time scale must be a positive number (got {time_scale})")
        if time_scale == 1:
            return self
        return replace(
            self,
            interval_s=self.interval_s / time_scale,
            events=max(1, round(self.events / time_scale)),
            description=f"{self.description}, {time_scale:g}x faster",
        )


#: The seed's tests (spec: the 3x1x1 farm's commissioning), and the README's demo.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("seed-300s-compressed", 50, 300.0, 335, True, "seed test 1: 50 compressed, 300 s"),
        Preset("seed-300s-raw", 25, 300.0, 335, False, "seed test 2: 25 uncompressed, 300 s"),
        Preset("seed-10s-compressed", 500, 10.0, 335, True, "seed test 3: 500 compressed, 10 s"),
        Preset("seed-10s-raw", 500, 10.0, 335, False, "seed test 4: 500 uncompressed, 10 s"),
        Preset("demo", 6, 2.0, 10, False, "the README demo: 6 small files, one every 2 s"),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ValueError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
