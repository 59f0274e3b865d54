"""The summary readers (seed format, JSON) and the incremental SummaryStore."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farmtools.monitor.store import OLDER_EVERY, SummaryStore
from farmtools.monitor.summary import (
    INFINITE_US,
    SummaryError,
    read_json_summary,
    read_seed_summary,
    run_from_name,
)

SEED = """281126 134501
7000.0 300.0 100000.0 100000.0
1 98.0 2.0 102.0 2.5
2 40.0 1.0 60.0 1.5
"""


def test_seed_summary_fields(tmp_path: Path) -> None:
    p = tmp_path / "summary_run1014_seq0-3.txt"
    p.write_text(SEED)
    r = read_seed_summary(p)
    assert r.run == 1014
    assert r.time == datetime(2026, 11, 28, 13, 45, 1, tzinfo=UTC)
    assert r.lifetime_us == (7000.0, INFINITE_US)
    assert r.lifetime_err_us == (300.0, INFINITE_US)
    assert sorted(r.lems) == [1, 2]
    # the seed's definitions: G = (Q0 + Q1) / 10 fC/cm, A = (Q1 - Q0) / (Q1 + Q0)
    assert r.lems[1].gain == pytest.approx(20.0)
    assert r.lems[2].gain == pytest.approx(10.0)
    assert r.lems[2].asymmetry == pytest.approx(0.2)
    assert r.lems[1].dqds_err == (2.0, 2.5)


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("28-11-26 13:45\n1 2 3 4\n", 1, "time stamp"),
        ("281126 134501\n7000 300 6000\n", 2, "expected 4 numbers"),
        ("281126 134501\n7000 300 6000 abc\n", 2, "not a number"),
        ("281126 134501\n7000 300 6000 200\n1 2 3 4 5\n2 2 3 4\n", 4, "LEM line"),
        ("281126 134501\n7000 300 6000 200\n1.5 2 3 4 5\n", 3, "LEM number"),
        ("281126 134501\n", 2, "too short"),
        ("321326 134501\n1 2 3 4\n", 1, "time stamp"),
    ],
)
def test_seed_summary_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    p = tmp_path / "purity_run7.txt"
    p.write_text(text)
    with pytest.raises(SummaryError) as exc:
        read_seed_summary(p)
    assert exc.value.line == line
    assert str(p) in str(exc.value)
    assert what in str(exc.value)


def test_seed_summary_needs_a_run(tmp_path: Path) -> None:
    p = tmp_path / "summary.txt"
    p.write_text(SEED)
    with pytest.raises(SummaryError, match="no run number"):
        read_seed_summary(p)
    assert read_seed_summary(p, run=3).run == 3
    assert run_from_name("a/b/gain_run0042_seq1.txt") == 42


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "run5.dat"
    p.write_bytes(b"\xff\xff\x00\x01")
    with pytest.raises(SummaryError, match="not a text file"):
        read_seed_summary(p)


def test_json_summary_both_shapes(tmp_path: Path) -> None:
    a = tmp_path / "a_run3.json"
    a.write_text(
        json.dumps(
            {
                "run": 3,
                "time": "2026-11-28T10:00:00+00:00",
                "lifetime_us": [5000, 5100],
                "lifetime_err_us": [200, 210],
                "lems": [
                    {
                        "lem": 4,
                        "dqds": [90, 110],
                        "dqds_err": [1, 1],
                        "gain": 19.5,
                        "asymmetry": 0.1,
                    }
                ],
            }
        )
    )
    r = read_json_summary(a)
    assert (r.run, r.lifetime_us, r.lems[4].gain, r.lems[4].asymmetry) == (
        3,
        (5000, 5100),
        19.5,
        0.1,
    )
    b = tmp_path / "b_run4.json"
    b.write_text(
        json.dumps(
            {
                "time": "2026-11-28T11:00:00",
                "purity": {
                    "views": [{"tau_us": 4000, "error_us": 100}, {"tau_us": 4200, "error_us": 120}]
                },
                "lems": [{"lem": 1, "dqds": [50, 50]}],
            }
        )
    )
    r = read_json_summary(b)
    assert r.run == 4 and r.lifetime_us == (4000, 4200) and r.lems[1].gain == pytest.approx(10.0)
    assert r.time.tzinfo is not None
    bad = tmp_path / "c_run5.json"
    bad.write_text(json.dumps({"run": 5}))
    with pytest.raises(SummaryError, match="no lifetime"):
        read_json_summary(bad)


def test_store_reads_new_changed_and_removed_files(tmp_path: Path) -> None:
    store = SummaryStore(tmp_path, min_interval=0.0)
    assert not store.refresh() and store.results() == []
    sub = tmp_path / "run1"
    sub.mkdir()
    (sub / "purity_run1_a.txt").write_text(SEED)
    assert store.refresh()
    assert [r.run for r in store.results()] == [1]
    v = store.version
    assert not store.refresh()  # nothing new: no re-read, same version
    assert store.version == v
    (tmp_path / "purity_run2_a.txt").write_text(SEED.replace("281126 134501", "291126 080000"))
    (tmp_path / "broken_run3.txt").write_text("garbage\n")
    assert store.refresh()
    assert store.runs() == [1, 2]
    assert store.latest().run == 2  # type: ignore[union-attr]
    assert "broken_run3.txt" in next(iter(store.errors))
    # a JSON twin (same stem) is merged with the seed file's result; the twin's numbers win
    # (it has the analysis's calibrated gains), the seed file's extra LEM is kept
    (tmp_path / "purity_run2_a.json").write_text(
        json.dumps(
            {
                "run": 2,
                "time": "2026-11-29T08:00:00+00:00",
                "lifetime_us": [1, 2],
                "lifetime_err_us": [0, 0],
                "lems": [{"lem": 1, "dqds": [1, 1]}, {"lem": 9, "dqds": [60, 60]}],
            }
        )
    )
    store.refresh()
    assert len(store.for_run(2)) == 1
    r2 = store.latest(2)
    assert r2 is not None and r2.lifetime_us == (1.0, 2.0)
    assert sorted(r2.lems) == [1, 2, 9] and r2.lems[1].dqds == (1.0, 1.0)
    assert r2.lems[2].dqds == (40.0, 60.0)
    # a changed file is read again
    p = sub / "purity_run1_a.txt"
    p.write_text(SEED.replace("7000.0 300.0", "6000.0 300.0"))
    os.utime(p, ns=(1, 1))
    store.refresh()
    assert store.latest(1).lifetime_us[0] == 6000.0  # type: ignore[union-attr]
    p.unlink()
    store.refresh()
    assert store.runs() == [2]


def test_store_skips_partial_files(tmp_path: Path) -> None:
    (tmp_path / "purity_run1.txt.part").write_text("half")
    store = SummaryStore(tmp_path, min_interval=0.0)
    store.refresh()
    assert store.results() == [] and store.errors == {}


def test_comments_and_purity_only(tmp_path: Path) -> None:
    p = tmp_path / "purity_run8.txt"
    p.write_text(
        "# written by farmtools analyse purity\n281126 134501\n\n# tau\n7000 300 6800 250\n"
    )
    r = read_seed_summary(p)
    assert r.lifetime_us == (7000.0, 6800.0) and r.lems == {}
    p.write_text("# x\n281126 134501\n7000 300 6800\n")
    with pytest.raises(SummaryError) as exc:
        read_seed_summary(p)
    assert exc.value.line == 3  # the line number in the file, comments counted


def test_run_from_the_folder(tmp_path: Path) -> None:
    d = tmp_path / "run1014" / "seq0-3"
    d.mkdir(parents=True)
    (d / "purity.txt").write_text(SEED)
    (tmp_path / "notes.txt").write_text("not a result, no run: ignored\n")
    store = SummaryStore(tmp_path, min_interval=0.0)
    store.refresh()
    assert store.runs() == [1014] and store.errors == {}


def test_gain_appended_later_and_separate_gain_file(tmp_path: Path) -> None:
    store = SummaryStore(tmp_path, min_interval=0.0)
    purity = tmp_path / "purity_run3.txt"
    purity.write_text("281126 134501\n7000.0 300.0 6900.0 310.0\n")
    store.refresh()
    assert store.latest(3).lems == {}  # type: ignore[union-attr]
    assert store.latest(3, with_lems=True) is None
    with purity.open("a") as f:  # the gain analysis appends its LEM lines
        f.write("1 98.0 2.0 102.0 2.5\n")
    os.utime(purity, ns=(2, 2))
    v = store.version
    assert store.refresh() and store.version > v
    assert sorted(store.latest(3, with_lems=True).lems) == [1]  # type: ignore[union-attr]
    # another layout: a separate gain file repeating the purity lines: one result, merged
    (tmp_path / "gain_run3.txt").write_text(
        "281126 134501\n7000.0 300.0 6900.0 310.0\n2 40.0 1.0 60.0 1.5\n"
    )
    store.refresh()
    assert len(store.for_run(3)) == 1
    assert sorted(store.latest(3).lems) == [1, 2]  # type: ignore[union-attr]
    # a second analysis of the run in the same second (other files, other lifetime): apart
    (tmp_path / "purity_run3_b.txt").write_text("281126 134501\n5000.0 300.0 5100.0 310.0\n")
    store.refresh()
    assert sorted(r.lifetime_us[0] for r in store.for_run(3)) == [5000.0, 7000.0]


def _analysis(folder: Path, run: int, k: int, tau: float) -> Path:
    """One seed-format analysis of run ``run`` (the k-th), in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"analysis_run{run}_seq{4 * k}-{4 * k + 3}.txt"
    p.write_text(f"0{1 + k % 9}0126 {k % 24:02d}0000\n{tau} 10 {tau} 10\n1 95 1 105 1\n")
    os.utime(p, ns=(k, 10**9 * (run * 100 + k)))  # newer analyses are newer files
    return p


def _looks_until_changed(store: SummaryStore) -> int:
    for n in range(1, 2 * OLDER_EVERY + 1):
        if store.refresh():
            return n
    return 10**6


def test_window_older_runs_and_on_demand(tmp_path: Path) -> None:
    """Only the newest run folders are kept in full; older runs by their newest analysis, and
    in full when asked for; an older folder is read again only when its mtime moves."""
    for run in range(1, 11):
        for k in range(5):
            _analysis(tmp_path / f"run{run}", run, k, 1000.0 * run + k)
    store = SummaryStore(tmp_path, min_interval=0.0, window=8)
    assert store.refresh()
    assert store.runs() == list(range(1, 11))
    assert sorted({r.run for r in store.results()}) == [9, 10]  # 2 folders hold >= 8 results
    assert len(store.results()) == 10
    latest = store.latest_per_run(100)
    assert [r.run for r in latest] == list(range(1, 11))
    assert [r.lifetime_us[0] for r in latest] == [1000.0 * r + 4 for r in range(1, 11)]
    assert store.latest(3).lifetime_us[0] == 3004.0  # type: ignore[union-attr]
    assert [r.lifetime_us[0] for r in store.for_run(3)] == [3000.0 + k for k in range(5)]
    assert not store.refresh()  # nothing moved
    # a new analysis in an old run's folder is seen (its folder's mtime moved) within
    # OLDER_EVERY looks
    _analysis(tmp_path / "run3", 3, 7, 3333.0)
    assert _looks_until_changed(store) <= OLDER_EVERY
    assert store.latest(3).lifetime_us[0] == 3333.0  # type: ignore[union-attr]
    assert len(store.for_run(3)) == 6
    # a new run: the window moves on, run 9 becomes an older run
    for k in range(8):
        _analysis(tmp_path / "run11", 11, k, 11000.0 + k)
    assert store.refresh()
    assert sorted({r.run for r in store.results()}) == [10, 11]
    assert store.latest(9).lifetime_us[0] == 9004.0  # type: ignore[union-attr]
    # a broken newest file of an older run is reported, not fatal
    bad = tmp_path / "run2" / "analysis_run2_seq99-99.txt"
    bad.write_text("nonsense\n")
    os.utime(bad, ns=(1, 10**9 * 300))
    assert _looks_until_changed(store) <= OLDER_EVERY
    assert any("analysis_run2_seq99-99.txt, line 2: too short" in e for e in store.errors.values())


def test_reads_what_the_analysis_writes(tmp_path: Path) -> None:
    """The contract with farmtools.analysis: its writer's files, at its paths, read back."""
    import math

    from farmtools.analysis.gain import MIP_MPV_REF, MIP_TM_REF, GainResult, lem_gain
    from farmtools.analysis.purity import Lifetime
    from farmtools.analysis.summary import write_summary

    t = datetime(2026, 11, 28, 13, 45, 1, 250000, tzinfo=UTC)
    views = [Lifetime(7000.0, 300.0, math.nan, math.nan), Lifetime(INFINITE_US, INFINITE_US, 0, 0)]
    path = tmp_path / "run1014" / "analysis_run1014_seq0-3.txt"
    write_summary(path, t, None, ["run1014-seq0.dat"], None, views)  # purity only, no run
    store = SummaryStore(tmp_path, min_interval=0.0)
    store.refresh()
    (r,) = store.results()
    assert (r.run, r.lifetime_us, r.lems) == (1014, (7000.0, INFINITE_US), {})
    assert store.errors == {}
    stats = [(50, 95.0, 1.0, 80.0, 1.0), (50, 105.0, 1.5, 90.0, 1.2)]
    lems = [lem_gain(k, stats, MIP_TM_REF, MIP_MPV_REF) for k in range(1, 13)]
    lems[4].dqds = [math.nan, math.nan]  # a cell with too few hits
    lems[4].gain = lems[4].asymmetry = math.nan
    gain = GainResult(lems, 7000.0, 1200, 30, MIP_TM_REF, MIP_MPV_REF)
    write_summary(path, t, 1014, ["run1014-seq0.dat"], None, views, gain)
    store.refresh()
    (r,) = store.results()
    assert store.errors == {} and sorted(r.lems) == list(range(1, 13))
    assert r.lems[1].gain == pytest.approx(lems[0].gain)  # the analysis's calibrated gain
    assert r.lems[1].asymmetry == pytest.approx(lems[0].asymmetry)
    assert r.lems[1].dqds == (95.0, 105.0) and r.lems[1].dqds_err == (1.0, 1.5)
    assert math.isnan(r.lems[5].gain)
    assert store.latest(1014, with_lems=True) is r
