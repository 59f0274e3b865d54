"""The declared state machines (farmtools.statemachine) and their use by the three stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from farmtools.archive.catalog import ARCHIVE_MACHINE, ArchiveState
from farmtools.bookkeeping import Bookkeeping
from farmtools.bookkeeping.states import FILE_MACHINE
from farmtools.final.catalog import FINAL_MACHINE
from farmtools.processing.jobs import JOB_MACHINE, JobState, JobStore
from farmtools.statemachine import IllegalTransition, StateMachine
from tests.states import path_to

MACHINES = [FILE_MACHINE, JOB_MACHINE, ARCHIVE_MACHINE, FINAL_MACHINE]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "bookkeeping.md"


def _reachable(machine: StateMachine, start: str, goal: str) -> bool:
    try:
        path_to(machine, start, goal)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_every_state_is_reachable_from_a_start(machine: StateMachine) -> None:
    for state in machine.states:
        assert any(_reachable(machine, start, state) for start in machine.initial), (
            f"{machine.name}: {state} cannot be reached"
        )


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_the_docs_draw_each_machine_as_declared(machine: StateMachine) -> None:
    assert f"```mermaid\n{machine.mermaid()}\n```" in DOCS.read_text()


def test_a_move_outside_the_table_names_it_and_what_is_allowed() -> None:
    machine = StateMachine.of("toy", ["a", "b", "c"], ["a"], [(["a"], ["b"]), (["b"], ["c"])])
    machine.check("a", "b")
    machine.check(["a"], "b")
    with pytest.raises(IllegalTransition, match=r"toy state machine: a -> c .* from b\)"):
        machine.check(["a", "b"], "c")
    with pytest.raises(IllegalTransition, match="cannot start in b"):
        machine.check_initial("b")
    with pytest.raises(ValueError, match="unknown states"):
        StateMachine.of("bad", ["a"], ["a"], [(["a"], ["z"])])


def test_a_job_moves_only_along_its_machine(tmp_path: Path) -> None:
    bk = Bookkeeping(f"sqlite:///{tmp_path / 'bk.sqlite'}")
    bk.register_file("run1-seq0.dat", source_path="x", run=1, seq=0, size=1, daq_write_time=None)
    jobs = JobStore(bk)
    job = jobs.add(
        file="run1-seq0.dat", try_number=1, backend="local", name="j", queue="q",
        memory_mb=1, walltime_s=9,
    )  # fmt: skip
    assert job.state is JobState.NEW
    assert jobs.set_state(job.id, [JobState.NEW], JobState.SUBMITTED)
    assert jobs.set_state(job.id, [JobState.SUBMITTED], JobState.DONE)
    with pytest.raises(IllegalTransition, match="done -> running"):
        jobs.set_state(job.id, [JobState.DONE], JobState.RUNNING)
    with pytest.raises(ValueError, match="set_state"):
        jobs.update(job.id, state="new")
    assert not jobs.set_state(job.id, [JobState.NEW], JobState.CANCELLED)  # not new any more
    got = jobs.get(job.id)
    assert got is not None and got.state is JobState.DONE
    bk.close()


def test_an_archive_moves_only_along_its_machine() -> None:
    ARCHIVE_MACHINE.check([ArchiveState.TRANSFERRED], ArchiveState.VERIFIED)
    with pytest.raises(IllegalTransition, match="verified -> created"):
        ARCHIVE_MACHINE.check([ArchiveState.VERIFIED], ArchiveState.CREATED)
