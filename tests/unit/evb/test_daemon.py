"""The builder as a daemon: follows growing streams (inotify), times out a lonely fragment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from farmtools.detector import geometry
from farmtools.emulator.l1streams import Faults, L1Plan, emulate_l1_run
from farmtools.evb.builder import BuilderSettings, L2Builder
from tests.eventually import eventually

GEO = geometry("6x6x6:20")


def _settings(tmp: Path, pair_timeout_s: float, flush_s: float) -> BuilderSettings:
    return BuilderSettings(
        in_dir=tmp / "l1",
        out_dir=tmp / "l2",
        setaside_dir=tmp / "aside",
        geometry=GEO,
        pair_timeout_s=pair_timeout_s,
        flush_s=flush_s,
        idle_s=1.0,
    )


@contextmanager
def _running(builder: L2Builder) -> Iterator[None]:
    """The builder's daemon loop in a thread, stopped on exit."""
    stop = threading.Event()
    daemon = threading.Thread(target=builder.run, args=(stop.is_set, 0.05), daemon=True)
    daemon.start()
    try:
        yield
    finally:
        stop.set()
        daemon.join(timeout=30)


def test_daemon_builds_while_streams_grow_and_times_out_the_missing(tmp_path: Path) -> None:
    s = _settings(tmp_path, pair_timeout_s=1.0, flush_s=0.2)
    builder = L2Builder(s)
    with _running(builder):
        faults = Faults(missing=((0, 5),), late=(1, 0.5), truncated=((0, 1),))
        plan = L1Plan(
            run=3, events=24, fragments_per_file=8, physics=False, rate_hz=40.0, faults=faults
        )
        truth = emulate_l1_run(tmp_path / "l1", GEO, plan)
        exp = truth["expected"]
        c = builder.counts[3]
        eventually(
            lambda: c.built + c.incomplete == exp["built"] + exp["incomplete"] and c.pending == 0,
            60,
            "the run built",
        )
    assert (c.built, c.incomplete, c.truncated) == (
        exp["built"],
        exp["incomplete"],
        exp["truncated"],
    )
    assert exp["incomplete"] == 2  # the missing fragment, and the partner of the truncated one
    assert c.fragments_in == truth["emitted"]
    # a restarted builder finds the same counts from what was written
    again = L2Builder(replace(s))
    again.drain()
    assert again.counts[3] == c


def test_a_stream_later_than_the_pair_timeout_gives_incomplete_events_then_late_fragments(
    tmp_path: Path,
) -> None:
    builder = L2Builder(_settings(tmp_path, pair_timeout_s=0.3, flush_s=0.1))
    with _running(builder):
        plan = L1Plan(run=8, events=4, physics=False, faults=Faults(late=(1, 2.0)))
        truth = emulate_l1_run(tmp_path / "l1", GEO, plan)
        c = builder.counts[8]
        eventually(lambda: c.late == 4, 60, "the late fragments set aside")
    # every trigger written once, incomplete (stream 1 came 2 s after the 0.3 s time-out)
    assert (c.built, c.incomplete, c.late, c.pending) == (0, 4, 4, 0)
    assert c.fragments_in == truth["emitted"] == [4, 4]
    assert len(list((tmp_path / "aside").glob("8_*_1_late_*.frag"))) == 4


def test_the_daemon_beats_with_a_bookkeeping_and_says_when_it_stopped(tmp_path: Path) -> None:
    from farmtools.bookkeeping.db import Bookkeeping

    bk = Bookkeeping(f"sqlite:///{tmp_path / 'bk.sqlite'}")
    builder = L2Builder(replace(_settings(tmp_path, 1.0, 0.2), builder_id="b", builders=("b",)), bk)
    try:
        with _running(builder):
            eventually(lambda: [h.daemon for h in bk.heartbeats()], 30, "a beat")
            (beat,) = bk.heartbeats()
            assert beat.daemon == "evb-b" and beat.stopped is None
        (beat,) = bk.heartbeats()
        assert beat.stopped is not None
    finally:
        bk.close()
