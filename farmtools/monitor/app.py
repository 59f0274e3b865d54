"""The monitoring web application: :class:`Monitor` (state and background loops) and its Starlette app.

Routes (all GET: the page is read-only, any other method is 405):

``/``                              the page (task tree, plots, run and reference selectors, alarms)
``/static/...``                    its JavaScript/CSS and plotly.min.js from the plotly package
``/api/tree``                      tasks and their items
``/api/runs``                      run numbers known to the bookkeeping or the analyses
``/api/plot/{task}/{item}``        ``?run=N&ref=M``: a plotly figure and a digest of it
                                   (``ref=pinned``: the item's pinned reference run)
``/api/event/{item}``              ``?run=N&seq=M&event=K`` (each optional: the newest): the event
                                   display's figure, a digest and what the event is
``/api/overview``                  ``?run=N``: every task item's check state, the worst on top
``/api/alarms``                    unacknowledged alarms
``/shift``                         what needs attention now: ``farmtools status`` as a page
``/api/shift``                     the same as ``farmtools status --json``
``/api/status``                    what changed (results version, totals time, unreadable files)
``/metrics``                       Prometheus text format
``/healthz``                       "ok"

HTTP basic authentication is on when ``monitor.auth_user`` is set; the password is read from
the environment variable ``monitor.auth_password_env`` (never from a file of the repository).
Imports Starlette, Jinja2 and the monitor's modules; the bookkeeping for its engine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from farmtools.monitor import (
    builtin,  # noqa: F401  (registers the built-in tasks)
    evbtask,  # noqa: F401  (registers the 6x6x6 event-building task)
    eventdisplay,  # registers the event display
)
from farmtools.monitor.alarms import AlarmChecker
from farmtools.monitor.checkstore import CheckStore
from farmtools.monitor.metrics import FarmCollector, make_registry, render
from farmtools.monitor.overview import CheckRunner, overview
from farmtools.monitor.queries import FarmQueries, Totals
from farmtools.monitor.references import References
from farmtools.monitor.store import SummaryStore
from farmtools.monitor.tasks import TASKS, Context, MonTask

if TYPE_CHECKING:
    from farmtools.bookkeeping import Bookkeeping
    from farmtools.config import FarmConfig
    from farmtools.monitor.attention import ShiftStatus

log = logging.getLogger("farmtools.monitor")
HERE = Path(__file__).parent


class MonitorError(RuntimeError):
    """The monitor cannot start as configured (e.g. auth user without a password)."""


def plotly_js() -> Path:
    """plotly.min.js bundled with the plotly Python package: served locally, no CDN."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise MonitorError(f"{path}: plotly.min.js missing from the plotly package")
    return path


class Monitor:
    """Everything the page reads, and the loops that keep it fresh.

    ``bk`` None: no database (analysis results only); by default the configuration's database
    is opened read-mostly (the monitor writes only its own alarms).
    """

    def __init__(
        self, cfg: FarmConfig, bk: Bookkeeping | None = None, *, use_db: bool = True
    ) -> None:
        import importlib

        self.cfg = cfg
        for module in cfg.monitor.plugins:
            # a typo in farm.toml must stop the start with the key named, not a bare traceback
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise MonitorError(
                    f"monitor.plugins: cannot import {module!r} ({exc}); is it on the "
                    "daemon's Python path?"
                ) from exc
        if bk is None and use_db:
            from farmtools.bookkeeping import Bookkeeping

            bk = Bookkeeping.from_config(cfg)
        self.bk = bk
        self.queries = FarmQueries(bk.engine) if bk is not None else None
        self.results = SummaryStore(
            cfg.path(cfg.analysis.summary_dir), window=cfg.monitor.trend_points
        )
        self.totals = Totals(self.queries, cfg.monitor.totals_s) if self.queries else None
        self.ctx = Context(cfg, self.queries, self.results, self.totals)
        self.tasks: dict[str, MonTask] = {name: cls() for name, cls in TASKS.items()}
        engine = bk.engine if bk is not None else None
        self.references = References(cfg, engine)
        self.checks = CheckStore(engine)
        self.runner = CheckRunner(self.ctx, self.tasks, self.references, self.checks)
        self.checker = AlarmChecker(cfg, bk, self.queries, self.results, self.runner)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.password: str | None = None
        if cfg.monitor.auth_user:
            self.password = os.environ.get(cfg.monitor.auth_password_env)
            if not self.password:
                raise MonitorError(
                    f"monitor.auth_user is set but the environment variable "
                    f"{cfg.monitor.auth_password_env} (monitor.auth_password_env) is empty"
                )

    # -- background ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the totals refresher and the result/alarm checker (daemon threads).

        Once started, the checker's loop scans the summary directory every ``poll_s`` and page
        requests only read what it found; before (a Monitor used without its loops, as in
        tests), each request scans (at most once a second).
        """
        self.results.refresh(force=True)
        if self.totals is not None:
            self.totals.start()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="monitor-checker", daemon=True)
            self._thread.start()
            threading.Thread(target=self._warm_up, name="monitor-warm-up", daemon=True).start()

    @staticmethod
    def _warm_up() -> None:
        try:
            eventdisplay.warm_up()
        except Exception:  # a warm-up that fails only costs the first request its time
            log.exception("event display warm-up failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self.totals is not None:
            self.totals.stop()

    def _fresh(self) -> None:
        if self._thread is None:
            self.results.refresh()

    def _loop(self) -> None:
        from farmtools.bookkeeping.heartbeat import Heartbeat

        heartbeat = Heartbeat(self.bk, "monitor", self.cfg.monitor.heartbeat_s)
        while not self._stop.is_set():
            heartbeat.beat()  # first: the check must not find this monitor's own old beat silent
            try:
                self.checker.check()
            except Exception:  # the page must keep running whatever one check hits
                log.exception("alarm check failed")
            self._stop.wait(min(self.cfg.monitor.poll_s, heartbeat.every_s))
        self.checker.flush(force=True)
        heartbeat.stop()

    # -- data for the routes -------------------------------------------------------------------
    def tree(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "title": t.title,
                "per_run": t.per_run,
                "items": [{"id": i.id, "title": i.title} for i in t.items(self.ctx)],
            }
            for name, t in self.tasks.items()
        ]

    def runs(self, limit: int = 2000) -> list[int]:
        """The newest ``limit`` runs known to the analyses or the bookkeeping, newest first."""
        self._fresh()
        known = set(self.results.runs()[-limit:])
        if self.queries is not None:
            known.update(self.queries.run_numbers(limit))
        return sorted(known, reverse=True)[:limit]

    def plot(
        self, task_name: str, item: str, run: int | None, ref: int | str | None
    ) -> dict[str, Any]:
        """The figure of ``task_name/item``; ``ref`` a run, None, or "pinned" (the item's own)."""
        task = self.tasks.get(task_name)
        if task is None or item not in {i.id for i in task.items(self.ctx)}:
            raise KeyError(f"{task_name}/{item}")
        if ref == "pinned":
            ref = self.references.get(task_name, item)
        assert ref is None or isinstance(ref, int)
        self._fresh()
        data = task.read(self.ctx, item, run)
        reference = task.read(self.ctx, item, ref) if ref is not None and task.per_run else None
        fig = task.draw(item, data, reference)
        body = json.dumps(fig, separators=(",", ":"), allow_nan=False, default=str)
        digest = hashlib.blake2b(body.encode(), digest_size=12).hexdigest()
        return {"figure": json.loads(body), "digest": digest}

    def event(self, item: str, run: int | None, seq: int | None, event: int | None) -> bytes:
        """The event display of one event (None: the newest) as JSON; KeyError: unknown item."""
        if item not in {i.id for i in self.tasks[eventdisplay.EventDisplay.name].items(self.ctx)}:
            raise KeyError(item)
        return eventdisplay.show_event_json(self.cfg, run, seq, event, item)

    def overview(self, run: int | None = None) -> dict[str, Any]:
        """The overview (:func:`farmtools.monitor.overview.overview`); a run never judged is
        judged now (and stored), so picking an old run in the selector shows its cells; a run
        nobody knows is not (nothing is stored for it)."""
        if run is not None and not self.checks.for_run(run) and run in self.runs():
            self._fresh()
            self.runner.run(run)
        return overview(
            self.tasks, self.ctx, self.checks, self.references, run, self.runner.unchecked
        )

    def alarms(self) -> list[dict[str, Any]]:
        if self.queries is not None:
            return self.queries.open_alarms()
        return [
            {
                "id": None,
                "time": None,
                "file": None,
                "source": "monitor",
                "kind": b.kind,
                "message": b.message,
            }
            for b in self.checker.local.values()
        ]

    def shift(self) -> ShiftStatus | None:
        """What needs attention now (``farmtools status``), None without a database."""
        from farmtools.monitor.attention import collect

        if self.bk is None:
            return None
        return collect(self.cfg, self.bk, self.checker.buffer_sampler)

    def status(self) -> dict[str, Any]:
        snap = self.totals.snapshot if self.totals else None
        return {
            "results_version": self.results.version,
            "results": len(self.results.results()),
            "unreadable": dict(list(self.results.errors.items())[:50]),
            "unreadable_count": len(self.results.errors),
            "totals_taken": snap.taken.isoformat() if snap and snap.taken else None,
            "totals_error": self.totals.error if self.totals else None,
            "poll_s": self.cfg.monitor.poll_s,
        }


class BasicAuth:
    """ASGI middleware: HTTP basic authentication against one user (constant-time compare)."""

    def __init__(self, app: ASGIApp, user: str, password: str) -> None:
        self.app = app
        self.expected = (user.encode(), password.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._ok(scope):
            resp = PlainTextResponse(
                "authentication required",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="farmtools monitor"'},
            )
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _ok(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:6].lower() == b"basic ":
                try:
                    user, _, pw = base64.b64decode(value[6:], validate=True).partition(b":")
                except (binascii.Error, ValueError):
                    return False
                return secrets.compare_digest(user, self.expected[0]) & secrets.compare_digest(
                    pw, self.expected[1]
                )
        return False


def _int_param(request: Request, name: str) -> int | None:
    v = request.query_params.get(name, "")
    if v in ("", "latest", "none"):
        return None
    if not v.isdigit():
        raise ValueError(f"{name}={v!r}: expected a run number")
    return int(v)


def build_app(monitor: Monitor) -> Starlette:
    """The Starlette application over ``monitor`` (whose loops the caller starts)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    registry = make_registry(
        FarmCollector(monitor.cfg, monitor.queries, monitor.totals, monitor.results, monitor.checks)
    )
    plotly_path = plotly_js()

    def index(request: Request) -> Response:
        return templates.TemplateResponse(
            request, "index.html", {"poll_ms": int(monitor.cfg.monitor.poll_s * 1000)}
        )

    def plotly(request: Request) -> Response:
        return FileResponse(plotly_path, media_type="application/javascript")

    def tree(request: Request) -> Response:
        return JSONResponse(monitor.tree())

    def runs(request: Request) -> Response:
        return JSONResponse(monitor.runs())

    def plot(request: Request) -> Response:
        try:
            run = _int_param(request, "run")
            pinned = request.query_params.get("ref") == "pinned"
            ref: int | str | None = "pinned" if pinned else _int_param(request, "ref")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        task, item = request.path_params["task"], request.path_params["item"]
        try:
            return JSONResponse(monitor.plot(task, item, run, ref))
        except KeyError:
            return JSONResponse({"error": f"no task item {task}/{item}"}, status_code=404)
        except Exception as exc:  # show what went wrong in the plot area, keep serving
            log.exception("plot %s/%s failed", task, item)
            return JSONResponse(
                {"error": f"{task}/{item}: {type(exc).__name__}: {exc}"}, status_code=500
            )

    def event(request: Request) -> Response:
        item = request.path_params["item"]
        try:
            run, seq = _int_param(request, "run"), _int_param(request, "seq")
            index = _int_param(request, "event")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            body = monitor.event(item, run, seq, index)
            return Response(body, media_type="application/json")
        except KeyError:
            return JSONResponse({"error": f"no event display item {item}"}, status_code=404)
        except Exception as exc:  # a raw file that cannot be read: say which, keep serving
            log.exception("event display %s failed", item)
            return JSONResponse({"error": f"event display: {exc}"}, status_code=500)

    def overview_route(request: Request) -> Response:
        try:
            run = _int_param(request, "run")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            return JSONResponse(monitor.overview(run))
        except Exception as exc:  # e.g. the database away: say so on the page, keep serving
            log.exception("overview failed")
            return JSONResponse(
                {"error": f"overview: {type(exc).__name__}: {exc}"}, status_code=500
            )

    def alarms(request: Request) -> Response:
        return JSONResponse(monitor.alarms())

    def shift_page(request: Request) -> Response:
        st = monitor.shift()
        if st is None:
            return PlainTextResponse("no bookkeeping database: no shift status", status_code=503)
        refresh = max(5, int(monitor.cfg.monitor.poll_s))
        return templates.TemplateResponse(request, "shift.html", {"st": st, "refresh_s": refresh})

    def shift(request: Request) -> Response:
        from farmtools.listing import jsonable

        st = monitor.shift()
        if st is None:
            return JSONResponse({"error": "no bookkeeping database"}, status_code=503)
        return JSONResponse(jsonable(st.to_json()))

    def status(request: Request) -> Response:
        return JSONResponse(monitor.status())

    def metrics(request: Request) -> Response:
        return Response(render(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    get = ["GET"]
    app = Starlette(
        routes=[
            Route("/", index, methods=get),
            Route("/static/plotly.min.js", plotly, methods=get),
            Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
            Route("/api/tree", tree, methods=get),
            Route("/api/runs", runs, methods=get),
            Route("/api/plot/{task}/{item}", plot, methods=get),
            Route("/api/event/{item}", event, methods=get),
            Route("/api/overview", overview_route, methods=get),
            Route("/api/alarms", alarms, methods=get),
            Route("/shift", shift_page, methods=get),
            Route("/api/shift", shift, methods=get),
            Route("/api/status", status, methods=get),
            Route("/metrics", metrics, methods=get),
            Route("/healthz", healthz, methods=get),
        ]
    )
    if monitor.cfg.monitor.auth_user and monitor.password:
        app.add_middleware(BasicAuth, user=monitor.cfg.monitor.auth_user, password=monitor.password)
    return app
