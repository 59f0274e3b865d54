"""The ``analyses`` table (schema version 3): the upgrade that creates it, and atomic recording.

On SQLite and on the real PostgreSQL fixture (see conftest.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from farmtools.bookkeeping import AnalysisRecord, Bookkeeping, Event, FileState, schema
from tests.processing_farm import state_of
from tests.states import walk


def _reconstructed(bk: Bookkeeping, run: int, seqs: range) -> list[str]:
    names = []
    for seq in seqs:
        name = f"run{run}-seq{seq}.dat"
        bk.register_file(
            name, source_path=f"/daq/{name}", run=run, seq=seq, size=1, daq_write_time=None
        )
        walk(bk, name, FileState.RECONSTRUCTED, Event.RECONSTRUCTED)
        names.append(name)
    return names


def _result(run: int, names: list[str], tau: float = 3000.0) -> AnalysisRecord:
    return AnalysisRecord(
        run=run,
        first_seq=0,
        last_seq=len(names) - 1,
        files=names,
        outputs=[f"/out/{n}.root" for n in names],
        time=datetime(2016, 10, 25, 16, 12, 37, tzinfo=UTC),
        lifetimes_us=(tau - 100.0, None),  # view 1 without a finite fit
        lifetime_errors_us=(120.0, None),
        lifetime_us=tau,
        lifetime_err_us=90.0,
        summary=f"/summary/run{run}/analysis_run{run}_seq0-3.txt",
        gains={lem: 20.0 + lem for lem in range(1, 13)},
        asymmetries={lem: 0.01 * lem for lem in range(1, 13)},
    )


def test_record_analysis_moves_the_group_and_stores_one_queryable_row(bk: Bookkeeping) -> None:
    names = _reconstructed(bk, 7, range(4))
    assert bk.record_analysis(_result(7, names), {"summary": "s"})
    assert {state_of(bk, n) for n in names} == {FileState.ANALYSED}
    assert all(bk.story(n)[-1].event == Event.ANALYSED for n in names)
    (row,) = bk.analyses(run=7)
    assert row.files == names and row.lifetime_us == 3000.0
    assert row.lifetimes_us == (2900.0, None) and row.lifetime_errors_us == (120.0, None)
    assert row.gains[12] == 32.0 and row.asymmetries[1] == pytest.approx(0.01)
    assert row.time == datetime(2016, 10, 25, 16, 12, 37, tzinfo=UTC)
    with bk.engine.connect() as conn:  # plain SQL works: that is what "queryable" means
        got = conn.execute(sa.text("SELECT run, lifetime_us, lifetime0_err_us FROM analyses")).all()
    assert [tuple(r) for r in got] == [(7, 3000.0, 120.0)]

    # the same group again (a second analyser was quicker): nothing recorded, nothing split
    assert not bk.record_analysis(_result(7, names))
    assert len(bk.analyses()) == 1
    more = _reconstructed(bk, 7, range(4, 7))
    assert not bk.record_analysis(_result(7, [names[0], *more]))  # one already analysed
    assert {state_of(bk, n) for n in more} == {FileState.RECONSTRUCTED}
    assert len(bk.analyses()) == 1


def test_a_version_2_database_gets_the_analyses_table_by_its_upgrade_step(
    bk: Bookkeeping, db_url: str
) -> None:
    names = _reconstructed(bk, 8, range(4))
    with bk.engine.begin() as conn:  # what a database of schema version 2 looked like
        schema.analyses.drop(conn)
        conn.execute(sa.delete(schema.schema_version))
        conn.execute(sa.insert(schema.schema_version).values(version=2, applied=datetime.now(UTC)))
    bk.close()
    old = Bookkeeping(db_url, upgrade=False)
    with old.engine.connect() as conn:
        assert "analyses" not in sa.inspect(conn).get_table_names()
    assert old.schema_version() == 2
    old.close()

    new = Bookkeeping(db_url)  # opening upgrades
    try:
        assert new.schema_version() == schema.SCHEMA_VERSION
        with new.engine.connect() as conn:
            insp = sa.inspect(conn)
            assert "analyses" in insp.get_table_names()
            assert "ix_analyses_run_time" in {i["name"] for i in insp.get_indexes("analyses")}
            versions = conn.execute(sa.select(schema.schema_version.c.version)).scalars().all()
        assert sorted(versions) == [2, schema.SCHEMA_VERSION]
        assert [f.name for f in new.files(run=8)] == names  # the data is still there
        assert new.record_analysis(_result(8, names))
        assert new.analyses(run=8)[0].summary.endswith("analysis_run8_seq0-3.txt")
    finally:
        new.close()


def test_the_upgrade_step_alone_creates_the_table(
    bk: Bookkeeping, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``create_all`` leaves a table of a later version to its step: the step is what works."""
    from farmtools.bookkeeping import db as bkdb

    with bk.engine.begin() as conn:
        schema.analyses.drop(conn)
        conn.execute(sa.delete(schema.schema_version))
        conn.execute(sa.insert(schema.schema_version).values(version=2, applied=datetime.now(UTC)))
    monkeypatch.setitem(bkdb._UPGRADES, 2, lambda conn: None)  # a step that forgot its table
    assert bk.upgrade() == schema.SCHEMA_VERSION
    with bk.engine.connect() as conn:
        assert "analyses" not in sa.inspect(conn).get_table_names()
