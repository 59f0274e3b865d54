"""Bookkeeping: the farm's one source of truth (file states and each file's append-only story).

Public API: :class:`Bookkeeping` (``farmtools.bookkeeping.db``), :class:`FileState` and the story
event names (``farmtools.bookkeeping.states``), the tables (``farmtools.bookkeeping.schema``).
This package imports nothing from higher stages (ingest, processing, monitor...).
"""

from typing import TYPE_CHECKING, Any

from farmtools.bookkeeping.states import Event, FileState

if TYPE_CHECKING:
    from farmtools.bookkeeping.db import (
        AlarmRecord,
        AnalysisRecord,
        Bookkeeping,
        FileRecord,
        RunSummary,
        StoryEvent,
    )

#: Names served from :mod:`farmtools.bookkeeping.db` on first use: importing the package (as
#: ``farmtools --help`` and every ``farmtools reco`` job do through the stage CLIs) must not
#: import SQLAlchemy, ~0.3 s of every job's start-up.
_FROM_DB = frozenset(
    {"AlarmRecord", "AnalysisRecord", "Bookkeeping", "FileRecord", "RunSummary", "StoryEvent"}
)


def __getattr__(name: str) -> Any:
    if name in _FROM_DB:
        from farmtools.bookkeeping import db

        return getattr(db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
