"""Mail a shift can live with, through real SMTP servers (aiosmtpd): digests per kind and
interval, STARTTLS and SSL with a login, the password from the environment or secrets.env."""

from __future__ import annotations

from pathlib import Path

import pytest

from farmtools.config import FarmConfig, FarmSection, NotifySection
from farmtools.notify.digest import Digest, tail_lines
from tests.servers.smtp import SecureSmtp, SmtpServer


class Clock:
    """The digest's clock, moved by the test (no waiting for a real interval)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _cfg(tmp_path: Path, **notify: object) -> FarmConfig:
    return FarmConfig(
        farm=FarmSection(home=tmp_path),
        notify=NotifySection(email_to=["shift@localhost"], **notify),
        base_dir=tmp_path,
    )


@pytest.mark.smtp
def test_a_systematic_failure_sends_one_mail_at_once_and_one_digest(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    clock = Clock()
    digest = Digest(
        _cfg(tmp_path, smtp_port=smtp_server.port, digest_s=600), "processing", clock=clock
    )
    for i in range(5):
        assert (
            digest.add("oom", f"[farmtools] processing failed: run1-seq{i}.dat", f"body {i}", {})
            == []
        )
    assert digest.add("walltime", "[farmtools] processing failed: run2-seq0.dat", "w", {}) == []
    first = smtp_server.wait_for(2)
    assert [m["Subject"] for m in first] == [
        "[farmtools] processing failed: run1-seq0.dat",
        "[farmtools] processing failed: run2-seq0.dat",
    ]
    clock.t += 599
    assert digest.flush() == [] and len(smtp_server.messages) == 2  # the interval is not over
    clock.t += 2
    assert digest.flush() == []
    (mail,) = smtp_server.wait_for(3)[2:]
    assert mail["Subject"] == "[farmtools] processing oom: 4 more in 10 min"
    body = mail.get_payload()
    assert all(f"run1-seq{i}.dat" in body for i in (1, 2, 3, 4)) and "body 1" in body
    assert digest.host in body
    clock.t += 601  # a quiet interval: the next one goes at once again
    assert digest.flush() == []
    digest.add("oom", "[farmtools] processing failed: run3-seq0.dat", "again", {})
    assert smtp_server.wait_for(4)[3]["Subject"].endswith("run3-seq0.dat")


@pytest.mark.smtp
def test_digest_zero_sends_every_message_and_force_flushes_the_rest(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    every = Digest(_cfg(tmp_path, smtp_port=smtp_server.port, digest_s=0), "monitor")
    for i in range(3):
        every.add("gain_low", f"s{i}", "b", {})
    assert len(smtp_server.wait_for(3)) == 3
    held = Digest(_cfg(tmp_path, smtp_port=smtp_server.port), "monitor")
    for i in range(3):
        held.add("gain_low", f"t{i}", "b", {})
    held.flush(force=True)  # the daemon stops: nothing stays behind
    assert smtp_server.wait_for(5)[4]["Subject"] == "[farmtools] monitor gain_low: 2 more in 10 min"


@pytest.mark.smtp
@pytest.mark.parametrize("mode", ["starttls", "ssl"])
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # ssl: see the fixture
def test_tls_and_login_with_the_password_from_the_environment(
    tmp_path: Path, secure_smtp: SecureSmtp, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = secure_smtp(mode, "shift", "s3cret word")
    monkeypatch.setenv("FARMTOOLS_SMTP_PASSWORD", "s3cret word")
    cfg = _cfg(
        tmp_path,
        smtp_port=server.port,
        smtp_security=mode,
        smtp_ca_file=server.ca_file,
        smtp_user="shift",
    )
    assert Digest(cfg, "processing").add("oom", "over tls", "body", {}) == []
    assert server.wait_for(1)[0]["Subject"] == "over tls"
    assert server.logins == [("shift", True)]


@pytest.mark.smtp
def test_the_password_from_the_secrets_file_and_a_wrong_one_refused(
    tmp_path: Path, secure_smtp: SecureSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = secure_smtp("starttls", "shift", "from-file")
    monkeypatch.delenv("FARMTOOLS_SMTP_PASSWORD", raising=False)
    secrets = tmp_path / "secrets.env"
    secrets.write_text("FARMTOOLS_DB_PASSWORD=x\nFARMTOOLS_SMTP_PASSWORD='from-file'\n")
    common = {
        "smtp_port": server.port,
        "smtp_security": "starttls",
        "smtp_ca_file": server.ca_file,
        "smtp_user": "shift",
    }
    cfg = _cfg(tmp_path, smtp_password_file="secrets.env", **common)
    assert cfg.smtp_password == "from-file"
    assert Digest(cfg, "ingest").add("truncated", "from file", "b", {}) == []
    assert server.wait_for(1)[0]["Subject"] == "from file"
    monkeypatch.setenv("FARMTOOLS_SMTP_PASSWORD", "wrong")  # the environment comes first
    (error,) = Digest(cfg, "ingest").add("truncated", "refused", "b", {})
    assert "email to shift@localhost" in error and "535" in error
    assert "wrong" not in error  # no secret printed
    assert server.logins[-1][1] is False and len(server.messages) == 1


@pytest.mark.smtp
def test_a_login_is_never_sent_in_clear_nor_the_certificate_skipped(
    tmp_path: Path,
    smtp_server: SmtpServer,
    secure_smtp: SecureSmtp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FARMTOOLS_SMTP_PASSWORD", "pw")
    plain = _cfg(tmp_path, smtp_port=smtp_server.port, smtp_user="shift")
    (error,) = Digest(plain, "ingest").add("k", "s", "b", {})
    assert "smtp_security is 'none'" in error and smtp_server.messages == []
    server = secure_smtp("starttls", "shift", "pw")
    unknown_ca = _cfg(tmp_path, smtp_port=server.port, smtp_security="starttls", smtp_user="shift")
    (error,) = Digest(unknown_ca, "ingest").add("k", "s", "b", {})
    assert "CERTIFICATE_VERIFY_FAILED" in error and server.logins == []


def test_tail_lines(tmp_path: Path) -> None:
    err = tmp_path / "job.err"
    err.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail_lines(err, 3) == "line 97\nline 98\nline 99"
    assert tail_lines(err, 0) == "" and tail_lines(None, 5) == ""
    assert "No such file" in tail_lines(tmp_path / "gone.err", 5)
