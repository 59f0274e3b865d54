"""``farmtools challenge run --detector 6x6x6:SAMPLES`` end to end, tiny events (issue 16 §3).

The real chain: the L1 streams emulated with physics (beam spills), ``farmtools evb build``,
``farmtools ingest watch``, ``farmtools process run`` with the local batch running ``farmtools
reco`` (flash t0), the analyses, then the final stage (classify, filter, pack, transfer, verify)
with the link to central storage cut during the data taking (root: a read-only bind mount).
The report must account for every fragment and every event, with nothing lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from farmtools.challenge.report666 import accounting
from farmtools.challenge.run666 import PRESETS_666, run_challenge_666, settings_for
from farmtools.challenge.sim666 import calibrate_chain
from farmtools.cli import app
from farmtools.final.catalog import FinalCatalog, FinalState

DET = "6x6x6:40"


def test_beam_with_an_outage_accounts_for_every_fragment_and_event(tmp_path: Path) -> None:
    settings = settings_for(
        PRESETS_666["beam-outage"],
        files=1,  # one L2 file's worth of events (the builder may flush them in two)
        events=3,
        interval_s=1.0,
        detector=DET,
        home=tmp_path / "farm",
        progress=False,
        monitor=False,
        timeout_s=240.0,
    )
    settings.outage_after_s = 1.0
    result = run_challenge_666(settings, Console(quiet=True))
    rep = result.report
    chain = rep["chain_6x6x6"]
    assert rep["verdict"] == "PASS", result.text_path.read_text()
    c = chain["counts"]
    assert c["emitted"] == 3 and c["fragments_emitted"] == [3, 3] == c["fragments_read"]
    assert c["built"] + c["incomplete"] == c["emitted"] == c["in_event_files"] == c["stored"]
    assert c["reconstructed"] == c["stored"]
    assert c["classified"] == c["kept"] + c["prescaled_out"] + c["dropped"] == 3
    assert c["kept"] == c["in_verified_finals"] > 0
    assert chain["accounting"]["lost_total"] == 0
    assert all(v["holds"] for v in chain["accounting"]["identities"].values())
    # every final file verified at the destination, the catalog agrees with the report
    run = rep["settings"]["run"]
    from farmtools.bookkeeping import Bookkeeping

    bk = Bookkeeping(f"sqlite:///{tmp_path / 'farm' / 'bookkeeping.sqlite'}")
    finals = FinalCatalog(bk).finals(run)
    assert finals and {f.state for f in finals} == {FinalState.VERIFIED}
    for f in finals:
        assert (tmp_path / "farm" / "central" / "final" / f"run{run}" / f.name).stat().st_size == (
            f.size
        )
    bk.close()
    # each stage has its latency and throughput
    stages = chain["stages"]
    assert list(stages)[:3] == ["L1 emulation", "L2 building", "ingest"]
    for name in ("L2 building", "ingest", "reconstruction (t0)", "purity/gain"):
        assert stages[name]["latency"]["n"] > 0 and stages[name]["events_per_s"] > 0, name
    for name in ("filtering", "formatting", "transfer", "verification"):
        assert stages[name]["events_per_s"] is not None and not stages[name].get("not_run")
    # what the chain's capacity model is calibrated on: every event file with its triggers
    mi = chain["model_inputs"]
    assert sum(f["events"] for f in mi["files"]) == c["in_event_files"]
    assert all(f["first_trigger_s"] <= f["last_trigger_s"] <= f["written_s"] for f in mi["files"])
    assert mi["final_bytes"] == sum(f["bytes"] for f in chain["final_files"]) > 0
    assert {"classify", "format", "transfer", "verify"} <= set(mi["final_cpu_s"])
    costs, feed = calibrate_chain(rep)
    assert len(feed.files) == len(mi["files"]) and costs.reco_s_per_event > 0
    # the outage: the buffer forecast sampled while the link was down, finals verified after
    outage = chain["outage"]
    down = [b for b in chain["buffer"]["samples"] if b["link_down"]]
    assert down and all(b["rate_bytes_s"] >= 0 for b in down)
    if os.geteuid() == 0:
        assert outage["injected"], outage
        assert all(
            f.verified is not None and f.transferred is not None for f in finals
        )  # transferred once the link came back
        assert any(b["seconds_to_full"] is not None for b in down)
    else:
        assert not outage["injected"] and "root" in outage["details"]
    text = result.text_path.read_text()
    assert "kept = in verified final files" in text and "lost: 0" in text
    assert "the 72 h outage it must" in text
    saved = json.loads(result.json_path.read_text())
    assert saved["chain_6x6x6"]["accounting"]["lost_total"] == 0


def test_the_accounting_names_what_is_lost() -> None:
    counts = {
        "fragments_emitted": [5, 4],  # the incomplete event's fragment of stream 1 never came
        "fragments_read": [5, 3],  # one fragment emitted, never read
        "emitted": 5,
        "built": 4,
        "incomplete": 1,
        "set_aside": 0,
        "in_event_files": 5,
        "stored": 5,
        "reconstructed": 5,
        "classified": 5,
        "kept": 3,
        "prescaled_out": 1,
        "dropped": 1,
        "in_verified_finals": 2,  # a kept event not in a verified final file
    }
    acc = accounting(counts)
    assert acc["lost"] == {
        "fragments emitted = read by the builder (per stream)": 1,
        "fragments read = 2 x built + incomplete + set aside": 1,
        "kept = in verified final files": 1,
    }
    assert acc["lost_total"] == 3
    assert (
        accounting({**counts, "fragments_read": [5, 4], "in_verified_finals": 3})["lost_total"] == 0
    )


def test_the_cli_refuses_an_unknown_6x6x6_preset_and_lists_the_presets(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        app,
        ["challenge", "run", "--detector", DET, "--preset", "nosuch", "--home", str(tmp_path)],
    )
    assert out.exit_code == 2 and "unknown 6x6x6 preset 'nosuch'" in out.stdout
    listed = CliRunner().invoke(app, ["challenge", "presets"]).stdout
    assert all(name in listed for name in ("cosmics", "beam", "beam-outage"))
