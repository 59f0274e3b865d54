"""``farmtools monitor serve`` as the shift crew starts it: a real process, a real socket.

The in-process server (MonitorServer) is tested elsewhere; here the command itself runs as a
subprocess, so what is checked is what an operator gets: the address it binds when farm.toml
says nothing (loopback), that it answers there and refuses every write, and that it warns
when told to listen on a non-loopback address without authentication.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import psutil
import pytest

from farmtools.config import FarmConfig, MonitorSection, load_config
from tests.servers.process import free_port, stop_pid, wait_for_port

WARNING = "without authentication"


def test_default_configuration_binds_loopback_8050(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (MonitorSection().host, MonitorSection().port) == ("127.0.0.1", 8050)
    monkeypatch.delenv("FARMTOOLS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no farm.toml here: the embedded default
    cfg = load_config()
    assert isinstance(cfg, FarmConfig)
    assert (cfg.monitor.host, cfg.monitor.port) == ("127.0.0.1", 8050)
    rendered = (Path(__file__).parents[3] / "templates" / "farm.toml.j2").read_text()
    assert 'farmtools_monitor_host | default("127.0.0.1")' in rendered
    assert "farmtools_monitor_port | default(8050)" in rendered


class Served:
    """One ``farmtools monitor serve`` process and its output."""

    def __init__(self, home: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = home / f"serve-{len(list(home.glob('serve-*.log')))}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "farmtools", "monitor", "serve", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def listening(self) -> set[tuple[str, int]]:
        """The addresses the process listens on, as the kernel reports them."""
        return {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(self.proc.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_pid(self.proc.pid)
        self.proc.wait(timeout=30)


@pytest.fixture
def farm_toml(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """farm.toml with only a free port: host and everything else stay the defaults."""
    port = free_port()
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f'[farm]\nhome = "farm"\n[monitor]\nport = {port}\n')
    yield cfg, port


def test_serve_answers_on_loopback_only_and_is_read_only(farm_toml: tuple[Path, int]) -> None:
    cfg, port = farm_toml
    srv = Served(cfg.parent, ["--config", str(cfg)])
    try:
        wait_for_port(port, timeout=60, proc=srv.proc, log=str(srv.log))
        assert srv.listening() == {("127.0.0.1", port)}
        base = f"http://127.0.0.1:{port}"
        assert httpx2.get(base + "/healthz").text == "ok"
        tree = httpx2.get(base + "/api/tree").json()
        assert {"purity", "lem_gain", "dataflow"} <= {t["name"] for t in tree}
        page = httpx2.get(base + "/")
        assert page.status_code == 200 and "plot" in page.text
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/", "/api/tree", "/api/alarms", "/metrics"):
                r = httpx2.request(method, base + path, content=b"{}")
                assert r.status_code == 405, (method, path, r.status_code)
        assert WARNING not in srv.output()
        assert f"farmtools monitor on http://127.0.0.1:{port}" in srv.output()
    finally:
        srv.stop()


def test_serve_warns_when_exposed_without_authentication(
    farm_toml: tuple[Path, int], tmp_path: Path
) -> None:
    cfg, port = farm_toml
    srv = Served(cfg.parent, ["--config", str(cfg), "--host", "0.0.0.0"])
    try:
        wait_for_port(port, timeout=60, proc=srv.proc, log=str(srv.log))
        assert srv.listening() == {("0.0.0.0", port)}
        assert f"farmtools.monitor WARNING serving on 0.0.0.0 {WARNING}" in srv.output()
        assert httpx2.get(f"http://127.0.0.1:{port}/healthz").text == "ok"
    finally:
        srv.stop()

    # the same exposure with authentication configured: no warning, and a password is asked for
    port2 = free_port()
    authed = tmp_path / "authed.toml"
    authed.write_text(
        f'[farm]\nhome = "farm"\n[monitor]\nport = {port2}\nauth_user = "shift"\n'
        'auth_password_env = "FT_SERVE_TEST_PW"\n'
    )

    env = {**os.environ, "FT_SERVE_TEST_PW": "s3cret"}
    srv = Served(tmp_path, ["--config", str(authed), "--host", "0.0.0.0"], env=env)
    try:
        wait_for_port(port2, timeout=60, proc=srv.proc, log=str(srv.log))
        assert WARNING not in srv.output()
        base = f"http://127.0.0.1:{port2}"
        assert httpx2.get(base + "/api/tree").status_code == 401
        assert httpx2.get(base + "/api/tree", auth=("shift", "s3cret")).status_code == 200
    finally:
        srv.stop()


def test_serve_on_a_busy_port_fails_before_saying_it_serves(farm_toml: tuple[Path, int]) -> None:
    """Issue 13: one line naming the address, not "monitor on http://..." and then a failure."""
    import socket

    cfg, port = farm_toml
    with socket.create_server(("127.0.0.1", port)):  # someone else holds the port
        res = subprocess.run(
            [sys.executable, "-m", "farmtools", "monitor", "serve", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert f"monitor: cannot listen on 127.0.0.1:{port}: Address already in use" in out
    assert "monitor on http" not in out and "Traceback" not in out


@pytest.mark.postgres
def test_serve_never_prints_the_database_password(tmp_path: Path, postgres_url: str) -> None:
    """Issue 13: the start line (it lands in the journal) names the database, password masked."""
    password = "never-in-the-journal"
    user, rest = postgres_url.split("://", 1)[1].split("@", 1)
    port = free_port()
    cfg = tmp_path / "farm.toml"
    cfg.write_text(
        f'[farm]\nhome = "farm"\n[monitor]\nport = {port}\n[database]\n'
        f'url = "postgresql+psycopg://{user}:{password}@{rest}"\n'
    )
    srv = Served(tmp_path, ["--config", str(cfg)])
    try:
        wait_for_port(port, timeout=60, proc=srv.proc, log=str(srv.log))
        assert httpx2.get(f"http://127.0.0.1:{port}/healthz").text == "ok"  # past the start line
        out = srv.output()
        assert f"database: postgresql+psycopg://{user}:***@{rest}" in out, out
        assert password not in out
    finally:
        srv.stop()
    assert password not in srv.output()


def test_a_sigterm_stops_the_page_cleanly_and_its_heartbeat_says_stopped(
    farm_toml: tuple[Path, int],
) -> None:
    """systemd and the challenge stop the page with SIGTERM; uvicorn re-raises it after its own
    shutdown, which without a handler killed the process before its heartbeat said "stopped"
    (``farmtools status`` then called the monitor silent after every stop)."""
    import signal

    from farmtools.bookkeeping import Bookkeeping

    cfg, port = farm_toml
    srv = Served(cfg.parent, ["--config", str(cfg)])
    try:
        wait_for_port(port, timeout=60, proc=srv.proc, log=str(srv.log))
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=60) == 0, srv.output()
    finally:
        if srv.proc.poll() is None:
            srv.stop()
    bk = Bookkeeping.from_config(load_config(cfg))
    try:
        (beat,) = [h for h in bk.heartbeats() if h.daemon == "monitor"]
        assert beat.stopped is not None, beat
    finally:
        bk.close()
