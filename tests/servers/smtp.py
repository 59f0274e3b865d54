"""A real SMTP server (aiosmtpd) on a free loopback port, collecting the messages it receives.

aiosmtpd's Controller runs the server in a thread of the test process: it speaks real SMTP on a
real socket, and the test reads what arrived.  Fixture ``smtp_server`` (function scoped).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest

from tests.eventually import eventually
from tests.servers.process import free_port
from tests.servers.strict import missing


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 Message accepted for delivery"

    def wait_for(self, n: int = 1, timeout: float = 10.0) -> list[Message]:
        """The messages received, once there are at least ``n``; fails after ``timeout`` s."""
        eventually(lambda: len(self.messages), timeout, f"{n} message(s)", until=lambda k: k >= n)
        return self.messages


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        missing("aiosmtpd is not installed", "pip install -e '.[dev]' (scripts/setup.sh)")

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
