"""A webhook: one JSON POST (urllib), for chat rooms and alerting systems.

Imports the standard library only.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON to ``url``; returns the HTTP status, raises OSError on failure."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook URL must be http(s): {url!r}")
    req = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        return int(resp.status)
