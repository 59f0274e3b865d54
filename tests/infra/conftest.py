"""Opt-in gate of the mock-farm tests: skipped unless ``FARMTOOLS_FARM_TESTS=1``.

Why: bringing up five systemd containers and converging site.yml takes minutes on two cores,
more than CI's budget allows next to the rest of the suite.  Run them with
``FARMTOOLS_FARM_TESTS=1 .venv/bin/pytest tests/infra -p no:cacheprovider`` (as root); the skip
reason is printed in the summary (``-ra`` in pyproject.toml) otherwise.
"""

from __future__ import annotations

import os

import pytest

ENV = "FARMTOOLS_FARM_TESTS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this directory skipped unless the farm run was asked for."""
    if os.environ.get(ENV) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"mock farm tests are opt-in: set {ENV}=1 (podman, minutes of provisioning)"
    )
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)
