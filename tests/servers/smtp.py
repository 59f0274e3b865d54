"""A real SMTP server (aiosmtpd) on a free loopback port, collecting the messages it receives.

aiosmtpd's Controller runs the server in a thread of the test process: it speaks real SMTP on a
real socket, and the test reads what arrived.  Fixture ``smtp_server`` (function scoped), and
``secure_smtp``: a factory of servers speaking STARTTLS or TLS from the first byte with a
self-signed certificate made for the test (its CA file in ``SmtpServer.ca_file``) and a login
(AUTH PLAIN/LOGIN, refused before TLS) checked against one user and password.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
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
    ca_file: str = ""
    #: logins tried: (user, whether accepted)
    logins: list[tuple[str, bool]] = field(default_factory=list)

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


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) of a self-signed certificate for ``host`` (an IP address SAN)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


SecureSmtp = Callable[[str, str, str], SmtpServer]


@pytest.fixture
def secure_smtp(tmp_path: Path) -> Iterator[SecureSmtp]:
    """``make(mode, user, password)``: a server of ``mode`` "starttls" or "ssl"."""
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
    except ImportError:
        missing("aiosmtpd is not installed", "pip install -e '.[dev]' (scripts/setup.sh)")
    cert, key = self_signed(tmp_path)
    controllers: list[Any] = []

    def make(mode: str, user: str, password: str) -> SmtpServer:
        server = SmtpServer("127.0.0.1", free_port(), ca_file=str(cert))

        def authenticate(
            _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
        ) -> Any:
            ok = (
                isinstance(data, LoginPassword)
                and data.login == user.encode()
                and data.password == password.encode()
            )
            server.logins.append((data.login.decode() if ok else repr(data), ok))
            return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        common: dict[str, Any] = {
            "authenticator": authenticate,
            "auth_required": True,
            "auth_require_tls": True,
        }
        if mode == "starttls":
            common.update(tls_context=context, require_starttls=True)
        else:
            # TLS from the first byte: aiosmtpd does not count it as TLS for AUTH (it only knows
            # its own STARTTLS), so "AUTH only over TLS" is relaxed here; the socket is TLS
            common.update(ssl_context=context, auth_require_tls=False)
        controller = Controller(server, hostname=server.host, port=server.port, **common)
        controller.start()
        controllers.append(controller)
        return server

    try:
        yield make
    finally:
        for c in controllers:
            c.stop()
