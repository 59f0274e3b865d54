"""Emulated files: readable by the reader, continued runs, truth, schedule, growth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from farmtools.detector import WA105_3X1X1 as G
from farmtools.emulator.daq import RunPlan, copy_template, emulate_run
from farmtools.emulator.event import EventGenerator
from farmtools.emulator.settings import EmulatorSettings
from farmtools.emulator.truth import truth_path
from farmtools.rawdata import RawDataError, RawFile
from farmtools.rawdata.format import EVENT_HEADER_SIZE, RUN_HEADER_SIZE, uncompressed_file_size

EVENT_BYTES = EVENT_HEADER_SIZE + G.payload_bytes


@pytest.mark.parametrize("compress", [False, True])
def test_files_validate_and_hold_the_generated_events(tmp_path: Path, compress: bool) -> None:
    settings = EmulatorSettings(seed=42)
    files = emulate_run(
        tmp_path, settings, RunPlan(run=12, files=2, events_per_file=2, compress=compress)
    )
    assert [f.path.name for f in files] == ["run12-seq0.dat", "run12-seq1.dat"]
    # The same seed regenerates the same events: the file holds exactly them, in view order.
    gen = EventGenerator(G, settings, np.random.default_rng([42, 12, 0]))
    triggers = []
    for f in files:
        raw = RawFile.open(f.path, G)
        raw.validate()
        assert raw.n_events == 2
        for i, header in enumerate(raw.headers):
            adc, _truth = gen.next_event()
            assert np.array_equal(raw.event(i).adc, adc)
            assert header.compressed == compress
            triggers.append((header.trigger_number, header.seconds * 10**9 + header.nanoseconds))
        size = f.path.stat().st_size
        if compress:
            assert size < uncompressed_file_size(2, G.payload_bytes)
        else:
            assert size == uncompressed_file_size(2, G.payload_bytes)
    assert [t for t, _ in triggers] == [0, 1, 2, 3]
    times = [ns for _, ns in triggers]
    assert times == sorted(times) and len(set(times)) == 4


def test_sequence_and_triggers_continue_a_run(tmp_path: Path) -> None:
    emulate_run(tmp_path, EmulatorSettings(seed=1), RunPlan(run=5, files=2, events_per_file=1))
    emulate_run(tmp_path, EmulatorSettings(seed=1), RunPlan(run=6, files=1, events_per_file=1))
    later = emulate_run(
        tmp_path, EmulatorSettings(seed=1), RunPlan(run=5, files=2, events_per_file=2)
    )
    assert [f.seq for f in later] == [2, 3]
    assert [f.first_trigger for f in later] == [2, 4]
    assert (tmp_path / "run6-seq0.dat").exists() and not (tmp_path / "run6-seq1.dat").exists()
    headers = [
        h for seq in range(4) for h in RawFile.open(tmp_path / f"run5-seq{seq}.dat", G).headers
    ]
    assert [h.trigger_number for h in headers] == [0, 1, 2, 3, 4, 5]
    t = [h.seconds * 10**9 + h.nanoseconds for h in headers]
    assert t == sorted(t)
    # Without sidecars the trigger count comes from the newest file's headers.
    for seq in range(4):
        truth_path(tmp_path / f"run5-seq{seq}.dat").unlink()
    again = emulate_run(
        tmp_path, EmulatorSettings(seed=1), RunPlan(run=5, files=1, events_per_file=1)
    )
    assert again[0].seq == 4 and again[0].first_trigger == 6


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    junk = tmp_path / "run3-seq0.dat"
    junk.write_bytes(b"not a raw file")
    files = emulate_run(
        tmp_path, EmulatorSettings(seed=1), RunPlan(run=3, files=1, events_per_file=1)
    )
    assert files[0].seq == 1 and files[0].first_trigger == 0
    assert junk.read_bytes() == b"not a raw file"


def test_truth_sidecar(tmp_path: Path) -> None:
    gains = {lem: 10.0 + lem for lem in range(1, 13)}
    settings = EmulatorSettings(
        seed=9, lifetime_ms=4.5, gain_map=gains, asymmetry=0.1, crt_fraction=1.0
    )
    (f,) = emulate_run(tmp_path, settings, RunPlan(run=2, files=1, events_per_file=3))
    # beside the DAQ directory, not in it: ingest watches that one, and the real DAQ writes no
    # such file there
    assert f.truth == tmp_path.with_name(tmp_path.name + "-truth") / "run2-seq0.truth.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run2-seq0.dat"]
    doc = json.loads(f.truth.read_text())
    assert doc["format"] == "farmtools-emulator-truth/1"
    assert (doc["file"], doc["run"], doc["seq"], doc["seed"]) == ("run2-seq0.dat", 2, 0, 9)
    inj = doc["injected"]
    assert inj["lifetime_ms"] == 4.5 and inj["asymmetry"] == 0.1
    assert inj["gain_map"] == {str(k): v for k, v in gains.items()}
    assert inj["drift_field_kv_per_cm"] == 0.5 and inj["drift_velocity_mm_per_us"] == 1.6056
    headers = RawFile.open(f.path, G).headers
    assert len(doc["events"]) == 3
    for ev, h in zip(doc["events"], headers, strict=True):
        assert ev["trigger_number"] == h.trigger_number
        assert (ev["seconds"], ev["nanoseconds"]) == (h.seconds, h.nanoseconds)
        assert ev["trigger"] == "CRT" and h.trigger_type == 1
        trig = [t for t in ev["tracks"] if t["trigger"]]
        assert len(trig) == 1 and trig[0]["t0_us"] == 0.0 and trig[0]["anode_cathode"]
        assert trig[0]["entry_cm"][2] == 0.0 and trig[0]["exit_cm"][2] == pytest.approx(100.0)
        assert trig[0]["collected_fc"][1] > trig[0]["collected_fc"][0]  # A = 0.1 favours view 1
    assert doc["last_trigger_number"] == headers[-1].trigger_number


def test_interval_schedule_is_honoured(tmp_path: Path) -> None:
    """With a fake clock: each file waits for its slot start + k * interval, none is skipped."""
    now = [1000.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    def clock() -> float:
        now[0] += 0.001  # every look at the clock takes a little time
        return now[0]

    files = emulate_run(
        tmp_path,
        EmulatorSettings(seed=1),
        RunPlan(run=1, files=3, events_per_file=1, interval_s=60.0),
        clock=clock,
        sleep=sleep,
    )
    assert len(sleeps) == 2 and all(s > 59.0 for s in sleeps)
    start = files[0].scheduled_s
    for k, f in enumerate(files):
        assert f.scheduled_s == pytest.approx(start + 60.0 * k)
        assert f.started_s >= f.scheduled_s and f.closed_s > f.started_s
    # Real clock, short interval: files are closed in order (mtimes) and start no earlier than
    # their slot.
    real = emulate_run(
        tmp_path,
        EmulatorSettings(seed=1),
        RunPlan(run=2, files=3, events_per_file=1, interval_s=0.2),
    )
    mtimes = [f.path.stat().st_mtime_ns for f in real]
    assert mtimes == sorted(mtimes)
    assert all(f.started_s >= f.scheduled_s for f in real)


def test_file_is_visible_while_written_and_footer_comes_at_close(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []

    def on_event(path: Path, n: int) -> None:
        size = path.stat().st_size
        seen.append((n, size))
        assert size == RUN_HEADER_SIZE + n * EVENT_BYTES  # no footer yet
        with pytest.raises(RawDataError):
            RawFile.open(path, G).validate()

    (f,) = emulate_run(
        tmp_path,
        EmulatorSettings(seed=1),
        RunPlan(run=4, files=1, events_per_file=3),
        on_event=on_event,
    )
    assert [n for n, _ in seen] == [1, 2, 3]
    assert f.path.stat().st_size == seen[-1][1] + 4
    with f.path.open("rb") as fh:
        fh.seek(-4, 2)
        assert fh.read() == b"\xf0\xf0\x00\x03"
    RawFile.open(f.path, G).validate()


def test_stop_request_closes_the_current_file_cleanly(tmp_path: Path) -> None:
    count = [0]

    def stop() -> bool:
        return count[0] >= 2

    def on_event(_path: Path, _n: int) -> None:
        count[0] += 1

    files = emulate_run(
        tmp_path,
        EmulatorSettings(seed=1),
        RunPlan(run=8, files=3, events_per_file=5),
        on_event=on_event,
        should_stop=stop,
    )
    assert len(files) == 1 and files[0].events == 2
    raw = RawFile.open(files[0].path, G)
    raw.validate()
    assert raw.n_events == 2


def test_template_copies_rewrite_only_the_run_number(tmp_path: Path) -> None:
    src_dir = tmp_path / "src"
    (src,) = emulate_run(
        src_dir, EmulatorSettings(seed=1), RunPlan(run=1, files=1, events_per_file=2, compress=True)
    )
    out = tmp_path / "out"
    copies = copy_template(
        src.path, out, RunPlan(run=77, files=2, interval_s=0.0), chunk_bytes=1 << 16
    )
    assert [c.path.name for c in copies] == ["run77-seq0.dat", "run77-seq1.dat"]
    original = src.path.read_bytes()
    for c in copies:
        data = c.path.read_bytes()
        assert data[:4] == (77).to_bytes(4, "big") and data[4:] == original[4:]
        raw = RawFile.open(c.path, G)
        raw.validate()
        assert raw.n_events == 2
    # A bad template is refused with an error naming it, and nothing is written.
    bad = tmp_path / "bad.dat"
    bad.write_bytes(original[:1000])
    with pytest.raises(RawDataError, match=r"bad\.dat"):
        copy_template(bad, tmp_path / "none", RunPlan(run=1))
    assert not (tmp_path / "none").exists()
