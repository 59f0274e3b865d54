"""The one exception type that bad raw input raises."""

from __future__ import annotations

import os


class RawDataError(Exception):
    """A raw file is not what the 311 (or ProtoDUNE-DP) format says it should be.

    Carries the file, the event index (``None`` for the run header or the footer), the L1
    fragment within the event (ProtoDUNE-DP files only) and the byte
    offset where the problem was found, so that an operator can look at the bytes, and a
    daemon can record the reason and carry on.  Every failure to read a raw file, whatever
    its cause, surfaces as this type: callers catch exactly one exception.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        message: str,
        *,
        event: int | None = None,
        offset: int | None = None,
        fragment: int | None = None,
    ) -> None:
        self.path = os.fsdecode(path) if path is not None else "<memory>"
        self.reason = message
        self.event = event
        self.offset = offset
        self.fragment = fragment
        where = [f"file {self.path!r}"]
        if event is not None:
            where.append(f"event {event}")
        if fragment is not None:
            where.append(f"fragment {fragment}")
        if offset is not None:
            where.append(f"byte offset {offset}")
        super().__init__(f"{message} ({', '.join(where)})")
