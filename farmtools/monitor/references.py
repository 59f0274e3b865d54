"""Reference runs of the monitor's items: pinned in farm.toml or with ``farmtools monitor reference``.

A check compares an item's result with the same item of a reference run (a run the experts
declared good).  The reference is pinned per *spec*: ``"task/item"`` (one item), ``"task"``
(every item of a task) or ``"*"`` (everything); the most specific spec wins.  Pins made with the
CLI live in the bookkeeping's ``dqm_references`` table and win over ``monitor.references`` of
farm.toml (the file is the farm's default, the CLI what the shift decided since).

Imports SQLAlchemy, the bookkeeping's schema and :mod:`farmtools.monitor.checkstore` (its write transaction).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from farmtools.bookkeeping.schema import dqm_references, now
from farmtools.monitor.checkstore import write_transaction

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from farmtools.config import FarmConfig

#: Pins read from the database are reused for this long (a page request asks for many items).
CACHE_S = 2.0


class ReferenceSpecError(ValueError):
    """A spec that names no task or item; the message says what is expected."""


def specs_of(task: str, item: str) -> tuple[str, str, str]:
    """The specs that may pin ``task/item``, most specific first."""
    return (f"{task}/{item}", task, "*")


class References:
    """The pinned reference runs (farm.toml and the bookkeeping's ``dqm_references``)."""

    def __init__(self, cfg: FarmConfig, engine: Engine | None) -> None:
        self.cfg = cfg
        self.engine = engine
        self._cache: tuple[float, dict[str, int]] | None = None

    def pinned(self) -> dict[str, int]:
        """The CLI's pins (spec -> run), from the database (cached :data:`CACHE_S`)."""
        if self.engine is None:
            return {}
        hit = self._cache
        if hit is not None and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        with self.engine.connect() as conn:
            pins = {
                s: int(r)
                for s, r in conn.execute(select(dqm_references.c.spec, dqm_references.c.run))
            }
        self._cache = (time.monotonic(), pins)
        return pins

    def all(self) -> dict[str, int]:
        """Every pin in force: farm.toml's, overridden by the CLI's."""
        return {**self.cfg.monitor.references, **self.pinned()}

    def get(self, task: str, item: str) -> int | None:
        """The reference run of ``task/item`` (None: none pinned)."""
        pins = self.pinned()
        toml = self.cfg.monitor.references
        for source in (pins, toml):
            for spec in specs_of(task, item):
                if spec in source:
                    return source[spec]
        return None

    def pin(self, spec: str, run: int) -> None:
        """Pin ``run`` as the reference of ``spec`` (replacing an earlier pin of that spec)."""
        self._need_db()
        assert self.engine is not None
        with write_transaction(self.engine) as conn:
            conn.execute(delete(dqm_references).where(dqm_references.c.spec == spec))
            conn.execute(insert(dqm_references).values(spec=spec, run=run, pinned=now()))
        self._cache = None

    def unpin(self, spec: str) -> bool:
        """Remove the CLI's pin of ``spec``; False when there was none."""
        self._need_db()
        assert self.engine is not None
        with write_transaction(self.engine) as conn:
            n = conn.execute(delete(dqm_references).where(dqm_references.c.spec == spec)).rowcount
        self._cache = None
        return bool(n)

    def _need_db(self) -> None:
        if self.engine is None:
            raise ReferenceSpecError("pinning a reference run needs the bookkeeping database")


def validate_spec(spec: str, tree: dict[str, set[str]]) -> str:
    """``spec`` if it names a task/item of ``tree`` (task -> item ids), a task, or "*"."""
    if spec == "*":
        return spec
    task, _, item = spec.partition("/")
    if task not in tree:
        raise ReferenceSpecError(f"{spec!r}: no task {task!r} (farmtools monitor tasks lists them)")
    if item and item not in tree[task]:
        raise ReferenceSpecError(
            f"{spec!r}: task {task!r} has no item {item!r} (it has {', '.join(sorted(tree[task]))})"
        )
    return spec
