"""The monitor's JSON API, /metrics, alarms and access rules, against a real SQLite bookkeeping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from farmtools.monitor.app import Monitor, MonitorError, build_app
from farmtools.monitor.server import MonitorServer
from tests.integration.monitor.farmdata import (
    DEAD,
    NOISY,
    Farm,
    fail_attempts,
    make_farm,
    write_reco,
    write_summary,
)
from tests.servers.smtp import SmtpServer

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    f = make_farm(tmp_path / "farm")
    write_summary(f.summary_dir, 1, NOW - timedelta(hours=2), (7000.0, 6500.0))
    write_summary(
        f.summary_dir, 2, NOW - timedelta(hours=1), (6000.0, 6200.0), gains={3: (80.0, 120.0)}
    )
    write_reco(f.home, 1)
    yield f
    f.bk.close()


@pytest.fixture
def client(farm: Farm) -> Iterator[tuple[Monitor, TestClient]]:
    m = Monitor(farm.cfg, farm.bk)
    m.totals.refresh()  # type: ignore[union-attr]
    with TestClient(build_app(m)) as c:
        yield m, c


def _fig(c: TestClient, path: str) -> dict[str, Any]:
    r = c.get(path)
    assert r.status_code == 200, r.text
    return r.json()["figure"]


def test_every_item_draws_a_valid_plotly_figure(client: tuple[Monitor, TestClient]) -> None:
    import plotly.graph_objects as go

    _, c = client
    tree = c.get("/api/tree").json()
    names = [t["name"] for t in tree]
    assert names[:6] == ["purity", "lem_gain", "asymmetry", "charge", "pedestals", "dataflow"]
    n = 0
    for t in tree:
        for it in t["items"]:
            for q in ("", "?run=1", "?run=2&ref=1", "?run=latest&ref=none"):
                fig = _fig(c, f"/api/plot/{t['name']}/{it['id']}{q}")
                go.Figure(fig)  # raises on any property plotly.js would not know
                n += 1
    assert n == 4 * sum(len(t["items"]) for t in tree)


def test_runs_and_result_plots_follow_the_data(client: tuple[Monitor, TestClient]) -> None:
    _, c = client
    assert c.get("/api/runs").json() == [2, 1]
    fig = _fig(c, "/api/plot/purity/vs_run")
    assert fig["data"][0]["x"] == [1, 2] and fig["data"][0]["y"] == [7000.0, 6000.0]
    assert fig["data"][1]["error_y"]["array"] == [6500.0 * 0.05, 6200.0 * 0.05]
    # gain map of run 2: LEM 3 (ix 0, iy 1) has (80 + 120) / 10 = 20, like the others
    z = _fig(c, "/api/plot/lem_gain/map?run=2")["data"][0]["z"]
    assert z[0][1] == pytest.approx(20.0) and all(
        v == pytest.approx(20.0) for row in z for v in row
    )
    asym = _fig(c, "/api/plot/asymmetry/per_lem?run=2&ref=1")
    assert asym["data"][0]["y"][2] == pytest.approx(0.2) and asym["data"][0]["y"][0] == 0.0
    assert asym["data"][1]["name"] == "reference run 1"
    ref = _fig(c, "/api/plot/purity/vs_time?run=2&ref=1")
    assert any("reference run 1" in (t.get("name") or "") for t in ref["data"])
    picked = next(t for t in ref["data"] if t["name"] == "run 2")  # run 2's point, ringed
    assert picked["y"] == [6000.0]
    assert not any(t["name"] == "views combined" for t in ref["data"])


def test_pedestals_flag_dead_and_noisy_channels(client: tuple[Monitor, TestClient]) -> None:
    _, c = client
    fig = _fig(c, "/api/plot/pedestals/noise?run=1")
    traces = {t["name"].split(" ")[0]: t for t in fig["data"]}
    assert traces["dead"]["x"] == DEAD and traces["noisy"]["x"] == NOISY
    assert len(traces["run"]["y"]) == 1280
    assert traces["dead"]["text"] == ["view 0 channel 5", "view 1 channel 380"]
    empty = _fig(c, "/api/plot/pedestals/pedestal?run=2")
    assert "no reconstructed file" in empty["layout"]["annotations"][0]["text"]


def test_dead_and_noisy_channels_listed_by_view_and_channel(
    client: tuple[Monitor, TestClient], farm: Farm
) -> None:
    _, c = client
    table = _fig(c, "/api/plot/pedestals/bad_channels?run=1")
    rows = list(zip(*table["data"][0]["cells"]["values"], strict=True))
    # DEAD = [5, 700], NOISY = [10, 11, 1000]: view 1 starts at view-order channel 320
    assert [r[:4] for r in rows] == [
        ("dead", "view 0", "5", 1),
        ("dead", "view 1", "380", 1),
        ("noisy", "view 0", "10-11", 2),
        ("noisy", "view 1", "680", 1),
    ]
    assert [r[4] for r in rows] == ["0.00", "0.00", "9.00", "9.00"]
    assert "2 dead (RMS < " in table["layout"]["title"]["text"]
    # a dead card in run 3 (view 1 channels 64-95), against run 1 as the reference
    write_reco(farm.home, 3, dead=[5, *range(384, 416)], noisy=[])
    table = _fig(c, "/api/plot/pedestals/bad_channels?run=3&ref=1")
    rows = list(zip(*table["data"][0]["cells"]["values"], strict=True))
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [
        ("dead", "view 0", "5", 1, "yes"),
        ("dead", "view 1", "64-95", 32, "new"),
    ]
    assert "against reference run 1" in table["layout"]["title"]["text"]
    write_reco(farm.home, 4, dead=[], noisy=[])
    clean = _fig(c, "/api/plot/pedestals/bad_channels?run=4")
    assert clean["layout"]["annotations"][0]["text"] == "no dead or noisy channel"


def test_failed_files_told_apart_from_failed_attempts(
    client: tuple[Monitor, TestClient], farm: Farm
) -> None:
    m, c = client
    # run1-seq1 failed once already (make_farm): 7 failed attempts of 1 file
    fail_attempts(farm.bk, "run1-seq1.dat", range(2, 8), "out_of_memory")
    m.totals.refresh()  # type: ignore[union-attr]
    fig = _fig(c, "/api/plot/dataflow/jobs")
    title = fig["layout"]["title"]["text"]
    assert "failed: 0 files given up, 1 file with failed attempts (7 failed attempts)" in title
    by_name = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in fig["data"]}
    assert by_name["failed attempts by class"] == {"out_of_memory": 7}
    assert by_name["files with a failed attempt, by class"] == {"out_of_memory": 1}
    metrics = c.get("/metrics").text
    assert 'farmtools_failed_files{failure="out_of_memory"} 1.0' in metrics
    assert 'farmtools_job_failures_total{failure="out_of_memory"} 7.0' in metrics


def test_dataflow_matches_the_bookkeeping(client: tuple[Monitor, TestClient], farm: Farm) -> None:
    _, c = client
    fig = _fig(c, "/api/plot/dataflow/files_per_run")
    per_state = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in fig["data"]}
    assert per_state["analysed"] == {1: 3, 2: 0}
    assert per_state["stored"] == {1: 0, 2: 2}
    assert per_state["detected"] == {1: 0, 2: 1}
    stuck = _fig(c, "/api/plot/dataflow/stuck")
    assert stuck["data"][0]["cells"]["values"][0] == ["run2-seq2.dat"]
    assert stuck["layout"]["title"]["text"].startswith("1 files stuck")
    lat = _fig(c, "/api/plot/dataflow/latency")
    assert sorted(lat["data"][0]["text"]) == sorted(
        f"run{r}-seq{s}.dat" for r, s in ((1, 0), (1, 1), (1, 2), (2, 0), (2, 1))
    )
    name = lat["data"][0]["text"][0]
    story = {e.event: e.time for e in farm.bk.story(name)}
    assert lat["data"][0]["y"][0] == pytest.approx(
        (story["verified"] - story["written"]).total_seconds()
    )
    jobs = _fig(c, "/api/plot/dataflow/jobs")
    assert dict(zip(jobs["data"][0]["x"], jobs["data"][0]["y"], strict=True))["running"] == 1
    assert jobs["data"][1]["x"] == ["out_of_memory"] and jobs["data"][1]["y"] == [1]
    assert jobs["data"][2]["y"] == [1]  # one file
    storage = _fig(c, "/api/plot/dataflow/storage")
    assert storage["data"][0]["y"] == pytest.approx([(3 * 10**9 + 3) / 1e9, (3 * 10**9 + 3) / 1e9])


def test_metrics_report_the_farm(client: tuple[Monitor, TestClient], farm: Farm) -> None:
    m, c = client
    m.checker.check()  # raises the stuck-file alarm
    farm.bk.beat("ingest", started=NOW, host="evb1")
    farm.bk.beat("processing", started=NOW, host="head", stopped=True)  # not running: no series
    r = c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }
    assert samples[("farmtools_files", (("state", "analysed"),))] == 3
    assert samples[("farmtools_ingested_files_total", ())] == 5
    assert samples[("farmtools_ingested_bytes_total", ())] == 5 * 10**9 + 0 + 1 + 2 + 0 + 1
    assert samples[("farmtools_queue_depth", (("state", "detected"),))] == 1
    assert samples[("farmtools_jobs_active", (("state", "running"),))] == 1
    assert samples[("farmtools_job_failures_total", (("failure", "out_of_memory"),))] == 1
    assert samples[("farmtools_stuck_files", ())] == 1
    # the buffer: what the DAQ wrote within the hour, per second
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    recent = [
        f.size or 0
        for f in farm.bk.files()
        if f.daq_write_time is not None and f.daq_write_time > hour_ago
    ]
    assert sum(recent) > 0
    assert samples[("farmtools_buffer_incoming_bytes_per_second", ())] == pytest.approx(
        sum(recent) / 3600, rel=1e-3
    )
    assert samples[("farmtools_buffer_used_bytes", ())] > 0
    assert samples[("farmtools_buffer_seconds_to_full", ())] > 0
    assert samples[("farmtools_alarms_open", (("source", "monitor"),))] == 1
    beats = {k: v for k, v in samples.items() if k[0] == "farmtools_daemon_beat_age_seconds"}
    assert list(beats) == [
        ("farmtools_daemon_beat_age_seconds", (("daemon", "ingest"), ("host", "evb1")))
    ]
    assert 0 <= next(iter(beats.values())) < 60
    assert samples[("farmtools_electron_lifetime_us", (("view", "0"),))] == 6000.0
    assert ("farmtools_transfer_latency_seconds", (("quantile", "0.95"),)) in samples


@pytest.mark.smtp
def test_alarm_raised_once_shown_and_mailed(
    farm: Farm, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    from tests.integration.monitor.farmdata import make_config

    cfg = make_config(farm.home, smtp_port=smtp_server.port, stuck_max=5)
    m = Monitor(cfg, farm.bk)
    with TestClient(build_app(m)) as c:
        assert m.checker.check() == []  # everything in band (and 1 stuck file <= stuck_max)
        assert c.get("/api/alarms").json() == []
        write_summary(farm.summary_dir, 3, NOW, (1500.0, 6000.0))
        m.results.refresh(force=True)
        new = m.checker.check()
        assert [b.kind for b in new] == ["lifetime_low:view0"]
        shown = c.get("/api/alarms").json()
        assert [(a["source"], a["kind"]) for a in shown] == [("monitor", "lifetime_low:view0")]
        assert "run 3" in shown[0]["message"]
        msgs = smtp_server.wait_for(1)
        assert len(msgs) == 1 and "lifetime_low:view0" in msgs[0]["Subject"]
        assert "1500" in msgs[0].get_payload()
        # another bad result: same kind still open -> no second alarm, no second mail
        write_summary(farm.summary_dir, 3, NOW + timedelta(minutes=5), (1400.0, 6000.0), tag="b")
        m.results.refresh(force=True)
        assert m.checker.check() == []
        assert len(farm.bk.alarms()) == 1 and len(smtp_server.messages) == 1
        # acknowledged, then bad again -> raised again
        farm.bk.acknowledge_alarm(shown[0]["id"])
        write_summary(farm.summary_dir, 4, NOW + timedelta(minutes=10), (1300.0, 6000.0))
        m.results.refresh(force=True)
        assert [b.kind for b in m.checker.check()] == ["lifetime_low:view0"]
        # within the digest interval of the first mail: kept for the digest, sent at its end
        # (here: the monitor stops)
        assert len(smtp_server.messages) == 1
        m.checker.flush(force=True)
        digest = smtp_server.wait_for(2)[1]
        assert digest["Subject"] == "[farmtools] monitor lifetime_low: 1 more in 10 min"
        assert "1300" in digest.get_payload()


def test_channel_alarm_from_reco_file(farm: Farm) -> None:
    from tests.integration.monitor.farmdata import make_config

    m = Monitor(make_config(farm.home, bad_channels_max=4, stuck_max=5), farm.bk)
    kinds = [b.kind for b in m.checker.check()]
    assert kinds == ["bad_channels"]  # 2 dead + 3 noisy > 4
    assert "2 dead and 3 noisy" in farm.bk.alarms()[0].message


def test_read_only_and_bad_requests(client: tuple[Monitor, TestClient]) -> None:
    _, c = client
    for path in ("/", "/api/tree", "/api/plot/purity/vs_time", "/metrics", "/static/monitor.js"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert c.request(method, path).status_code == 405, (method, path)
    assert c.get("/api/plot/purity/vs_time?run=abc").status_code == 400
    assert c.get("/api/plot/nosuch/item").status_code == 404
    assert c.get("/api/plot/purity/nosuch").status_code == 404
    page = c.get("/")
    assert page.status_code == 200 and 'data-poll-ms="5000"' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from outside the farm
    js = c.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_basic_auth(farm: Farm, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.monitor.farmdata import make_config

    cfg = make_config(farm.home, auth_user="shift", auth_password_env="FT_TEST_MON_PW")
    monkeypatch.delenv("FT_TEST_MON_PW", raising=False)
    with pytest.raises(MonitorError, match="FT_TEST_MON_PW"):
        Monitor(cfg, farm.bk)
    monkeypatch.setenv("FT_TEST_MON_PW", "s3cret:with colon")
    c = TestClient(build_app(Monitor(cfg, farm.bk)))
    assert c.get("/api/tree").status_code == 401
    assert c.get("/api/tree").headers["www-authenticate"].startswith("Basic")
    assert c.get("/api/tree", auth=("shift", "wrong")).status_code == 401
    assert c.get("/api/tree", auth=("other", "s3cret:with colon")).status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert c.get("/api/tree", auth=("shift", "s3cret:with colon")).status_code == 200


def test_new_result_changes_the_digest(client: tuple[Monitor, TestClient], farm: Farm) -> None:
    m, c = client
    first = c.get("/api/plot/purity/vs_time").json()
    assert c.get("/api/plot/purity/vs_time").json()["digest"] == first["digest"]
    write_summary(farm.summary_dir, 3, NOW, (5000.0, 5100.0))
    m.results.refresh(force=True)
    second = c.get("/api/plot/purity/vs_time").json()
    assert second["digest"] != first["digest"]
    assert len(second["figure"]["data"][0]["x"]) == 3


def test_server_thread_starts_and_stops(farm: Farm) -> None:
    srv = MonitorServer(farm.cfg, host="127.0.0.1", port=0, bk=farm.bk).start()
    try:
        url = srv.url
        assert httpx2.get(url + "/healthz").text == "ok"
        assert httpx2.get(url + "/api/runs").json() == [2, 1]
    finally:
        srv.stop()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(url + "/healthz")


def test_grafana_dashboard_plots_only_series_that_exist(client: tuple[Monitor, TestClient]) -> None:
    import json
    import re

    m, c = client
    m.checker.check()
    dash = json.loads(
        (Path(__file__).parents[3] / "roles/monitoring/files/farmtools.json").read_text()
    )
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    wanted = {n for e in exprs for n in re.findall(r"farmtools_\w+", e)}
    families = list(text_string_to_metric_families(c.get("/metrics").text))
    # a family without samples yet (no archives in this farm) is still announced by HELP/TYPE
    served = {f.name for f in families} | {s.name for f in families for s in f.samples}
    assert wanted and wanted - served == set()


def test_combined_lifetime_from_the_json_twin(
    client: tuple[Monitor, TestClient], farm: Farm
) -> None:
    import json

    m, c = client
    twin = farm.summary_dir / "summary_run2_a.json"
    twin.write_text(
        json.dumps(
            {
                "run": 2,
                "time": (NOW - timedelta(hours=1)).isoformat(),
                "lifetime_us": [6000.0, 6200.0],
                "lifetime_err_us": [300.0, 310.0],
                "purity": {"combined": {"tau_us": 6100.0, "error_us": 210.0}},
            }
        )
    )
    m.results.refresh(force=True)
    fig = _fig(c, "/api/plot/purity/vs_run")
    assert fig["data"][0]["x"] == [1, 2]  # the twin merged with its seed file: still 2 points
    combined = next(t for t in fig["data"] if t["name"] == "views combined")
    assert combined["y"] == [None, 6100.0]


def test_event_display_api(client: tuple[Monitor, TestClient], farm: Farm) -> None:
    from tests.integration.monitor.farmdata import write_event_files

    _, c = client
    write_event_files(farm.home, 3, n_events=2)
    r = c.get("/api/event/views")  # the newest reconstructed file's last event
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["event"]["run"] == 3 and body["event"]["event"] == 1
    assert len(body["figure"]["layout"]["images"]) == 2
    r0 = c.get("/api/event/views?run=3&seq=0&event=0").json()
    assert r0["event"]["event"] == 0 and r0["digest"] != body["digest"]
    # the tree entry draws the same newest event through the generic plot route
    assert (
        _fig(c, "/api/plot/event/views?run=3")["layout"]["title"]
        == body["figure"]["layout"]["title"]
    )
    assert c.get("/api/event/views?event=x").status_code == 400
    assert c.get("/api/event/crp9").status_code == 404
    assert c.post("/api/event/views").status_code == 405
    # run 1 has a reco output but its raw file is not on the storage: said, not a failure
    gone = c.get("/api/event/views?run=1").json()
    assert gone["event"] is None
    assert "not on the farm storage" in gone["figure"]["layout"]["annotations"][0]["text"]


def test_plots_overlay_the_pinned_reference_with_a_difference_or_ratio(
    client: tuple[Monitor, TestClient], farm: Farm
) -> None:
    m, c = client
    write_reco(farm.home, 3, dead=[5, *range(384, 416)], noisy=[])  # a dead card in run 3
    m.references.pin("pedestals", 1)
    fig = _fig(c, "/api/plot/pedestals/noise?run=3&ref=pinned")
    assert "reference run 1" in [t["name"] for t in fig["data"]]
    diff = next(t for t in fig["data"] if t["name"] == "run 3 - reference run 1")
    assert diff["yaxis"] == "y2" and fig["layout"]["yaxis2"]["domain"][1] < 0.3
    # run 1: dead 5 and 700, noisy 10, 11, 1000 (9 ADC); run 3: dead 5 and the card; else 1.5
    assert diff["y"][400] == -1.5 and diff["y"][700] == 1.5 and diff["y"][10] == -7.5
    assert diff["y"][5] == 0.0 and diff["y"][100] == 0.0
    none = _fig(c, "/api/plot/pedestals/noise?run=3&ref=none")
    assert not any("reference" in t["name"] for t in none["data"])
    assert "yaxis2" not in none["layout"]
    # charge per LEM: the ratio to the reference (run 2's LEM 3 at 80 / 120 fC/cm, run 1's 100)
    m.references.pin("charge", 1)
    ch = _fig(c, "/api/plot/charge/per_lem?run=2&ref=pinned")
    r0 = next(t for t in ch["data"] if t["name"] == "view 0 / reference run 1")
    r1 = next(t for t in ch["data"] if t["name"] == "view 1 / reference run 1")
    assert r0["x"][2] == 3 and r0["y"][2] == pytest.approx(0.8) and r1["y"][2] == pytest.approx(1.2)
    assert r0["y"][0] == pytest.approx(1.0)
    # the gain map says the ratio in each cell
    gm = _fig(c, "/api/plot/lem_gain/map?run=2&ref=1")
    assert "ref 20.00 (x1.00)" in gm["data"][0]["text"][0][0]
    # nothing pinned for an item: no overlay
    purity = _fig(c, "/api/plot/purity/vs_time?run=2&ref=pinned")
    assert not any("reference" in (t.get("name") or "") for t in purity["data"])
