"""What one pass of the processing manager did: the counts ``process once`` prints."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PassSummary:
    """What one pass did (for ``process once`` and the benchmarks)."""

    claimed: int = 0
    submitted: int = 0
    started: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    #: summary files written by the analyses of this pass (``process once`` only)
    analysed: int = 0
    batch_down: bool = False
    errors: list[str] = field(default_factory=list)
