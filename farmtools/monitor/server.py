"""Running the monitor: in a thread of the caller (data challenge, tests) or in the foreground.

Owns :class:`MonitorServer`: uvicorn serving :func:`~farmtools.monitor.app.build_app` in a daemon
thread, with :meth:`~MonitorServer.start` returning once the socket listens and
:meth:`~MonitorServer.stop` returning once it is closed and the monitor's loops ended::

    with MonitorServer(cfg, port=0) as srv:      # port 0: a free port, see srv.url
        ...

Imports uvicorn and :mod:`farmtools.monitor.app`.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

from farmtools.monitor.app import Monitor, MonitorError, build_app

if TYPE_CHECKING:
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import FarmConfig


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class MonitorServer:
    """The monitoring page served by uvicorn in a background thread."""

    def __init__(
        self,
        cfg: FarmConfig,
        *,
        host: str | None = None,
        port: int | None = None,
        bk: Bookkeeping | None = None,
        use_db: bool = True,
    ) -> None:
        import uvicorn

        self.monitor = Monitor(cfg, bk, use_db=use_db)
        self.host = host if host is not None else cfg.monitor.host
        port = cfg.monitor.port if port is None else port
        self.app = build_app(self.monitor)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        servers = getattr(self._server, "servers", [])
        for s in servers:
            for sock in s.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> MonitorServer:
        self.monitor.start()
        self._thread = threading.Thread(target=self._server.run, name="monitor-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self.monitor.stop()
                raise MonitorError(
                    f"monitor could not listen on {self.host}:{self._server.config.port}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise MonitorError(f"monitor not listening after {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.monitor.stop()

    def __enter__(self) -> MonitorServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
