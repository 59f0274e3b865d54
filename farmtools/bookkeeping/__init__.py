"""Bookkeeping: the farm's one source of truth (file states and each file's append-only story).

Public API: :class:`Bookkeeping` (``farmtools.bookkeeping.db``), :class:`FileState` and the story
event names (``farmtools.bookkeeping.states``), the tables (``farmtools.bookkeeping.schema``).
This package imports nothing from higher stages (ingest, processing, monitor...).
"""

from farmtools.bookkeeping.db import (
    AlarmRecord,
    AnalysisRecord,
    Bookkeeping,
    FileRecord,
    RunSummary,
    StoryEvent,
)
from farmtools.bookkeeping.states import Event, FileState

__all__ = [
    "AlarmRecord",
    "AnalysisRecord",
    "Bookkeeping",
    "Event",
    "FileRecord",
    "FileState",
    "RunSummary",
    "StoryEvent",
]
