"""Fixtures of the ingest tests: a farm in a temporary directory, raw files, a running watcher."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from farmtools.bookkeeping.db import Bookkeeping
from farmtools.config import (
    DaqSection,
    DatabaseSection,
    FarmConfig,
    FarmSection,
    IngestSection,
    StorageSection,
)
from farmtools.ingest.service import IngestService
from farmtools.rawdata import RawFileWriter
from farmtools.storage import LocalStorage, Storage


def write_raw(path: Path, run: int, events: int = 2, *, payload: int = 3000, fill: int = 7) -> Path:
    """A valid raw file of ``events`` small (compressed-flagged) events: structure is all ingest checks."""
    rng = bytes((fill + i * 31) % 251 for i in range(payload))
    with RawFileWriter(path, run) as w:
        for i in range(events):
            w.write_event_payload(
                rng, trigger_number=i, seconds=1_700_000_000 + i, nanoseconds=0, compressed=True
            )
    return path


def make_config(tmp: Path, db_url: str | None = None, **storage: Any) -> FarmConfig:
    st: dict[str, Any] = {"backoff_s": 0.05, "backoff_max_s": 0.3, "retries": 3, **storage}
    return FarmConfig(
        farm=FarmSection(home=tmp / "farm"),
        daq=DaqSection(watch_dir=tmp / "daq"),
        storage=StorageSection(**st),
        ingest=IngestSection(settle_s=0.0, retry_alarm_after=3),
        database=DatabaseSection(url=db_url or f"sqlite:///{tmp / 'bk.sqlite'}"),
        base_dir=tmp,
    )


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Wait until ``cond()`` is truthy (the daemon works asynchronously); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Farm:
    cfg: FarmConfig
    bk: Bookkeeping
    storage: Storage
    daq: Path
    services: list[IngestService] = field(default_factory=list)
    threads: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)

    def service(self, storage: Storage | None = None) -> IngestService:
        svc = IngestService(self.cfg, self.bk, storage or self.storage)
        self.services.append(svc)
        return svc

    def start_watch(self, storage: Storage | None = None) -> IngestService:
        """A watcher in a thread, returned once its watches and reconciliation are in place."""
        svc = self.service(storage)
        stop = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                svc.watch(stop)
            except BaseException as exc:  # pragma: no cover - reported by the test
                errors.append(exc)
                raise

        t = threading.Thread(target=run, name="ingest-watch", daemon=True)
        t.start()
        # The watcher is ready once it registered the sentinel written here (close-write seen).
        sentinel = self.daq / f".ready-{len(self.threads)}"
        sentinel.write_text("x")
        wait_for(lambda: self.bk.get(sentinel.name) is not None or errors, what="watcher start")
        assert not errors, errors
        self.threads.append((t, stop))
        return svc

    def stop_all(self) -> None:
        for t, stop in self.threads:
            stop.set()
            t.join(timeout=30)
            assert not t.is_alive(), "the watcher did not stop"
        self.threads.clear()
        for s in self.services:
            s.close()

    def state(self, name: str) -> str | None:
        rec = self.bk.get(name)
        return str(rec.state) if rec is not None else None

    def wait_state(self, name: str, state: str, timeout: float = 30.0) -> None:
        wait_for(lambda: self.state(name) == state, timeout, f"{name} {state}")

    def events(self, name: str) -> list[str]:
        return [e.event for e in self.bk.story(name)]

    def raw(self, name: str, run: int, sub: str = "", **kw: Any) -> Path:
        d = self.daq / sub if sub else self.daq
        d.mkdir(parents=True, exist_ok=True)
        return write_raw(d / name, run, **kw)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    cfg = make_config(tmp_path)
    daq = cfg.path(cfg.daq.watch_dir)
    daq.mkdir(parents=True)
    bk = Bookkeeping.from_config(cfg)
    f = Farm(cfg, bk, LocalStorage(cfg.path(cfg.storage.input)), daq)
    try:
        yield f
    finally:
        f.stop_all()
        bk.close()


def snapshot(path: Path) -> tuple[bytes, int, int]:
    """Bytes, mtime and mode of a source file: ingest must never change them."""
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns, st.st_mode
