"""The plugin interface of the monitoring page: :class:`MonTask` and its registry.

The seed's ROOT GUI had one class per monitoring task deriving from ``MonTask`` with three
things: the names of its items in the tree, how to read a result, how to draw it.  The web page
keeps that shape, so a new task is one class and one decorator::

    from farmtools.monitor.checks import CheckResult, State
    from farmtools.monitor.tasks import Item, MonTask, register

    @register
    class TriggerRate(MonTask):
        name = "trigger_rate"
        title = "Trigger rate"

        def items(self, ctx):
            return [Item("rate", "Triggers per run")]

        def read(self, ctx, item, run):
            return {"runs": [...], "rate": [...]}     # from ctx.bookkeeping / ctx.results

        def draw(self, item, data, reference):
            return {"data": [{"type": "bar", "x": data["runs"], "y": data["rate"]}],
                    "layout": {"title": {"text": "Triggers per run"}}}

        def check(self, ctx, item, data, reference):     # optional: judged in the overview
            if data is None:
                return CheckResult(State.TOO_FEW, "no run yet")
            low = data["rate"][-1] < 0.5 * reference["rate"][-1] if reference else False
            return CheckResult(State.ERROR if low else State.GOOD, "rate halved" if low else "ok")

``draw`` returns a plotly figure as a plain dict (``data`` + ``layout``), which the page hands
to plotly.js unchanged; ``reference`` is what ``read`` returned for the reference run (or None).
``check`` (optional; :mod:`farmtools.monitor.checks`) judges ``data`` against ``reference`` and
the limits of ``[monitor]``: the overview shows its state, the checker stores it and raises an
alarm on an error.
Modules listed in ``monitor.plugins`` are imported at start, so a farm can add tasks without
touching farmtools.  Imports only the standard library, :mod:`farmtools.monitor.checks` (and types of the modules it
names).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from farmtools.monitor.checks import CheckResult

if TYPE_CHECKING:
    from farmtools.config import FarmConfig
    from farmtools.monitor.queries import FarmQueries, Totals
    from farmtools.monitor.store import SummaryStore

Figure = dict[str, Any]


@dataclass(frozen=True)
class Item:
    """One leaf of the task tree: ``id`` (in URLs, stable) and ``title`` (shown)."""

    id: str
    title: str


@dataclass
class Context:
    """What tasks read from: the configuration, the database queries and the analysis results."""

    cfg: FarmConfig
    queries: FarmQueries | None
    results: SummaryStore
    totals: Totals | None


class MonTask(ABC):
    """A monitoring task: its items in the tree, how to read a result, how to draw it."""

    #: identifier in URLs and in the tree (lowercase, no spaces)
    name: ClassVar[str]
    #: shown in the tree
    title: ClassVar[str]
    #: False for tasks that show the whole farm (data flow): the run selector does not apply
    per_run: ClassVar[bool] = True

    @abstractmethod
    def items(self, ctx: Context) -> list[Item]:
        """The items of this task in the tree."""

    @abstractmethod
    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        """The data of ``item`` for ``run`` (None: the latest); None when there is none yet."""

    @abstractmethod
    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        """A plotly figure (dict) of ``data``, with ``reference`` (another run's data) overlaid."""

    def check(
        self, ctx: Context, item: str, data: Any, reference: Any | None
    ) -> CheckResult | None:
        """The verdict on ``data`` (what ``read`` gave), against ``reference`` and the limits.

        None (the default): this item has no check; it shows as "none" in the overview.
        ``data`` is None when there is no result: most checks then say too few.
        """
        return None


_T = TypeVar("_T", bound=type[MonTask])

#: Registered tasks by name, in registration order (the order of the tree).
TASKS: dict[str, type[MonTask]] = {}


def register(cls: _T) -> _T:
    """Class decorator: add a :class:`MonTask` to the page (a second class of a name replaces it)."""
    if not (isinstance(cls, type) and issubclass(cls, MonTask)):
        raise TypeError(f"{cls!r} is not a MonTask subclass")
    name = getattr(cls, "name", "")
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"{cls.__name__}.name must be a non-empty identifier, got {name!r}")
    TASKS[name] = cls
    return cls


def empty_figure(title: str, message: str) -> Figure:
    """A figure with only a centred message ("no result yet"), so the page never shows nothing."""
    return {
        "data": [],
        "layout": {
            "title": {"text": title},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [
                {
                    "text": message,
                    "showarrow": False,
                    "font": {"size": 16},
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                }
            ],
        },
    }


def finite(values: Iterable[float | None]) -> list[float | None]:
    """Numbers for JSON: NaN and infinities become None (plotly draws a gap)."""
    return [v if v is not None and math.isfinite(v) else None for v in values]
