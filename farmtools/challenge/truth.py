"""The analyses' results beside what the emulator injected (its truth sidecars).

The analysis stage writes one summary per group of reconstructed files, the seed's text and its
JSON twin (``.json`` next to the ``.txt``); this module reads the JSON and pulls out what can be compared with the
truth: the combined electron lifetime (``tau_us`` of a ``combined`` block) and the effective gain
per LEM (objects with ``lem`` and ``gain``, or a ``gains`` mapping).  It is deliberately lenient
about the layout, so a summary with more fields still compares; a summary it cannot read is
listed with the reason, never dropped.  Pure functions over files; imports the standard library.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


def injected(truth_paths: Iterable[Path]) -> dict[str, Any]:
    """The injected lifetime (us) and gain map from the first readable truth sidecar."""
    for p in truth_paths:
        try:
            doc = json.loads(Path(p).read_text())
        except (OSError, ValueError):
            continue
        inj = doc.get("injected", {})
        life_ms = inj.get("lifetime_ms")
        return {
            "lifetime_us": None if life_ms is None else float(life_ms) * 1000.0,
            "gain_map": {str(k): float(v) for k, v in (inj.get("gain_map") or {}).items()},
            "asymmetry": inj.get("asymmetry"),
        }
    return {}


def _walk(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, (*path, str(i)))


def extract(doc: Any) -> dict[str, Any]:
    """Combined lifetime (us, error), gain per LEM and its fit error, found anywhere in a summary.

    The errors are kept so that a comparison with the truth can be judged against what the
    sample allows (a dozen events give a lifetime to ~30 %), not against a fixed band.
    """
    lifetime: tuple[float, float | None] | None = None
    gains: dict[str, float] = {}
    gain_errors: dict[str, float] = {}
    for path, obj in _walk(doc):
        if not isinstance(obj, dict):
            continue
        if "tau_us" in obj and (lifetime is None or "combined" in path):
            tau = obj.get("tau_us")
            if isinstance(tau, int | float):
                err = obj.get("error_us")
                lifetime = (float(tau), float(err) if isinstance(err, int | float) else None)
        if "lem" in obj:
            g = obj.get("gain", obj.get("effective_gain"))
            if isinstance(g, int | float) and math.isfinite(g):
                gains[str(obj["lem"])] = float(g)
                e = obj.get("gain_err")
                if isinstance(e, int | float) and math.isfinite(e):
                    gain_errors[str(obj["lem"])] = float(e)
        if isinstance(obj.get("gains"), dict):
            for k, v in obj["gains"].items():
                if isinstance(v, int | float):
                    gains[str(k)] = float(v)
    return {"lifetime": lifetime, "gains": gains, "gain_errors": gain_errors}


def analyses_vs_truth(outputs: Sequence[Path], truth_paths: Sequence[Path]) -> list[dict[str, Any]]:
    """One entry per analysis summary: its numbers, the truth, and a one-line comparison."""
    truth = injected(truth_paths)
    out: list[dict[str, Any]] = []
    for p in outputs:
        p = Path(p).with_suffix(".json")  # the seed text summary's JSON twin
        entry: dict[str, Any] = {"summary": str(p), "truth": truth}
        try:
            found = extract(json.loads(p.read_text()))
        except (OSError, ValueError) as exc:
            entry["summary_line"] = f"{p.name}: unreadable ({exc})"
            out.append(entry)
            continue
        entry.update(found)
        parts = [p.name + ":"]
        lt = found["lifetime"]
        want = truth.get("lifetime_us")
        if lt is not None:
            tau, err = lt
            text = f"lifetime {tau:.0f}" + (f" +- {err:.0f}" if err is not None else "") + " us"
            if want:
                text += f" (injected {want:.0f} us, {100 * (tau / want - 1):+.1f} %)"
                entry["lifetime_bias"] = tau / want - 1
            parts.append(text)
        g = found["gains"]
        gmap = truth.get("gain_map") or {}
        if g:
            ratios = [v / gmap[k] for k, v in g.items() if gmap.get(k)]
            text = f"gain over {len(g)} LEMs mean {sum(g.values()) / len(g):.2f}"
            if ratios:
                mean_bias = sum(ratios) / len(ratios) - 1
                worst = max(abs(r - 1) for r in ratios)
                entry["gain_bias_mean"] = mean_bias
                entry["gain_bias_worst"] = worst
                text += f" (vs injected: mean {100 * mean_bias:+.1f} %, worst {100 * worst:.1f} %)"
            parts.append(text)
        if len(parts) == 1:
            parts.append("no lifetime or gain found")
        entry["summary_line"] = " ".join(parts)
        out.append(entry)
    return out
