"""Notifications to people: email (SMTP) and a webhook (JSON POST).

Owns :func:`notify`, which sends one message through every channel ``[notify]`` configures and
returns the errors instead of raising: a mail server that is down must never stop a daemon (the
failure is recorded in the story by the caller).  Imports the standard library and the config.
"""

from __future__ import annotations

from farmtools.config import NotifySection
from farmtools.notify.email import send_email
from farmtools.notify.webhook import post_webhook


def notify(cfg: NotifySection, subject: str, body: str, payload: dict[str, object]) -> list[str]:
    """Send ``subject``/``body`` by email and ``payload`` by webhook; returns the errors, if any."""
    errors: list[str] = []
    if cfg.email_to:
        try:
            send_email(cfg, subject, body)
        except OSError as exc:  # smtplib errors are OSErrors too
            errors.append(f"email to {', '.join(cfg.email_to)}: {exc}")
    if cfg.webhook_url:
        try:
            post_webhook(cfg.webhook_url, {"subject": subject, "body": body, **payload})
        except (OSError, ValueError) as exc:
            errors.append(f"webhook {cfg.webhook_url}: {exc}")
    return errors


__all__ = ["notify", "post_webhook", "send_email"]
