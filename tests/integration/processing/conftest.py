"""Fixtures of the processing integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.processing.fifo import release_fifos


@pytest.fixture(autouse=True)
def _no_job_left_waiting_on_a_fifo() -> Iterator[None]:
    """Whatever a test did, no job of it stays blocked on one of its FIFOs (see fifo.py)."""
    yield
    release_fifos()
