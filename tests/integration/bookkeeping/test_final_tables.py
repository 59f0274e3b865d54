"""Schema 7: the final stage's tables (farmtools.final) come with their upgrade step."""

from __future__ import annotations

import sqlalchemy as sa

from farmtools.bookkeeping import Bookkeeping, schema
from farmtools.final.catalog import FinalCatalog
from tests.integration.bookkeeping.schemas import reopened_at

FINAL_TABLES = {"final_sources", "final_events", "final_filters", "final_files"}


def _tables(bk: Bookkeeping) -> set[str]:
    with bk.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_a_version_6_database_gets_the_final_tables_by_its_upgrade_step(
    bk: Bookkeeping, db_url: str
) -> None:
    def undo(conn: sa.Connection) -> None:
        for name in ("final_events", "final_sources", "final_filters", "final_files"):
            conn.exec_driver_sql(f"DROP TABLE {name}")

    again = reopened_at(bk, db_url, 6, undo)
    try:
        assert again.schema_version() == schema.SCHEMA_VERSION >= 7
        assert _tables(again) >= FINAL_TABLES
        assert FinalCatalog(again).finals() == []
    finally:
        again.close()


def test_the_upgrade_step_is_idempotent_when_the_tables_are_there(
    bk: Bookkeeping, db_url: str
) -> None:
    """The coordinator renumbers steps on merge: a step may find its tables already made."""
    again = reopened_at(bk, db_url, 6, lambda conn: None)
    try:
        assert again.schema_version() == schema.SCHEMA_VERSION
        assert _tables(again) >= FINAL_TABLES
    finally:
        again.close()
