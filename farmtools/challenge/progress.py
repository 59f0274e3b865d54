"""How far a challenge's files got, read from the bookkeeping for its progress bars and its end.

:func:`snapshot` is one look: each file's state, and how many good files reached each story
stage (stored, reconstructed, analysed; the archived ones by name).  :func:`past_reconstruction`
says whether every file is past reconstruction; :class:`Bars` shows the counts.  Imports the
bookkeeping (SQLAlchemy and rich lazily).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from farmtools.bookkeeping import Bookkeeping, Event
from farmtools.bookkeeping.states import BEFORE_RECO

if TYPE_CHECKING:
    from rich.console import Console

    from farmtools.challenge.chaos import Fault

#: The stages the progress bars show, in order (``written`` is the emulator's own count).
BARS = ("written", "stored", "reconstructed", "analysed", "archived")


def snapshot(
    bk: Bookkeeping, run_numbers: Sequence[int], good: list[str], bad: list[str]
) -> dict[str, Any]:
    """Files of the challenge's runs per state, and per story stage (one query each)."""
    from sqlalchemy import func, select

    from farmtools.bookkeeping.schema import events, files

    goodset = set(good)
    states: dict[str, str] = {}
    for run in run_numbers:
        for rec in bk.files(run=run):
            states[rec.name] = str(rec.state)
    q = (
        select(events.c.event, func.count(func.distinct(events.c.file_id)))
        .join(files, files.c.id == events.c.file_id)
        .where(
            files.c.run.in_(run_numbers),
            files.c.name.in_(good),
            events.c.event.in_(
                [
                    Event.VERIFIED,
                    Event.ALREADY_STORED,
                    Event.RECONSTRUCTED,
                    Event.ANALYSED,
                    "archived",
                ]
            ),
        )
        .group_by(events.c.event)
    )
    with bk.engine.connect() as conn:
        per_event = {e: int(n) for e, n in conn.execute(q)}
    archived_q = (
        select(files.c.name)
        .join(events, files.c.id == events.c.file_id)
        .where(files.c.run.in_(run_numbers), events.c.event == "archived")
        .distinct()
    )
    with bk.engine.connect() as conn:
        archived = {r[0] for r in conn.execute(archived_q)} & goodset
    return {
        "states": states,
        "good": good,
        "bad": bad,
        "stored": per_event.get(Event.VERIFIED, 0),
        "reconstructed": per_event.get(Event.RECONSTRUCTED, 0),
        "analysed": per_event.get(Event.ANALYSED, 0),
        "archived": archived,
    }


def past_reconstruction(snap: dict[str, Any]) -> bool:
    """Every file of the snapshot is known and past reconstruction (or failed, quarantined)."""
    states = snap["states"]
    names = snap["good"] + snap["bad"]
    return not any(states.get(n) is None or states[n] in BEFORE_RECO for n in names)


class Bars:
    """The progress bars of a challenge (rich), one per stage of :data:`BARS`, and the faults
    printed above them as they are carried out."""

    def __init__(self, console: Console, total: int, enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self.progress = Progress(*columns, console=console, disable=not enabled)
        self.tasks = {k: self.progress.add_task(k, total=total) for k in BARS}
        self.faults_shown = 0

    def __enter__(self) -> Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def show(self, snap: dict[str, Any], faults: Sequence[Fault]) -> None:
        """The counts of ``snap``, and the faults not yet printed."""
        counts = {k: snap[k] for k in ("stored", "reconstructed", "analysed")}
        counts.update(written=len(snap["good"]), archived=len(snap["archived"]))
        for k in BARS:
            self.progress.update(self.tasks[k], completed=counts[k])
        for f in faults[self.faults_shown :]:
            self.print(
                f"  [magenta]fault[/magenta] {f.done_at_s:.1f} s {f.kind} {f.target}: {f.details}"
            )
        self.faults_shown = len(faults)

    def print(self, text: str) -> None:
        self.progress.console.print(text)
