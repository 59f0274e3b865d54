"""Properties of the archive planner (pure): every file once, never split, runs kept whole."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farmtools.archive.planner import (
    PlanError,
    PlanFile,
    check_tag,
    parse_runs,
    parse_size,
    plan_auto,
    plan_selection,
)


@st.composite
def file_sets(draw: st.DrawFn) -> list[PlanFile]:
    runs = draw(st.lists(st.integers(1000, 1040), min_size=0, max_size=12, unique=True))
    out = []
    for run in runs:
        sizes = draw(st.lists(st.integers(1, 1200), min_size=1, max_size=6))
        out += [PlanFile(run, seq, f"run{run}-seq{seq}.dat", s) for seq, s in enumerate(sizes)]
    return out


sizes = st.tuples(st.integers(1, 3000), st.integers(0, 3000)).map(lambda t: (t[0], min(t[1], t[0])))


def _runs_of(files: tuple[PlanFile, ...] | list[PlanFile]) -> set[int]:
    return {f.run for f in files}


@settings(max_examples=300, deadline=None)
@given(file_sets(), sizes, st.booleans())
def test_auto_plan_properties(files: list[PlanFile], tm: tuple[int, int], force: bool) -> None:
    target, minimum = tm
    plan = plan_auto(reversed(files), target, minimum, force=force)
    planned = [f for a in plan.archives for f in a.files]
    # every file exactly once, either planned or waiting, and in run order overall
    assert sorted(planned + list(plan.waiting)) == sorted(files)
    assert planned + list(plan.waiting) == sorted(files)
    run_size = {r: sum(f.size for f in files if f.run == r) for r in _runs_of(files)}
    for i, a in enumerate(plan.archives):
        assert a.files, "no empty archive"
        # the target is a ceiling, except for a single file that is bigger on its own
        assert a.size <= target or len(a.files) == 1
        # an archive under the minimum is one the next run would overflow (or forced at the end)
        if a.size < minimum:
            if i + 1 < len(plan.archives):
                nxt = plan.archives[i + 1].files[0]
                assert a.size + run_size[nxt.run] > target or nxt.run in _runs_of(a.files)
            else:
                assert force or plan.waiting
    # a run that fits in one archive is in exactly one archive (or waits whole)
    for run, size in run_size.items():
        holders = [a for a in plan.archives if run in a.runs]
        if size <= target:
            assert len(holders) <= 1
            if not holders:
                assert all(f in plan.waiting for f in files if f.run == run)
    # the waiting tail is under the minimum; with force nothing waits
    if force:
        assert not plan.waiting
    else:
        assert sum(f.size for f in plan.waiting) < max(minimum, 1)
    assert len({a.name for a in plan.archives}) == len(plan.archives)


@settings(max_examples=100, deadline=None)
@given(file_sets(), st.data())
def test_selection_takes_exactly_the_runs(files: list[PlanFile], data: st.DataObject) -> None:
    present = sorted(_runs_of(files))
    if not present:
        with pytest.raises(PlanError):
            plan_selection(files, [1], "hv-scan", 5000, 1000)
        return
    chosen = data.draw(st.lists(st.sampled_from(present), min_size=1, unique=True))
    plan = plan_selection(files, [*chosen, 99999], "hv-scan", 5000, 1000)
    got = [f for a in plan.archives for f in a.files]
    assert sorted(got) == sorted(f for f in files if f.run in chosen)
    assert not plan.waiting  # a selection is planned whole, even under the minimum
    assert plan.missing_runs == (99999,)
    assert all(a.tag == "hv-scan" and a.name.startswith("hv-scan_") for a in plan.archives)


def test_example_keeps_runs_together_and_waits() -> None:
    gb = 10**9
    files = [PlanFile(1012, s, f"run1012-seq{s}.dat", gb) for s in range(3)]  # 3 GB
    files += [PlanFile(1013, s, f"run1013-seq{s}.dat", gb) for s in range(4)]  # 4 GB
    files += [PlanFile(1014, 0, "run1014-seq0.dat", gb // 2)]  # 0.5 GB
    files += [PlanFile(1015, 0, "run1015-seq0.dat", gb // 4)]  # 0.25 GB
    plan = plan_auto(files, 5 * gb, gb)
    # 1013 does not fit beside 1012; 1014 and 1015 fit beside 1013 (4.75 GB)
    assert [a.runs for a in plan.archives] == [(1012,), (1013, 1014, 1015)]
    more = [*files, PlanFile(1016, 0, "run1016-seq0.dat", gb // 2)]
    plan = plan_auto(more, 5 * gb, gb)
    assert [a.runs for a in plan.archives] == [(1012,), (1013, 1014, 1015)]
    assert [f.name for f in plan.waiting] == ["run1016-seq0.dat"]  # 0.5 GB < 1 GB: waits
    forced = plan_auto(more, 5 * gb, gb, force=True)
    assert [a.runs for a in forced.archives] == [(1012,), (1013, 1014, 1015), (1016,)]
    assert forced.archives[0].name == "auto_1012.0-1012.2"


def test_parse_size_is_decimal() -> None:
    assert parse_size("5GB") == 5_000_000_000
    assert parse_size("1 gb") == 10**9
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("123") == 123
    for bad in ("", "GB", "5 XB", "-1GB", "0"):
        with pytest.raises(PlanError):
            parse_size(bad)


def test_parse_runs_and_tags() -> None:
    assert parse_runs("1012-1015,1030, 1013") == (1012, 1013, 1014, 1015, 1030)
    for bad in ("1020-1012", "abc", "1012-", ""):
        with pytest.raises(PlanError):
            parse_runs(bad)
    assert check_tag("hv-scan") == "hv-scan"
    for bad in ("", "../x", "a b", "x" * 41, "-x", "a;rm"):
        with pytest.raises(PlanError):
            check_tag(bad)
