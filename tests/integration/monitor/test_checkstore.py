"""Stored check results and pinned references on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from farmtools.bookkeeping import Bookkeeping
from farmtools.config import FarmConfig, MonitorSection
from farmtools.monitor.checks import CheckResult, State
from farmtools.monitor.checkstore import CheckStore, stored
from farmtools.monitor.references import References


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bookkeeping]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bk.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    b = Bookkeeping(url)
    yield b
    b.close()


def test_verdicts_are_written_when_they_change_and_read_per_run(bk: Bookkeeping) -> None:
    store = CheckStore(bk.engine)
    noisy = CheckResult(State.ERROR, "run 5: 64 noisy (view 0: 64-127)", {"noisy": [64, 65]})
    first = [
        stored("pedestals", "noise", 5, noisy, 1),
        stored("purity", "vs_time", 5, CheckResult(State.GOOD, "run 5: lifetime 7000, 6900 us"), 1),
        stored("dataflow", "jobs", None, CheckResult(State.WARNING, "1 failed files"), None),
    ]
    assert store.save(first) == first
    # the same verdicts again (another process's store too): nothing written
    assert store.save(first) == []
    assert CheckStore(bk.engine).save(first) == []
    got = store.for_run(5)
    assert [(r.task, r.item, r.state, r.reference) for r in got] == [
        ("pedestals", "noise", State.ERROR, 1),
        ("purity", "vs_time", State.GOOD, 1),
    ]
    assert got[0].details == {"noisy": [64, 65]}
    assert [(r.task, r.scope, r.run) for r in store.window()] == [("dataflow", "window", None)]
    assert store.run_state(5) == (State.ERROR, ["pedestals/noise: " + noisy.reason])
    assert store.latest_run() == 5
    # a changed verdict replaces the row (one row per key)
    fixed = stored("pedestals", "noise", 5, CheckResult(State.GOOD, "run 5: clean"), 1)
    assert store.save([fixed]) == [fixed]
    assert store.run_state(5) == (State.GOOD, [])
    assert len(store.for_run(5)) == 2


def test_references_most_specific_wins_cli_over_farm_toml(bk: Bookkeeping) -> None:
    cfg = FarmConfig(monitor=MonitorSection(references={"*": 3, "lem_gain": 4}))
    refs = References(cfg, bk.engine)
    assert refs.get("purity", "vs_time") == 3
    assert refs.get("lem_gain", "map") == 4
    refs.pin("lem_gain/map", 14)
    refs.pin("*", 9)
    assert refs.get("lem_gain", "map") == 14
    assert refs.get("lem_gain", "lem3") == 9  # the CLI's "*" beats farm.toml's "lem_gain"
    assert refs.all() == {"*": 9, "lem_gain": 4, "lem_gain/map": 14}
    assert refs.unpin("*") and not refs.unpin("*")
    assert refs.get("purity", "vs_time") == 3
