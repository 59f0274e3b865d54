"""The monitoring page in a real headless Chromium: loads, tree, live update, alarm banner.

The server is the real one (uvicorn in a thread on a free loopback port, MonitorServer); the
page polls every 0.3 s, so waits below are "until it shows", never timing assertions.
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from farmtools.monitor.server import MonitorServer
from tests.integration.monitor.farmdata import Farm, make_farm, write_reco, write_summary

pytestmark = pytest.mark.browser
NOW = datetime.now(UTC).replace(microsecond=0)
WAIT_MS = 20_000


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Farm, MonitorServer]]:
    farm = make_farm(tmp_path / "farm", poll_s=0.3, stuck_max=5)
    write_summary(farm.summary_dir, 1, NOW - timedelta(hours=2), (7000.0, 6500.0))
    write_summary(
        farm.summary_dir, 2, NOW - timedelta(hours=1), (6000.0, 6200.0), gains={3: (80.0, 120.0)}
    )
    write_reco(farm.home, 1)
    srv = MonitorServer(farm.cfg, host="127.0.0.1", port=0, bk=farm.bk).start()
    try:
        yield farm, srv
    finally:
        srv.stop()
        farm.bk.close()


@pytest.fixture
def page(chromium_browser: Any, served: tuple[Farm, MonitorServer]) -> Iterator[Any]:
    _, srv = served
    ctx = chromium_browser.new_context(viewport={"width": 1280, "height": 760})
    p = ctx.new_page()
    p.requests_seen = []
    p.errors_seen = []
    p.on("request", lambda r: p.requests_seen.append(r.url))
    p.on("pageerror", lambda e: p.errors_seen.append(str(e)))
    p.goto(srv.url + "/")
    try:
        yield p
    finally:
        ctx.close()


def _plot(page: Any, js: str) -> None:
    page.wait_for_function(
        f"(() => {{ const d = document.getElementById('plot').data; return !!d && ({js}); }})()",
        timeout=WAIT_MS,
    )


def test_page_tree_live_update_and_alarm(
    page: Any, served: tuple[Farm, MonitorServer], screenshot_dir: Path
) -> None:
    farm, srv = served
    # loads on the overview; the tree's first item draws two lifetime points per view
    page.wait_for_selector("#ov-worst", timeout=WAIT_MS)
    assert page.url.endswith("#overview")
    page.click("#tree a[data-task=purity][data-item=vs_time]")
    page.wait_for_selector("#tree a.active", timeout=WAIT_MS)
    tasks = page.eval_on_selector_all("#tree details", "els => els.map(e => e.dataset.task)")
    assert tasks[:6] == ["purity", "lem_gain", "asymmetry", "charge", "pedestals", "dataflow"]
    _plot(page, "d[0].x.length === 2")
    page.wait_for_selector("#plot .main-svg")
    assert page.locator("#run option").all_inner_texts()[:3] == ["latest", "2", "1"]
    page.screenshot(path=str(screenshot_dir / "monitor-lifetime.png"))

    # the tree works: the gain map, then the pedestals with a reference, then the data flow
    page.click("#tree a[data-task=lem_gain][data-item=map]")
    _plot(page, "d[0].type === 'heatmap'")
    assert page.get_attribute("#tree a[data-task=lem_gain][data-item=map]", "class") == "active"
    assert page.url.endswith("#lem_gain/map")
    page.screenshot(path=str(screenshot_dir / "monitor-gain-map.png"))
    page.click("#tree a[data-task=pedestals][data-item=noise]")
    page.select_option("#run", "1")
    _plot(page, "d.some(t => t.name === 'dead (2)') && d.some(t => t.name === 'noisy (3)')")
    page.screenshot(path=str(screenshot_dir / "monitor-noise.png"))
    page.click("#tree a[data-task=dataflow][data-item=files_per_run]")
    _plot(page, "d.some(t => t.name === 'analysed')")
    assert page.is_disabled("#ref")  # the data flow is farm-wide: no reference run
    page.screenshot(path=str(screenshot_dir / "monitor-dataflow.png"))

    # live: a result written after the page opened appears without a reload
    page.select_option("#run", "latest")
    page.click("#tree a[data-task=purity][data-item=vs_run]")
    _plot(page, "d[0].x.length === 2")
    page.evaluate("window.__notReloaded = true")
    write_summary(farm.summary_dir, 3, NOW, (5000.0, 5100.0))
    _plot(page, "d[0].x.length === 3 && d[0].x[2] === 3")
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#run option')).some(o => o.value === '3')",
        timeout=WAIT_MS,
    )
    assert page.evaluate("window.__notReloaded") is True
    assert page.is_hidden("#alarms")

    # an alarm: a lifetime below monitor.lifetime_min_us shows in the banner, still no reload
    write_summary(farm.summary_dir, 4, NOW + timedelta(minutes=1), (1500.0, 6000.0))
    page.wait_for_selector("#alarms li.alarm[data-kind='lifetime_low:view0']", timeout=WAIT_MS)
    assert "run 4" in page.inner_text("#alarms")
    _plot(page, "d[0].x.length === 4")
    assert page.evaluate("window.__notReloaded") is True
    page.screenshot(path=str(screenshot_dir / "monitor-alarm.png"))

    # a summary file that cannot be read is named to the shift crew, with the parser's message
    assert page.is_hidden("#status")
    (farm.summary_dir / "purity_run5.txt").write_text("281126 134501\n7000 300 6800\n")
    page.wait_for_selector("#status:not([hidden])", timeout=WAIT_MS)
    assert page.inner_text("#status") == "1 unreadable summary file"
    assert "purity_run5.txt, line 2" in (page.get_attribute("#status", "title") or "")

    # everything came from the monitor itself (closed farm network), and no script error
    assert page.requests_seen and all(u.startswith(srv.url) for u in page.requests_seen)
    assert page.errors_seen == []


#: The colour of a pixel of the view image in the browser: the PNG decoded by Chromium itself.
PIXEL_JS = """async ([view, x, y]) => {
  const src = document.querySelectorAll('#plot image')[view].getAttribute('href');
  const img = new Image();
  img.src = src;
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  return [img.naturalWidth, img.naturalHeight, Array.from(g.getImageData(x, y, 1, 1).data)];
}"""


def test_event_display(page: Any, served: tuple[Farm, MonitorServer], screenshot_dir: Path) -> None:
    from farmtools.detector import WA105_3X1X1 as G
    from farmtools.monitor.eventdisplay import TIME_BIN
    from tests.integration.monitor.farmdata import event_hits, write_event_files

    farm, srv = served
    write_event_files(farm.home, 2, n_events=3)
    page.wait_for_selector("#tree a[data-task=event]", timeout=WAIT_MS)
    assert page.is_hidden("#evctl")
    page.click("#tree a[data-task=event][data-item=views]")
    # the newest event: run 2, seq 0, event 2 of 3, with its hits and both tracks
    page.wait_for_selector("#plot[data-event='2/0/2']", timeout=WAIT_MS)
    _plot(page, "d.filter(t => t.legendgroup === 'hits').length === 2")
    hits = page.evaluate(
        "document.getElementById('plot').data.filter(t => t.legendgroup === 'hits')"
        ".map(t => t.x.length)"
    )
    want = event_hits(2)
    assert hits == [sum(1 for v, _, _ in want if v == k) for k in (0, 1)]
    assert (
        page.evaluate("document.getElementById('plot').data.filter(t => t.mode === 'lines').length")
        == 2
    )
    assert page.is_visible("#evctl") and page.is_disabled("#ref")
    assert page.get_attribute("#ev-event", "placeholder") == "2 of 3"
    # the waveform images, decoded by the browser: a pulse where a hit is, white where none is
    rows = -(-G.samples // TIME_BIN)
    for view, n_ch in ((0, G.channels_per_view[0]), (1, G.channels_per_view[1])):
        _, ch, tick = next(h for h in want if h[0] == view)
        w, h, rgba = page.evaluate(PIXEL_JS, [view, ch, rows - 1 - tick // TIME_BIN])
        assert (w, h) == (n_ch, rows)
        assert rgba[:3] != [255, 255, 255] and min(rgba[:3]) < 200, rgba  # a coloured pulse
        _, _, empty = page.evaluate(PIXEL_JS, [view, ch, 5])  # far from any track
        assert min(empty[:3]) > 150, empty  # pale: noise of 2 ADC
    page.screenshot(path=str(screenshot_dir / "monitor-event-display.png"))

    # previous event, then back to following the newest
    page.click("#ev-prev")
    page.wait_for_selector("#plot[data-event='2/0/1']", timeout=WAIT_MS)
    assert page.input_value("#ev-event") == "1"
    _plot(page, f"d.some(t => t.mode === 'lines' && Math.round(t.x[0]) === {40 + 10})")
    page.click("#ev-latest")
    page.wait_for_selector("#plot[data-event='2/0/2']", timeout=WAIT_MS)
    # a new file of the run: "newest" follows it without a reload
    page.evaluate("window.__notReloaded = true")
    write_event_files(farm.home, 2, seq=1, n_events=1)
    page.wait_for_selector("#plot[data-event='2/1/0']", timeout=WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True
    assert all(u.startswith(srv.url) for u in page.requests_seen)
    assert page.errors_seen == []


def test_dead_and_noisy_channel_list(
    page: Any, served: tuple[Farm, MonitorServer], screenshot_dir: Path
) -> None:
    page.wait_for_selector("#tree a[data-task=pedestals]", timeout=WAIT_MS)
    page.click("#tree a[data-task=pedestals][data-item=bad_channels]")
    page.select_option("#run", "1")
    _plot(page, "d[0].type === 'table' && d[0].cells.values[0].length === 4")
    # what the shift crew reads on the screen: the table's cells as drawn by plotly
    page.wait_for_selector("#plot .table-control-view", timeout=WAIT_MS)
    text = page.inner_text("#plot")
    for cell in ("dead", "noisy", "view 0", "view 1", "380", "10-11", "680"):
        assert cell in text, cell
    assert "2 dead" in text and "3 noisy" in text
    page.screenshot(path=str(screenshot_dir / "monitor-bad-channels.png"))
    assert page.errors_seen == []


def test_a_trend_of_one_point_reads_in_hours(
    chromium_browser: Any, tmp_path: Path, screenshot_dir: Path
) -> None:
    farm = make_farm(tmp_path / "farm", poll_s=0.3)
    write_summary(farm.summary_dir, 1, NOW - timedelta(minutes=5), (7000.0, 6500.0))
    srv = MonitorServer(farm.cfg, host="127.0.0.1", port=0, bk=farm.bk).start()
    ctx = chromium_browser.new_context(viewport={"width": 1280, "height": 760})
    try:
        page = ctx.new_page()
        page.goto(srv.url + "/#purity/vs_time")
        _plot(page, "d[0].x.length === 1")
        page.wait_for_selector("#plot .xtick text", timeout=WAIT_MS)
        span_ms = page.evaluate(
            "(() => { const r = document.getElementById('plot')._fullLayout.xaxis.range;"
            " return Date.parse(r[1].replace(' ', 'T')) - Date.parse(r[0].replace(' ', 'T')); })()"
        )
        assert span_ms >= 3600 * 1000  # plotly alone: 2 ms
        ticks = page.eval_on_selector_all("#plot .xtick text", "els => els.map(e => e.textContent)")
        assert len(ticks) >= 2 and not any("." in t for t in ticks), ticks  # no 20:33:12.9995
        page.screenshot(path=str(screenshot_dir / "monitor-one-point-trend.png"))
    finally:
        ctx.close()
        srv.stop()
        farm.bk.close()


def test_pinned_reference_overlaid_with_the_difference(
    page: Any, served: tuple[Farm, MonitorServer], screenshot_dir: Path
) -> None:
    farm, srv = served
    write_reco(farm.home, 2, dead=[5, *range(384, 416)], noisy=[])  # a dead card in run 2
    srv.monitor.references.pin("pedestals", 1)
    page.wait_for_selector("#tree a[data-task=pedestals]", timeout=WAIT_MS)
    page.click("#tree a[data-task=pedestals][data-item=noise]")
    page.select_option("#run", "2")
    assert page.input_value("#ref") == "pinned"  # by default: each plot's pinned reference
    _plot(
        page,
        "d.some(t => t.name === 'reference run 1')"
        " && d.some(t => t.name === 'run 2 - reference run 1' && t.yaxis === 'y2')",
    )
    page.wait_for_selector("#plot .y2tick", timeout=WAIT_MS)  # the lower panel is drawn
    diff = page.evaluate(
        "document.getElementById('plot').data.find(t => t.yaxis === 'y2').y.slice(384, 416)"
    )
    assert diff == [-1.5] * 32
    page.screenshot(path=str(screenshot_dir / "monitor-reference-overlay.png"))
    # "none" takes the overlay away
    page.select_option("#ref", "none")
    _plot(page, "!d.some(t => (t.name || '').includes('reference'))")
    assert page.errors_seen == []
