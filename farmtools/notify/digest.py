"""Mail a shift can live with: one message per kind at once, then one digest per interval.

A systematic failure (a bad calibration file, a full disk) fails every file the same way: one
mail per file buries the shift.  :class:`Digest` sends the first message of a kind at once (a
person hears of it without delay), keeps the others of the same kind for ``notify.digest_s``
seconds and then sends them as ONE message listing them all; a kind that stayed quiet for an
interval starts again with an immediate message.  The daemon calls :meth:`Digest.flush` from its
loop and ``flush(force=True)`` when it stops.  Nothing is lost when a daemon dies with a digest
pending: every message stands for an alarm in the bookkeeping (``farmtools status``).

Imports the standard library, the config and :func:`farmtools.notify.notify`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farmtools.config import ConfigError, FarmConfig

#: Messages listed in full in one digest; the rest are counted.
LISTED = 50


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    payload: dict[str, Any]


def tail_lines(path: str | Path | None, lines: int, max_bytes: int = 65536) -> str:
    """The last ``lines`` lines of a text file (at most ``max_bytes`` read from its end); a file
    that cannot be read says why instead (the mail goes anyway)."""
    if not path or lines <= 0:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError as exc:
        return f"({path}: {exc.strerror or exc})"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class Digest:
    """Messages of one stage (``source``) through ``[notify]``, digested per kind."""

    def __init__(
        self, cfg: FarmConfig, source: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.host = socket.gethostname()
        self.clock = clock
        self._lock = threading.Lock()
        #: kind -> end of its interval (monotonic); a kind without one sends at once
        self._until: dict[str, float] = {}
        self._pending: dict[str, list[Message]] = {}

    def add(self, kind: str, subject: str, body: str, payload: dict[str, Any]) -> list[str]:
        """Send at once (the first of ``kind`` in an interval) or keep for the digest.

        Returns the errors of whatever was sent now (never raises).
        """
        msg = Message(subject, body, payload)
        errors = self.flush()
        with self._lock:
            interval = self.cfg.notify.digest_s
            if interval > 0 and kind in self._until:
                self._pending.setdefault(kind, []).append(msg)
                return errors
            if interval > 0:
                self._until[kind] = self.clock() + interval
        return errors + self._send(msg.subject, msg.body, msg.payload)

    def flush(self, force: bool = False) -> list[str]:
        """Send the digest of every kind whose interval ended (all of them with ``force``)."""
        t = self.clock()
        due: list[tuple[str, list[Message]]] = []
        with self._lock:
            for kind, until in list(self._until.items()):
                if self._pending.get(kind) and (force or t >= until):
                    due.append((kind, self._pending.pop(kind)))
                    self._until[kind] = t + self.cfg.notify.digest_s
                elif t >= until and not self._pending.get(kind):
                    del self._until[kind]  # a quiet interval: the next one goes at once
        errors: list[str] = []
        for kind, pending in due:
            errors += self._send(*self._digest(kind, pending))
        return errors

    def _digest(self, kind: str, msgs: list[Message]) -> tuple[str, str, dict[str, Any]]:
        n = len(msgs)
        minutes = self.cfg.notify.digest_s / 60
        subject = f"[farmtools] {self.source} {kind}: {n} more in {minutes:.0f} min"
        parts = [
            f"{n} more message(s) of kind {kind} from {self.source} on {self.host} in the last "
            f"{minutes:.0f} minutes (the first was mailed at once):",
            "",
        ]
        parts += [f"- {m.subject}" for m in msgs[:LISTED]]
        if n > LISTED:
            parts.append(f"- ... and {n - LISTED} more (farmtools status, farmtools alarms)")
        parts += ["", "The first in full:", "", msgs[0].body]
        payload = {"source": self.source, "kind": kind, "count": n}
        payload["messages"] = [m.payload for m in msgs[:LISTED]]
        return subject, "\n".join(parts), payload

    def _send(self, subject: str, body: str, payload: dict[str, Any]) -> list[str]:
        from farmtools.notify import notify

        try:
            password = self.cfg.smtp_password if self.cfg.notify.smtp_user else None
        except ConfigError as exc:
            return [f"email: {exc}"]
        return notify(self.cfg.notify, subject, body, payload, password=password)
