"""What every daemon's log must look like (:mod:`farmtools.logsetup`), checked line by line.

Shared by the tests that run a daemon as a child process with its output in a pipe or a file.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: ``2026-12-07T19:13:02.120Z farmtools.ingest INFO message``
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<logger>[\w.]+) "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<message>.*)$"
)
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def log_records(text: str, *, json_lines: bool) -> list[dict[str, Any]]:
    """Each line of ``text`` as a record (time, logger, level, message); fail on any other line.

    Every line must be a whole message: a wrapped or multi-line message would leave a line
    that does not start with a timestamp, logger and level (or is not a JSON object).
    """
    records = []
    for line in text.splitlines():
        if json_lines:
            doc = json.loads(line)
            assert isinstance(doc, dict) and TIME.match(doc["time"]), line
            assert {"time", "level", "logger", "message"} <= doc.keys(), line
        else:
            m = LINE.match(line)
            assert m, f"not one whole log line: {line!r}"
            doc = m.groupdict()
        records.append(doc)
    assert records, "no log line at all"
    return records
