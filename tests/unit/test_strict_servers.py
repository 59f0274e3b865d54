"""Strict mode: a real-server test whose server is missing fails; it skips only when asked.

A small suite using the project's own plugins (server fixtures, tests/summary.py) is run in a
pytest subprocess with the servers' binaries hidden from PATH (an empty PATH: xrootd and the
Slurm daemons are looked up there); nothing is started.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from tests.servers.strict import ALLOW_SKIP

ROOT = Path(__file__).resolve().parents[2]

SUITE = """
import pytest

def test_xrootd(xrootd_server):
    pass

def test_slurm(slurm_cluster):
    pass

@pytest.mark.postgres
def test_skips_itself():
    pytest.skip("no database today")

def test_plain():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    pytester.makeini("[pytest]\nmarkers =\n" + "".join(f"    {m}\n" for m in ini["markers"]))
    pytester.makeconftest(
        'pytest_plugins = ["tests.summary", "tests.servers.xrootd", "tests.servers.slurm"]\n'
    )
    pytester.makepyfile(test_servers=SUITE)
    monkeypatch.setenv("PATH", str(pytester.mkdir("empty-bin")))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return pytester


def _row(output: str, marker: str) -> list[int]:
    """passed, failed, skipped, deselected of ``marker`` in the per-marker table."""
    m = re.search(rf"^{marker} +(\d+) +(\d+) +(\d+) +(\d+)$", output, re.MULTILINE)
    assert m is not None, f"no {marker} row in:\n{output}"
    return [int(n) for n in m.groups()]


def test_missing_server_fails_in_strict_mode(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_SKIP, raising=False)  # unset is strict, as under make test
    result = suite.runpytest_subprocess("-rA", timeout=120)
    out = result.stdout.str()
    # the fixtures fail (an error in setup), they do not skip
    result.assert_outcomes(passed=1, errors=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "xrootd is not on PATH (Debian xrootd-server)" in out
    assert "munged is not on PATH (Debian munge)" in out
    assert "scripts/setup.sh" in out
    # a real-server test that skips by itself is reported as failed
    assert "strict mode: a real-server test (postgres) may not skip" in out
    assert "no database today" in out
    assert "tests per marker (strict)" in out
    assert _row(out, "xrootd") == [0, 1, 0, 0]
    assert _row(out, "slurm") == [0, 1, 0, 0]
    assert _row(out, "postgres") == [0, 1, 0, 0]
    assert _row(out, "unmarked") == [1, 0, 0, 0]


def test_missing_server_skips_only_when_allowed(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_SKIP, "1")
    result = suite.runpytest_subprocess("-rA", "-m", "not slurm", timeout=120)
    out = result.stdout.str()
    result.assert_outcomes(passed=1, skipped=2, deselected=1)
    assert result.ret == pytest.ExitCode.OK
    assert f"xrootd is not on PATH (Debian xrootd-server) ({ALLOW_SKIP}=1)" in out
    assert f"tests per marker (skips allowed, {ALLOW_SKIP}=1)" in out
    assert _row(out, "xrootd") == [0, 0, 1, 0]
    # the fixture's marker was given to the test, so -m deselected it
    assert _row(out, "slurm") == [0, 0, 0, 1]
    assert _row(out, "postgres") == [0, 0, 1, 0]
