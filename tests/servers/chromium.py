"""A real headless Chromium (Debian ``/usr/bin/chromium``) driven by Playwright.

Never ``playwright install``: Playwright is told to use the distribution's browser.  Fixture
``chromium_browser`` (session scoped: one browser process for every browser test) and
``screenshot_dir`` (artifacts/screenshots/, gitignored, kept as test artefacts).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.strict import missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"{CHROMIUM} is not installed (Debian chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed", "pip install -e '.[dev]' (scripts/setup.sh)")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    d = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d
