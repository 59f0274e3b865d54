"""Email through SMTP (smtplib): the seed mailed failures to ``prod``; so does the farm.

Imports the standard library and the config only.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from farmtools.config import NotifySection


def send_email(cfg: NotifySection, subject: str, body: str, timeout: float = 10.0) -> None:
    """Send one plain-text message to ``cfg.email_to``; raises OSError/SMTPException on failure."""
    msg = EmailMessage()
    msg["From"] = cfg.email_from
    msg["To"] = ", ".join(cfg.email_to)
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=timeout) as smtp:
        smtp.send_message(msg)
