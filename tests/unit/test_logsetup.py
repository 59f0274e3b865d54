"""The daemons' log formats (:mod:`farmtools.logsetup`): one line per message, whatever it holds."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from farmtools.logsetup import LOG_JSON_ENV, JsonFormatter, LineFormatter, setup_logging
from tests.logcheck import log_records


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    """A record of ``farmtools.test`` at ERROR, with a real exception if ``exc``."""
    exc_info = None
    if exc:
        try:
            raise ValueError("bad value\non two lines")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.getLogger("farmtools.test").makeRecord(
        "farmtools.test", logging.ERROR, __file__, 1, msg, args, exc_info
    )


def test_a_plain_line_holds_the_whole_message_and_its_traceback() -> None:
    text = LineFormatter().format(_record("%s: a message\nover two lines", "x" * 100, exc=True))
    assert "\n" not in text
    (rec,) = log_records(text, json_lines=False)
    assert (rec["logger"], rec["level"]) == ("farmtools.test", "ERROR")
    assert rec["message"].startswith("x" * 100 + ": a message\\nover two lines\\nTraceback")
    assert rec["message"].endswith("ValueError: bad value\\non two lines")


def test_a_json_line_has_time_level_logger_message_and_exception() -> None:
    text = JsonFormatter().format(_record("%d files", 3, exc=True))
    assert "\n" not in text
    (doc,) = log_records(text, json_lines=True)
    assert (doc["level"], doc["logger"], doc["message"]) == ("ERROR", "farmtools.test", "3 files")
    assert (
        doc["exception"].startswith("Traceback") and "bad value\non two lines" in doc["exception"]
    )
    assert "exception" not in json.loads(JsonFormatter().format(_record("fine")))


@pytest.mark.parametrize("json_lines", [False, True], ids=["plain", "json"])
def test_a_child_process_logs_as_its_parent(json_lines: bool) -> None:
    """The analysis child calls ``setup_logging()``: the choice comes through the environment."""
    code = (
        "import logging, os; from farmtools.logsetup import setup_logging; "
        f"setup_logging({json_lines}); "
        "os.execv(os.sys.executable, [os.sys.executable, '-c', "
        "'import logging; from farmtools.logsetup import setup_logging; setup_logging(); "
        'logging.getLogger("farmtools.child").warning("from the child")\'])'
    )
    env = {k: v for k, v in os.environ.items() if k != LOG_JSON_ENV}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    (rec,) = log_records(out.stderr, json_lines=json_lines)
    assert (rec["logger"], rec["level"], rec["message"]) == (
        "farmtools.child",
        "WARNING",
        "from the child",
    )


def test_a_command_run_in_the_test_process_leaves_logging_and_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under pytest the root logger has its capture handlers: a CliRunner'd daemon command must
    neither replace them nor leave ``--log-json`` in the environment of the daemons started later."""
    monkeypatch.delenv(LOG_JSON_ENV, raising=False)
    root = logging.getLogger()
    before = list(root.handlers)
    assert before  # pytest's capture
    setup_logging(True)
    assert root.handlers == before and LOG_JSON_ENV not in os.environ
