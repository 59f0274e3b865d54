"""Shared pytest configuration: server fixtures are plugins under tests/servers/; tests/summary.py
prints the tests per marker and fails a skipped real-server test in strict mode."""

pytest_plugins: list[str] = [
    "pytester",
    "tests.summary",
    "tests.servers.xrootd",
    "tests.servers.postgres",
    "tests.servers.mockfarm",
    "tests.servers.slurm",
    "tests.servers.smtp",
    "tests.servers.chromium",
]
