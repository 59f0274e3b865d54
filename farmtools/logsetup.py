"""The one logging set-up of every daemon (``ingest watch``, ``process run`` and its analysis
child, ``monitor serve``, ``evb build``): one line per message, wherever the output goes.

Why one line: under systemd each line of stderr is one journal entry, and a shift greps the
journal for a file name; a message wrapped at 80 columns (as rich's handler did when not on a
terminal) or a traceback over twenty lines is missed or cut from its context.  So the plain
format is ``<ISO-8601 UTC time> <logger> <LEVEL> <message>``, with a newline inside the message
or its exception written as the two characters ``\\n``; ``--log-json`` writes one JSON object
per line instead (``time``, ``level``, ``logger``, ``message``, and ``exception`` if any) for a
log shipper.  The choice is passed to child processes through :data:`LOG_JSON_ENV`.

Imports only the standard library (the analysis child calls it before anything heavy).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

#: Environment variable that selects JSON lines (``1``); set by :func:`setup_logging` for children.
LOG_JSON_ENV = "FARMTOOLS_LOG_JSON"


def _utc(record: logging.LogRecord) -> str:
    """The record's time as ISO-8601 UTC with milliseconds, e.g. ``2026-12-07T19:13:02.120Z``."""
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class LineFormatter(logging.Formatter):
    """``<time> <logger> <LEVEL> <message>`` on one line (newlines escaped, exception included)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        exc = _exception(self, record)
        if exc:
            text = f"{text}\n{exc}"
        one_line = text.replace("\r", "\\r").replace("\n", "\\n")
        return f"{_utc(record)} {record.name} {record.levelname} {one_line}"


class JsonFormatter(logging.Formatter):
    """One JSON object per message: ``time``, ``level``, ``logger``, ``message``, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        exc = _exception(self, record)
        if exc:
            doc["exception"] = exc
        return json.dumps(doc)  # never a raw newline: control characters are escaped


def _exception(fmt: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's traceback and stack text (cached on the record as the stdlib does)."""
    if record.exc_info and not record.exc_text:
        record.exc_text = fmt.formatException(record.exc_info)
    parts = [record.exc_text or ""]
    if record.stack_info:
        parts.append(fmt.formatStack(record.stack_info))
    return "\n".join(p for p in parts if p)


def setup_logging(json_lines: bool | None = None, level: int = logging.INFO) -> None:
    """Log to stderr one line per message; ``json_lines=None`` follows :data:`LOG_JSON_ENV`.

    As :func:`logging.basicConfig`, nothing changes when the root logger has handlers already
    (pytest's capture when a command runs in the test process: neither its handlers nor the
    environment of later tests are touched).  The choice is exported to the environment so
    that a child process (the analysis child) logs the same way.
    """
    root = logging.getLogger()
    if root.handlers:  # set up already (or captured): the environment is left alone as well
        return
    if json_lines is None:
        json_lines = os.environ.get(LOG_JSON_ENV, "") not in ("", "0")
    os.environ[LOG_JSON_ENV] = "1" if json_lines else "0"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else LineFormatter())
    root.addHandler(handler)
    root.setLevel(level)
