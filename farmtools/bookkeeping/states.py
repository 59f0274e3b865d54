"""File states and story event names: the vocabulary every stage uses with the bookkeeping DB.

A raw file's ``state`` says what may happen to it next; its story (the ``events`` table) says
what happened.  States follow one path::

    detected -> copying -> stored -> queued -> submitted -> running -> reconstructed -> analysed
                   |          (any)  -> failed | quarantined          (names that are not raw files:
                   +-> detected (retry after a transient error)         ignored)

Archiving is tracked in its own table, not in ``state``: a file can be archived while it is being
analysed.  :data:`FILE_MACHINE` declares every allowed move; the bookkeeping checks each one
against it.  This module imports :mod:`farmtools.statemachine` only.
"""

from __future__ import annotations

from enum import StrEnum

from farmtools.statemachine import StateMachine


class FileState(StrEnum):
    """Current state of a file in the bookkeeping database."""

    #: seen by ingest (close-write or reconciliation), not copied yet; also "waiting for a retry"
    DETECTED = "detected"
    #: a worker (``files.claimed_by``) is copying it to the farm storage
    COPYING = "copying"
    #: on the farm storage, checksum verified: processing may start
    STORED = "stored"
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    RECONSTRUCTED = "reconstructed"
    ANALYSED = "analysed"
    #: processing gave up (after its own retries); a person looks at it
    FAILED = "failed"
    #: can never succeed as it is (truncated, conflicting bytes at the destination...); alarm raised
    QUARANTINED = "quarantined"
    #: not a raw file name (``run<N>-seq<M>.dat``): recorded and left alone
    IGNORED = "ignored"


class Event:
    """Story event names (``events.event``).  Stages may add their own names: it is free text."""

    WRITTEN = "written"  # the DAQ wrote the file (time = file mtime)
    DETECTED = "detected"
    IGNORED = "ignored"
    COPY_STARTED = "copy_started"
    COPY_ENDED = "copy_ended"
    VERIFIED = "verified"
    ALREADY_STORED = "already_stored"  # same bytes were already on the storage: not copied again
    QUEUED = "queued"
    SUBMITTED = "submitted"
    STARTED = "started"
    ENDED = "ended"
    RECONSTRUCTED = "reconstructed"
    ANALYSED = "analysed"
    ARCHIVED = "archived"
    QUARANTINED = "quarantined"
    RETRY = "retry"
    RESUMED = "resumed"  # a transfer left half-done by a dead worker was taken up again
    ERROR = "error"
    ALARM = "alarm"
    FAILED = "failed"


_S = FileState
#: Every move of a file's state, by the stage that makes it; the bookkeeping refuses any other
#: (:class:`farmtools.statemachine.IllegalTransition`).  docs/bookkeeping.md draws it.
FILE_MACHINE = StateMachine.of(
    "file",
    list(FileState),
    initial=[_S.DETECTED, _S.IGNORED],
    moves=[
        # ingest: claim, copy, verify, publish; transient errors and a dead worker's claim go
        # back to detected; what can never succeed is quarantined; a person's retry
        ([_S.DETECTED], [_S.COPYING]),
        ([_S.COPYING], [_S.STORED]),
        ([_S.DETECTED, _S.COPYING], [_S.DETECTED, _S.QUARANTINED]),
        ([_S.QUARANTINED], [_S.DETECTED]),
        # processing: claim, submit, start, end; a retry queues again; giving up fails the file;
        # a person's retry of a failed file
        ([_S.STORED], [_S.QUEUED]),
        ([_S.QUEUED], [_S.SUBMITTED]),
        ([_S.SUBMITTED], [_S.RUNNING]),
        ([_S.QUEUED, _S.SUBMITTED, _S.RUNNING], [_S.RECONSTRUCTED, _S.QUEUED, _S.FAILED]),
        ([_S.FAILED], [_S.STORED]),
        # analyses: a group is analysed, or a file's output cannot be read
        ([_S.RECONSTRUCTED], [_S.ANALYSED, _S.FAILED]),
    ],
)
