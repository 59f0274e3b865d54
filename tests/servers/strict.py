"""Strict mode: a real server that cannot be started is a failure, not a skip.

Why: a skipped real-server test looks green; with XRootD or PostgreSQL missing, up to 91 tests
could skip while ``make test`` passed.  So every server fixture of ``tests/servers/`` calls
:func:`missing` when its binary, package or privilege is not there: the test fails with a
message naming what is missing and how to install it.  ``make test`` (hence ``.ci/run``) sets
``FARMTOOLS_ALLOW_SKIP=0``; a developer without, say, Slurm may run pytest by hand with
``FARMTOOLS_ALLOW_SKIP=1`` to get skips instead, explicitly.  Unset means strict as well, so a
plain ``pytest`` behaves like CI.  ``tests/summary.py`` turns any other skip of a real-server
test into a failure in strict mode.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

ALLOW_SKIP = "FARMTOOLS_ALLOW_SKIP"
SETUP = "./scripts/setup.sh (make setup) installs the Debian packages of scripts/apt-packages.txt"


def strict() -> bool:
    """True unless the developer asked for skips with ``FARMTOOLS_ALLOW_SKIP=1``."""
    return os.environ.get(ALLOW_SKIP, "0") != "1"


def missing(what: str, install: str = SETUP) -> NoReturn:
    """Fail (strict) or skip (``FARMTOOLS_ALLOW_SKIP=1``) because ``what`` is not available."""
    if strict():
        pytest.fail(
            f"{what}: {install}. A real-server test must run: {ALLOW_SKIP}=1 skips it instead "
            "(never under make test)",
            pytrace=False,
        )
    pytest.skip(f"{what} ({ALLOW_SKIP}=1)")


def need_tools(*tools: str, package: str) -> None:
    """Call :func:`missing` for the first of ``tools`` not found on PATH (Debian ``package``)."""
    for tool in tools:
        if shutil.which(tool) is None:
            missing(f"{tool} is not on PATH (Debian {package})")
