"""The event display's data: the PNG encoder, the waveform image, the track segments, the figure.

The figure tests read a real raw file (RawFileWriter) and a real reco output (RecoWriter,
uproot) written by ``tests/integration/monitor/farmdata.py`` with tracks at known places.
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from farmtools.detector import WA105_3X1X1 as G
from farmtools.monitor import eventdisplay as ed
from farmtools.monitor.png import indexed_png
from tests.integration.monitor.farmdata import (
    EVENT_SHIFT,
    EVENT_TRACKS,
    event_hits,
    make_config,
    write_event_files,
)


def read_png(data: bytes) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """(pixels, palette) of an indexed PNG, checking the signature, every CRC and the header."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body), kind
        chunks[kind] = body
        pos += 12 + n
    w, h, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 3)
    assert b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, w + 1)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:], np.frombuffer(chunks[b"PLTE"], np.uint8).reshape(-1, 3)


def test_indexed_png_round_trips() -> None:
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    pixels, pal = read_png(indexed_png(px, ed.palette()))
    assert (pixels == px).all()
    assert (pal == ed.palette()).all()
    with pytest.raises(ValueError, match="2-D uint8"):
        indexed_png(px.astype(np.uint16), ed.palette())
    with pytest.raises(ValueError, match="palette"):
        indexed_png(px, np.zeros((300, 3), np.uint8))


def test_colour_scale_white_at_pedestal_and_rising_with_the_signal() -> None:
    lut, pal = ed._LUT, ed.palette()
    at = lut[ed._SHIFT]
    assert tuple(pal[at]) == (255, 255, 255)
    steps = lut[ed._SHIFT + np.array([-50, -20, -5, 0, 5, 50, 300, 1000, 3000])]
    assert list(steps) == sorted(steps)  # monotonic
    assert steps[0] == steps[1] == 0 and steps[-2] == steps[-1] == 255  # clipped at both ends
    assert steps[4] > steps[3] > steps[2]


def test_view_pixels_pedestal_pulse_orientation_and_time_bins() -> None:
    ticks = 101  # odd: the last bin holds one tick
    adc = np.full((6, ticks), 400, dtype=np.uint16)
    adc[3] = 900  # another pedestal: subtracted per channel
    adc[2, 10] += 500  # a pulse of one tick on channel 2 at tick 10
    adc[4, 100] += 500  # and on the last tick
    px = ed.view_pixels(adc, time_bin=2)
    assert px.shape == (51, 6)
    quiet = ed._LUT[ed._SHIFT]
    high = ed._LUT[ed._SHIFT + 500]
    assert high > quiet
    # row 0 is the latest bin (ticks 100, padded), row 50 - 5 holds ticks 10-11
    assert px[50 - 5, 2] == high and px[0, 4] == high
    others = np.ones_like(px, dtype=bool)
    others[45, 2] = others[0, 4] = False
    assert (px[others] == quiet).all()
    assert (ed.view_pixels(adc, time_bin=1)[ticks - 1 - 10, 2]) == high


def test_track_segments_end_at_the_first_and_last_hit() -> None:
    hits: dict[str, list[int]] = {"view": [], "channel": [], "tick": [], "track": []}
    for view, ch, tick in event_hits(0):
        hits["view"].append(view)
        hits["channel"].append(ch)
        hits["tick"].append(tick)
        hits["track"].append(view)
    h = {k: np.asarray(v) for k, v in hits.items()}
    u = [(np.array([c0, c1]) + 0.5) * G.pitch_cm for _, c0, _, c1, _ in EVENT_TRACKS]
    z = [np.array([t0, t1]) * G.drift_velocity_cm_per_tick for _, _, t0, _, t1 in EVENT_TRACKS]
    d = [
        np.array([uu[1] - uu[0], zz[1] - zz[0]]) / np.hypot(uu[1] - uu[0], zz[1] - zz[0])
        for uu, zz in zip(u, z, strict=True)
    ]
    t = {
        "view": np.array([0, 1]),
        "id": np.array([0, 1]),
        "u0": np.array([u[0][0], u[1][0]]),
        "z0": np.array([z[0][0], z[1][0]]),
        "du": np.array([d[0][0], d[1][0]]),
        "dz": np.array([d[0][1], d[1][1]]),
        "n_hits": np.array([241, 401]),
    }
    segs = ed.track_segments(h, t, G)
    assert [s["view"] for s in segs] == [0, 1]
    for s, (_, c0, t0, c1, t1) in zip(segs, EVENT_TRACKS, strict=True):
        assert s["channel"] == pytest.approx([c0, c1], abs=0.6)
        assert s["tick"] == pytest.approx([t0, t1], abs=1.0)


@pytest.fixture
def farm_cfg(tmp_path: Path) -> Any:
    ed._FIGURE_CACHE.clear()
    ed._RECO_CACHE.clear()
    return make_config(tmp_path)


def _image(fig: dict[str, Any], view: int) -> npt.NDArray[np.uint8]:
    src = fig["layout"]["images"][view]["source"]
    assert src.startswith("data:image/png;base64,")
    return read_png(base64.b64decode(src.split(",", 1)[1]))[0]


def test_event_figure_draws_the_waveforms_hits_and_tracks(farm_cfg: Any) -> None:
    home = farm_cfg.farm.home
    write_event_files(home, 5, seq=0, n_events=1)
    write_event_files(home, 5, seq=1, n_events=3)
    out = ed.show_event(farm_cfg, None, None, None)  # newest: run 5, seq 1, its last event
    ev = out["event"]
    assert (ev["run"], ev["seq"], ev["event"], ev["n_events"]) == (5, 1, 2, 3)
    assert ev["trigger"] == 102
    fig = out["figure"]
    assert "Run 5 seq 1 event 2 (of 3)" in fig["layout"]["title"]["text"]
    # the hits of the event, per view, at the channels and ticks written
    want = event_hits(2)
    hits = [t for t in fig["data"] if t.get("legendgroup") == "hits"]
    for v in (0, 1):
        got = sorted(zip(hits[v]["x"], hits[v]["y"], strict=True))
        assert got == sorted((c, float(t)) for vv, c, t in want if vv == v)
    tracks = [t for t in fig["data"] if "track" in t["name"]]
    assert len(tracks) == 2
    assert tracks[0]["x"] == pytest.approx([40 + 2 * EVENT_SHIFT, 280 + 2 * EVENT_SHIFT], abs=0.6)
    # the image: the pulses are where the hits are (row 0 = the latest time bin)
    quiet = ed._LUT[ed._SHIFT]
    for v, n_ch in ((0, G.channels_per_view[0]), (1, G.channels_per_view[1])):
        img = _image(fig, v)
        rows = -(-G.samples // ed.TIME_BIN)
        assert img.shape == (rows, n_ch)
        for vv, c, t in want:
            if vv == v:
                assert img[rows - 1 - t // ed.TIME_BIN, c] > quiet + 100
        assert np.median(img) <= quiet + 40  # noise of 2 ADC stays pale
    # a chosen event of a chosen file; the same request again is the cached figure
    first = ed.show_event(farm_cfg, 5, 0, 0)
    assert first["event"]["event"] == 0 and first["event"]["seq"] == 0
    assert ed.show_event(farm_cfg, 5, 0, 0) is first
    assert first["digest"] != out["digest"]


def test_event_figure_without_reco_and_missing_files(farm_cfg: Any) -> None:
    home = farm_cfg.farm.home
    missing = ed.show_event(farm_cfg, None, None, None)
    assert missing["event"] is None
    assert "no reconstructed file yet" in missing["figure"]["layout"]["annotations"][0]["text"]
    write_event_files(home, 6, n_events=1, reco=False)  # stored, not reconstructed yet
    raw_only = ed.show_event(farm_cfg, 6, None, None)
    assert raw_only["event"]["reco"] is None
    assert "not reconstructed yet" in raw_only["figure"]["layout"]["title"]["text"]
    assert len(raw_only["figure"]["layout"]["images"]) == 2
    assert raw_only["figure"]["data"] == []
    beyond = ed.show_event(farm_cfg, 6, 0, 7)
    assert "holds events 0..0, not 7" in beyond["figure"]["layout"]["annotations"][0]["text"]
    nothing = ed.show_event(farm_cfg, 9, None, None)
    assert "run 9: no raw file" in nothing["figure"]["layout"]["annotations"][0]["text"]


def test_reco_output_without_hits_named_and_waveforms_still_shown(farm_cfg: Any) -> None:
    import uproot

    home = farm_cfg.farm.home
    _, reco = write_event_files(home, 8, n_events=1)
    assert reco is not None
    with uproot.recreate(reco) as f:  # an output with the channel histograms only
        f["rms"] = (np.ones(4), np.arange(5.0))
    out = ed.show_event(farm_cfg, 8, None, None)
    assert out["event"]["reco_error"] == f"{reco}: no hits or tracks tree"
    assert str(reco) in out["figure"]["layout"]["title"]["text"]
    assert len(out["figure"]["layout"]["images"]) == 2


def test_caches_are_bounded() -> None:
    lru = ed._LRU(3)
    for k in range(10):
        lru.put(k, k)
    assert lru.get(0) is None and lru.get(9) == 9
    assert len(lru._d) == 3
    assert ed._FIGURE_CACHE.size <= 8 and ed._RECO_CACHE.size <= 4


def test_6x6x6_event_drawn_per_crp(tmp_path: Path) -> None:
    """A 6x6x6 event file (two L1 fragments, the farm's writer) shown CRP by CRP, raw waveforms."""
    from farmtools.config import FarmConfig, FarmSection
    from farmtools.detector import geometry
    from farmtools.rawdata.pddp_writer import event_fragments, write_pddp_file

    ed._FIGURE_CACHE.clear()
    g = geometry("6x6x6").with_samples(
        60
    )  # a 6x6x6 of few samples: 115 MB events are for benchmarks
    cfg = FarmConfig(farm=FarmSection(home=tmp_path, detector="6x6x6"), base_dir=tmp_path)
    per_crp, n0 = sum(g.channels_per_view), g.channels_per_view[0]
    rng = np.random.default_rng(3)
    events = []
    for trigger in (40, 41):
        view = rng.integers(398, 403, size=(g.n_channels, g.samples), dtype=np.uint16)
        view[2 * per_crp + n0 + 5, 30] += 600  # CRP 2, view 1, channel 5, tick 30
        events.append(
            event_fragments(
                view, g, run=9, trigger_number=trigger, time_ns=1_796_675_593_000_000_000 + trigger
            )
        )
    d = tmp_path / "storage" / "input" / "run9"
    d.mkdir(parents=True)
    write_pddp_file(d / "9_0_a.dat", 9, events)
    out = ed.show_event(cfg, None, None, None, "crp2", geometry=g)  # the newest: its last event
    ev = out["event"]
    assert (ev["run"], ev["seq"], ev["event"], ev["crp"], ev["trigger"]) == (9, 0, 1, 2, 41)
    fig = out["figure"]
    assert fig["layout"]["title"]["text"].startswith("CRP 2: Run 9 seq 0 event 1 (of 2)")
    assert fig["data"] == []  # no hits or tracks of the 6x6x6 yet
    img = _image(fig, 1)
    rows = -(-g.samples // ed.TIME_BIN)
    assert img.shape == (rows, g.channels_per_view[1])
    quiet = ed._LUT[ed._SHIFT]
    assert img[rows - 1 - 30 // ed.TIME_BIN, 5] > quiet + 100
    assert (np.delete(img, 5, axis=1) < quiet + 60).all()  # nothing else lit
    other = ed.show_event(cfg, 9, 0, 0, "crp1", geometry=g)
    assert other["event"]["crp"] == 1 and other["digest"] != out["digest"]
    assert (_image(other["figure"], 1) < quiet + 60).all()  # the pulse is in CRP 2, not 1
    missing = ed.show_event(cfg, 9, 3, None, "crp0", geometry=g)
    assert (
        "run 9 seq 3: no 6x6x6 event file" in missing["figure"]["layout"]["annotations"][0]["text"]
    )
