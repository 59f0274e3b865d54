"""Retry delays: exponential back-off with full jitter, capped.

After failure ``n`` (1-based) the delay is drawn uniformly from ``[base/2, min(cap, base *
2**(n-1))]``: doubling spreads retries out while a storage stays down, the jitter keeps several
ingest daemons (or many files of one daemon) from hammering a server that just came back all
in the same second, and the lower bound keeps a retry from following a failure immediately.
Imports only the standard library.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delay policy: ``base`` seconds after the first failure, doubling, at most ``cap``."""

    base: float
    cap: float
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def ceiling(self, failures: int) -> float:
        """The largest delay after ``failures`` consecutive failures (no jitter)."""
        if failures <= 0:
            return 0.0
        # Avoid float overflow for very long outages: 2**60 * base is past any sane cap.
        return min(self.cap, self.base * 2.0 ** min(failures - 1, 60))

    def delay(self, failures: int) -> float:
        """A jittered delay after ``failures`` consecutive failures (0 for none)."""
        top = self.ceiling(failures)
        if top <= 0:
            return 0.0
        low = min(self.base / 2, top)
        return self.rng.uniform(low, top)
