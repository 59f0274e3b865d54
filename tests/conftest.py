"""Shared pytest configuration: server fixtures are plugins under tests/servers/."""

pytest_plugins: list[str] = [
    "tests.servers.xrootd",
    "tests.servers.postgres",
    "tests.servers.mockfarm",
    "tests.servers.slurm",
    "tests.servers.smtp",
    "tests.servers.chromium",
]
