"""Notifications to people: email (SMTP) and a webhook (JSON POST).

Owns :func:`notify`, which sends one message through every channel ``[notify]`` configures and
returns the errors instead of raising: a mail server that is down must never stop a daemon (the
failure is recorded in the story by the caller).  :class:`farmtools.notify.digest.Digest` in
front of it turns a flood of one kind into one digest per interval.  Imports the standard
library and the config.
"""

from __future__ import annotations

from farmtools.config import NotifySection
from farmtools.notify.email import send_email
from farmtools.notify.webhook import post_webhook


def notify(
    cfg: NotifySection,
    subject: str,
    body: str,
    payload: dict[str, object],
    *,
    password: str | None = None,
) -> list[str]:
    """Send ``subject``/``body`` by email and ``payload`` by webhook; returns the errors, if any.

    ``password``: the SMTP login's (``FarmConfig.smtp_password``), when ``smtp_user`` is set.
    Daemons go through :class:`farmtools.notify.digest.Digest`, not here directly.
    """
    errors: list[str] = []
    if cfg.email_to:
        try:
            send_email(cfg, subject, body, password=password)
        except OSError as exc:  # smtplib errors are OSErrors too
            errors.append(f"email to {', '.join(cfg.email_to)}: {exc}")
    if cfg.webhook_url:
        try:
            post_webhook(cfg.webhook_url, {"subject": subject, "body": body, **payload})
        except (OSError, ValueError) as exc:
            errors.append(f"webhook {cfg.webhook_url}: {exc}")
    return errors


__all__ = ["notify", "post_webhook", "send_email"]
