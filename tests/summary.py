"""Plugin: how many tests ran per marker, and no real-server test that skips in strict mode.

Why: "1200 passed, 40 skipped" does not say whether the XRootD or Slurm tests ran.  At the end
of every run a table gives passed / failed / skipped / deselected per marker of
``pyproject.toml`` (a test counts under each of its markers; ``unmarked`` are the others).

A test that uses a server fixture gets that server's marker here (so ``-m "not xrootd"`` and
the table cannot miss it).  In strict mode (``tests/servers/strict.py``: the default, and
always under ``make test``) a real-server test that skips anyway (a ``pytest.skip`` in the test,
``FARMTOOLS_FARM_TESTS=0``...) is reported as failed: ``.ci/run`` cannot pass with one skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import pytest

from tests.servers.strict import ALLOW_SKIP, strict

# markers of tests that talk to a real server (``slow`` is not one)
SERVER_MARKERS = frozenset({"xrootd", "postgres", "slurm", "smtp", "browser", "farm"})
# fixture -> the marker a test using it must carry
SERVER_FIXTURES = {
    "xrootd_server": "xrootd",
    "xrootd_factory": "xrootd",
    "postgres_server": "postgres",
    "postgres_url": "postgres",
    "slurm_cluster": "slurm",
    "smtp_server": "smtp",
    "chromium_browser": "browser",
    "mockfarm": "farm",
}
UNMARKED = "unmarked"
OUTCOMES = ("passed", "failed", "skipped", "deselected")


def _marker_names(config: pytest.Config) -> list[str]:
    """The project's markers, in pyproject.toml's order."""
    return [line.split(":", 1)[0].strip() for line in config.getini("markers")]


class MarkerSummary:
    """Final outcome of each test (a setup or teardown error counts as failed) and its markers."""

    def __init__(self, config: pytest.Config) -> None:
        self.names = _marker_names(config)
        self.known = set(self.names) | SERVER_MARKERS
        self.markers: dict[str, tuple[str, ...]] = {}
        self.outcome: dict[str, str] = {}
        self.strict_failures: list[str] = []

    def _record(self, nodeid: str, outcome: str) -> None:
        if self.outcome.get(nodeid) != "failed":
            self.outcome[nodeid] = outcome

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Give each test the marker of the server fixtures it uses (before ``-m`` deselects)."""
        for item in items:
            for fixture in getattr(item, "fixturenames", ()):
                marker = SERVER_FIXTURES.get(fixture)
                if marker is not None and item.get_closest_marker(marker) is None:
                    item.add_marker(marker)
            names = {m.name for m in item.iter_markers() if m.name in self.known}
            self.markers[item.nodeid] = tuple(sorted(names))

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            self._record(item.nodeid, "deselected")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """In strict mode, a real-server test that skipped is turned into a failure."""
        report = yield
        server = SERVER_MARKERS.intersection(self.markers.get(item.nodeid, ()))
        if report.skipped and server and strict() and not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.outcome = "failed"
            report.longrepr = (
                f"strict mode: a real-server test ({', '.join(sorted(server))}) may not skip; "
                f"it skipped because: {reason}\n"
                f"Install what is missing (./scripts/setup.sh), or run pytest by hand with "
                f"{ALLOW_SKIP}=1 to allow skips (never under make test)."
            )
            self.strict_failures.append(item.nodeid)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._record(report.nodeid, "failed")
        elif report.skipped:
            self._record(report.nodeid, "skipped")
        elif report.when == "call":
            self._record(report.nodeid, "passed")

    def table(self) -> dict[str, Counter[str]]:
        """marker -> outcome -> number of tests (a test counts under each of its markers)."""
        rows: dict[str, Counter[str]] = {name: Counter() for name in [*self.names, UNMARKED]}
        for nodeid, outcome in self.outcome.items():
            for marker in self.markers.get(nodeid) or (UNMARKED,):
                rows.setdefault(marker, Counter())[outcome] += 1
        return rows

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """The per-marker table, and the strict-mode verdict on skipped real-server tests."""
        tw = terminalreporter
        if tw.config.option.collectonly:
            return
        mode = "strict" if strict() else f"skips allowed, {ALLOW_SKIP}=1"
        tw.write_sep("=", f"tests per marker ({mode})")
        tw.write_line(f"{'marker':<10}" + "".join(f"{o:>12}" for o in OUTCOMES))
        for marker, counts in self.table().items():
            tw.write_line(f"{marker:<10}" + "".join(f"{counts[o]:>12}" for o in OUTCOMES))
        if self.strict_failures:
            tw.write_line(
                f"strict mode: {len(self.strict_failures)} real-server test(s) skipped, "
                "reported as failed: " + " ".join(self.strict_failures[:10]),
                red=True,
                bold=True,
            )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(MarkerSummary(config), "farmtools-marker-summary")
