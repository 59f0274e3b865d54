"""Running the checks of every task item, and the overview built from their stored results.

:class:`CheckRunner` judges every checked item of a run (each task's ``check`` on what its
``read`` returns for the run and for the item's reference run) and the farm-wide items over the
recent window, stores the verdicts (:class:`~farmtools.monitor.checkstore.CheckStore`) and says
which changed, so that the alarm checker raises an alarm on a new error and clears it when the
check is good again.  :func:`overview` is the page's first view: every task and item as a cell
with its state, the worst state rolled up, the current run and its reference runs; it reads only
the stored results (one indexed query), never the analyses themselves.

Imports the monitor's tasks, checks, checkstore and references modules.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from typing import TYPE_CHECKING, Any

from farmtools.monitor.checks import CheckResult, State, worst
from farmtools.monitor.checkstore import CheckStore, StoredCheck, stored
from farmtools.monitor.tasks import Context, MonTask

if TYPE_CHECKING:
    from farmtools.monitor.references import References

log = logging.getLogger("farmtools.monitor")


def has_check(task: MonTask) -> bool:
    """Whether the task overrides :meth:`MonTask.check` (else its items show "none")."""
    return type(task).check is not MonTask.check


class CheckRunner:
    """Judges the items of a run (or the newest), stores the verdicts."""

    def __init__(
        self, ctx: Context, tasks: dict[str, MonTask], refs: References, store: CheckStore
    ) -> None:
        self.ctx = ctx
        self.tasks = tasks
        self.refs = refs
        self.store = store
        #: items whose task has a check that returned None for them (no check of their own)
        self.unchecked: set[tuple[str, str]] = set()

    def current_run(self) -> int | None:
        """The newest run the farm knows: in the bookkeeping, the analyses or the reco outputs."""
        from farmtools.monitor.recofiles import reco_files

        known: list[int] = []
        if self.ctx.queries is not None:
            known += self.ctx.queries.run_numbers(1)
        latest = self.ctx.results.latest()
        if latest is not None:
            known.append(latest.run)
        reco = reco_files(self.ctx.cfg, None)
        if reco:
            known.append(int(reco[-1].parent.name[3:]))
        return max(known, default=None)

    def judge(self, name: str, item: str, run: int | None) -> StoredCheck | None:
        """One item's verdict for ``run`` (None for a farm-wide task): None if it has no check."""
        task = self.tasks[name]
        ref_run = self.refs.get(name, item) if task.per_run else None
        try:
            data = task.read(self.ctx, item, run)
            # the reference run judged against itself is good by construction (and says so)
            reference = task.read(self.ctx, item, ref_run) if ref_run is not None else None
            result = task.check(self.ctx, item, data, reference)
        except Exception as exc:  # one broken check (or plugin) must not stop the others
            log.exception("check %s/%s of run %s failed", name, item, run)
            result = CheckResult(State.WARNING, f"check failed: {type(exc).__name__}: {exc}")
        if result is None:
            self.unchecked.add((name, item))
            return None
        return stored(name, item, run if task.per_run else None, result, ref_run)

    def evaluate(self, run: int | None = None) -> list[StoredCheck]:
        """Judge every checked item of ``run`` (None: the current run) and the farm-wide ones."""
        if run is None:
            run = self.current_run()
        out: list[StoredCheck] = []
        for name, task in self.tasks.items():
            if not has_check(task) or (task.per_run and run is None):
                continue
            for it in task.items(self.ctx):
                if (name, it.id) in self.unchecked:  # said once it has no check: not read again
                    continue
                r = self.judge(name, it.id, run if task.per_run else None)
                if r is not None:
                    out.append(r)
        return out

    def run(self, run: int | None = None) -> tuple[list[StoredCheck], list[StoredCheck]]:
        """Evaluate and store: (every verdict, the verdicts that changed)."""
        results = self.evaluate(run)
        return results, self.store.save(results)


def overview(
    tasks: dict[str, MonTask],
    ctx: Context,
    store: CheckStore,
    refs: References,
    run: int | None = None,
    unchecked: Set[tuple[str, str]] = frozenset(),
) -> dict[str, Any]:
    """The overview's data: a cell per task item, the worst state on top, runs named.

    ``run`` None: the newest run with stored checks.  Items without a check (their task has
    none, or ``unchecked`` names them), or not judged yet, are "none" cells.
    """
    if run is None:
        run = store.latest_run()
    rows = (store.for_run(run) if run is not None else []) + store.window()
    by_key = {(r.task, r.item): r for r in rows}
    pins = refs.all()
    groups = []
    cells_all: list[dict[str, Any]] = []
    for name, task in tasks.items():
        cells = []
        for it in task.items(ctx):
            r = by_key.get((name, it.id))
            cell: dict[str, Any] = {
                "task": name,
                "item": it.id,
                "title": it.title,
                "state": r.state.label if r else State.NONE.label,
                "reason": r.reason
                if r
                else ("no check" if not has_check(task) else "not judged yet"),
                "reference": r.reference if r else None,
                "time": r.time.isoformat(timespec="seconds") if r and r.time else None,
                "details": r.details if r else {},
            }
            cells.append(cell)
        cells_all += cells
        groups.append(
            {
                "name": name,
                "title": task.title,
                "per_run": task.per_run,
                "state": worst(State.parse(c["state"]) for c in cells).label,
                "cells": cells,
            }
        )
    w = worst(State.parse(c["state"]) for c in cells_all)
    return {
        "run": run,
        "reference": pins.get("*"),
        "references": pins,
        "worst": w.label,
        "worst_cells": [
            {"task": c["task"], "item": c["item"], "reason": c["reason"]}
            for c in cells_all
            if c["state"] == w.label and w > State.GOOD
        ],
        "tasks": groups,
    }
