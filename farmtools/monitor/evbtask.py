"""The monitor's "Event building (6x6x6)" task: the L2 builders' counts of one run, from the bookkeeping.

One bar per count (fragments in per L1 stream, events built and incomplete, fragments set aside
by reason, pending), a reference run overlaid: what the shift looks at to see that the two L1
streams pair up and nothing is lost.  Registered on import, like the built-in tasks.
"""

from __future__ import annotations

from typing import Any

from farmtools.monitor.tasks import Context, Figure, Item, MonTask, empty_figure, register

#: Bars, in order: (key in the counts, label).
BARS = (
    ("fragments_in0", "L1 stream 0 in"),
    ("fragments_in1", "L1 stream 1 in"),
    ("built", "built"),
    ("incomplete", "incomplete"),
    ("duplicates", "duplicates"),
    ("mismatches", "mismatches"),
    ("late", "late"),
    ("truncated", "truncated"),
    ("corrupt", "corrupt"),
    ("pending", "pending"),
)


@register
class EventBuilding(MonTask):
    """Counts of the 6x6x6 L2 event builders per run (table ``evb_counts``)."""

    name = "evb"
    title = "Event building (6x6x6)"

    def items(self, ctx: Context) -> list[Item]:
        return [Item("counts", "Counts per run")]

    def read(self, ctx: Context, item: str, run: int | None) -> Any:
        if ctx.queries is None:
            return None
        counts = ctx.queries.evb_counts(ctx.cfg.monitor.runs_shown)
        if not counts:
            return None
        chosen = max(counts) if run is None else run
        if chosen not in counts:
            return None
        return {"run": chosen, "counts": counts[chosen]}

    def draw(self, item: str, data: Any, reference: Any | None) -> Figure:
        title = "Event building"
        if data is None:
            return empty_figure(title, "no 6x6x6 run built in the shown runs")
        labels = [label for _k, label in BARS]
        traces = [
            {
                "type": "bar",
                "name": f"run {data['run']}",
                "x": labels,
                "y": [data["counts"].get(k, 0) for k, _l in BARS],
            }
        ]
        if reference is not None:
            traces.append(
                {
                    "type": "bar",
                    "name": f"run {reference['run']} (reference)",
                    "x": labels,
                    "y": [reference["counts"].get(k, 0) for k, _l in BARS],
                }
            )
        return {
            "data": traces,
            "layout": {
                "title": {"text": f"{title}, run {data['run']}"},
                "yaxis": {"title": {"text": "fragments / events"}},
                "barmode": "group",
            },
        }
