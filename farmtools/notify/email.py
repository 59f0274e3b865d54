"""Email through SMTP (smtplib): the seed mailed failures to ``prod``; so does the farm.

Plain SMTP to a relay on the farm, or a mail server outside it with STARTTLS (``smtp_security =
"starttls"``) or TLS from the first byte (``"ssl"``), the server's certificate verified (against
``smtp_ca_file`` or the system's CAs), and a login as ``smtp_user`` with the password the caller
passes (``FarmConfig.smtp_password``: the environment or the secrets file, never farm.toml).
A login is refused over an unencrypted connection: the password never crosses the network in
clear.  Imports the standard library and the config only.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from farmtools.config import NotifySection


def _tls(cfg: NotifySection) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cfg.smtp_ca_file or None)


def send_email(
    cfg: NotifySection,
    subject: str,
    body: str,
    timeout: float = 10.0,
    *,
    password: str | None = None,
) -> None:
    """Send one plain-text message to ``cfg.email_to``; raises OSError/SMTPException on failure."""
    if cfg.smtp_user and cfg.smtp_security == "none":
        raise smtplib.SMTPException(
            "notify.smtp_user is set but notify.smtp_security is 'none': a password is only "
            "sent over STARTTLS or SSL"
        )
    if cfg.smtp_user and not password:
        raise smtplib.SMTPException(
            f"notify.smtp_user is set but no password: set ${cfg.smtp_password_env} "
            "or notify.smtp_password_file"
        )
    msg = EmailMessage()
    msg["From"] = cfg.email_from
    msg["To"] = ", ".join(cfg.email_to)
    msg["Subject"] = subject
    msg.set_content(body)
    smtp: smtplib.SMTP
    if cfg.smtp_security == "ssl":
        smtp = smtplib.SMTP_SSL(cfg.smtp_host, cfg.smtp_port, timeout=timeout, context=_tls(cfg))
    else:
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=timeout)
    with smtp:
        if cfg.smtp_security == "starttls":
            smtp.starttls(context=_tls(cfg))
        if cfg.smtp_user:
            assert password is not None
            smtp.login(cfg.smtp_user, password)
        smtp.send_message(msg)
