"""Every bookkeeping test runs on SQLite (a file in tmp_path) and on the real PostgreSQL fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from farmtools.bookkeeping import Bookkeeping


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLAlchemy URL of a new, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bk.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def bk(db_url: str) -> Iterator[Bookkeeping]:
    b = Bookkeeping(db_url)
    yield b
    b.close()
