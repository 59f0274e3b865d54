"""The overview in a real headless Chromium: a clean run is green, faults turn their cells red.

The real server (uvicorn in a thread, its checker loop every 0.3 s) over a real SQLite
bookkeeping; run 1 is clean and the pinned reference, run 2 has a lifetime drop, a LEM gain
drop and a noisy card.  Waits are "until it shows", never timing assertions.  Screenshots go to
artifacts/screenshots/.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from farmtools.bookkeeping import Bookkeeping
from farmtools.monitor.server import MonitorServer
from tests.integration.monitor.farmdata import make_config, write_reco, write_summary

pytestmark = pytest.mark.browser
NOW = datetime.now(UTC).replace(microsecond=0)
WAIT_MS = 20_000
RED = "rgb(229, 56, 59)"


def _cell(item: str) -> str:
    task, it = item.split("/")
    return f"#overview a.ov-cell[data-task={task}][data-item={it}]"


def test_faults_turn_their_cells_red_with_a_reason(
    chromium_browser: Any, tmp_path: Path, screenshot_dir: Path
) -> None:
    cfg = make_config(tmp_path / "farm", poll_s=0.3)
    bk = Bookkeeping.from_config(cfg)
    summaries = cfg.path(cfg.analysis.summary_dir)
    write_summary(summaries, 1, NOW - timedelta(hours=1), (7000.0, 6900.0))
    write_reco(cfg.home, 1, dead=[], noisy=[])
    srv = MonitorServer(cfg, host="127.0.0.1", port=0, bk=bk).start()
    srv.monitor.references.pin("*", 1)
    ctx = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(srv.url + "/")
        # the clean run: green, and nothing red anywhere
        for item in ("purity/vs_time", "lem_gain/map", "pedestals/noise", "pedestals/pedestal"):
            page.wait_for_selector(f"{_cell(item)}[data-state=good]", timeout=WAIT_MS)
        assert page.locator("#overview a.ov-cell[data-state=error]").count() == 0
        assert "run 1, reference run 1" in page.inner_text("#ov-worst")
        assert page.get_attribute("#ov-worst", "data-state") in ("good", "too_few")
        page.screenshot(path=str(screenshot_dir / "monitor-overview-clean.png"))

        # run 2 broken on purpose: each fault turns its own cell red with its reason
        write_summary(summaries, 2, NOW, (1500.0, 6800.0), gains={5: (60.0, 60.0)})
        write_reco(cfg.home, 2, dead=[], noisy=list(range(64, 128)))
        reasons = {
            "purity/vs_time": "view 0 = 1500 us, below 2000 us",
            "lem_gain/map": "LEM 5 12.0 (-40% vs run 1)",
            "pedestals/noise": "64 noisy (view 0: 64-127)",
        }
        for item, reason in reasons.items():
            page.wait_for_selector(f"{_cell(item)}[data-state=error]", timeout=WAIT_MS)
            assert reason in page.inner_text(f"{_cell(item)} .ov-reason")
            colour = page.eval_on_selector(_cell(item), "e => getComputedStyle(e).backgroundColor")
            assert colour == RED
        assert page.get_attribute(_cell("asymmetry/per_lem"), "data-state") == "good"
        assert page.get_attribute("#ov-worst", "data-state") == "error"
        assert "ERROR" in page.inner_text("#ov-worst") and "run 2" in page.inner_text("#ov-worst")
        page.wait_for_selector("#alarms li.alarm[data-kind='check:lem_gain/map']", timeout=WAIT_MS)
        page.screenshot(path=str(screenshot_dir / "monitor-overview-faults.png"))

        # a click opens the plot of the cell
        page.click(_cell("lem_gain/map"))
        page.wait_for_function(
            "(() => { const d = document.getElementById('plot').data;"
            " return !!d && d[0].type === 'heatmap'; })()",
            timeout=WAIT_MS,
        )
        assert page.url.endswith("#lem_gain/map") and page.is_hidden("#overview")
        assert errors == []
    finally:
        ctx.close()
        srv.stop()
        bk.close()
