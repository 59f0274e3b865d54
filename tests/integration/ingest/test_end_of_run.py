"""Ingest reads the DAQ's end-of-run record (``run<N>.eor.json``) and stores it for the closing step.

The record is written by the emulator's own :func:`end_run` (sizes and adler32 of the real
files); ingest stores it, the ledger then expects its files and compares their checksums.  A
record that cannot be read is ignored with an alarm naming the file and what is wrong.
"""

from __future__ import annotations

import json

from farmtools.bookkeeping.ledger import run_ledger
from farmtools.emulator.daq import end_run
from farmtools.processing.runclose import close_runs
from farmtools.rawdata.endofrun import read_end_of_run
from tests.integration.ingest.conftest import Farm


def test_ingest_stores_the_record_and_the_run_closes_complete(farm: Farm) -> None:
    for seq in range(3):
        farm.raw(f"run50-seq{seq}.dat", 50, events=2)
    path = end_run(farm.daq, 50)
    record = read_end_of_run(path)
    assert (path.name, record.files, record.first_seq, record.last_seq) == (
        "run50.eor.json",
        3,
        0,
        2,
    )
    assert all(f.adler32 is not None and f.size for f in record.file_list)
    svc = farm.service()
    svc.reconcile()
    for seq in range(3):
        farm.wait_state(f"run50-seq{seq}.dat", "stored")
    assert farm.state("run50.eor.json") == "ignored"
    led = run_ledger(farm.bk, 50)
    assert led is not None
    assert (led.expected_files, led.detected, led.stored, led.problems) == (3, 3, 3, [])
    assert close_runs(farm.cfg, farm.bk) == [50]
    assert farm.bk.alarms() == []


def test_a_broken_record_is_ignored_with_an_alarm_naming_it(farm: Farm) -> None:
    farm.raw("run51-seq0.dat", 51)
    bad = farm.daq / "run51.eor.json"
    bad.write_text(json.dumps({"format": "farmtools-eor/1", "run": 52, "files": 1, "events": 2}))
    farm.service().reconcile()
    farm.wait_state("run51-seq0.dat", "stored")
    (alarm,) = farm.bk.alarms()
    assert alarm.kind == "bad_end_of_run" and alarm.file == "run51.eor.json"
    assert "says run 52, its name says run 51" in alarm.message
    led = run_ledger(farm.bk, 51)
    assert led is not None and led.expected_files is None and led.status == "open"
