"""The mock farm as a pytest module fixture: podman containers, provisioned twice by Ansible.

``scripts/mockfarm/up.sh`` starts the nodes (image, apt repository and wheelhouse are cached
under .mockfarm/; testinfra reaches the nodes over SSH with the configuration it writes there),
``provision.sh`` runs ``ansible-playbook -i inventories/mockfarm site.yml`` twice (the second run
must change nothing), and ``down.sh`` removes the ft- containers and network once the module
that uses them is done.  A module fixture, not a session one: six systemd containers and the
farm they run (Slurm, XRootD, the farmtools daemons) would otherwise stay up, taking CPU, through
the rest of the suite.  ``MOCKFARM_KEEP=1`` leaves the farm running for a look by hand.  Each
step's duration is printed (a figure for the report, never an assertion).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers.strict import missing, need_tools

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "mockfarm"
NODES = ("evb", "storage", "head", "worker1", "worker2", "l2")
MOCKFARM_DIR = Path(os.environ.get("MOCKFARM_DIR") or ROOT / ".mockfarm")
_RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)


@dataclass
class PlaybookRun:
    """The PLAY RECAP of one ansible-playbook run: host -> counts, and the whole output."""

    returncode: int
    output: str
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, returncode: int, output: str) -> PlaybookRun:
        recap = {
            m[1]: {
                "ok": int(m[2]),
                "changed": int(m[3]),
                "unreachable": int(m[4]),
                "failed": int(m[5]),
            }
            for m in _RECAP.finditer(output)
        }
        return cls(returncode, output, recap)

    def changed_tasks(self) -> list[str]:
        """Names of the tasks reported changed (for a readable failure message)."""
        names, current = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                current = line
            elif line.startswith("changed:"):
                names.append(f"{current} {line}")
        return names


@dataclass
class MockFarm:
    """A running, provisioned mock farm."""

    first: PlaybookRun
    second: PlaybookRun
    timings: dict[str, float]

    def host(self, node: str) -> Any:
        """testinfra host of a node, over SSH with the client configuration up.sh wrote."""
        import testinfra

        return testinfra.get_host(f"ssh://{node}", ssh_config=str(MOCKFARM_DIR / "ssh" / "config"))


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # No stdin: ansible-playbook refuses a non-blocking one (pytest run in the background).
    return subprocess.run(
        cmd,
        env=env,
        cwd=ROOT,
        text=True,
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def mockfarm() -> Iterator[MockFarm]:
    """Bring the farm up, provision it twice, yield it, tear it down."""
    need_tools("podman", package="podman")
    need_tools("mmdebstrap", package="mmdebstrap")
    need_tools("dpkg-scanpackages", package="dpkg-dev")
    if os.geteuid() != 0:
        missing(
            "the mock farm needs root (rootful podman, cgroup mounts)",
            "run make test as root, as CI does",
        )
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(MOCKFARM_DIR / "containers.conf")
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        up = _run([str(SCRIPTS / "up.sh")], env)
        timings["up"] = time.monotonic() - t0
        assert up.returncode == 0, f"up.sh failed:\n{up.stdout}\n{up.stderr}"
        runs = []
        for label in ("provision-1", "provision-2"):
            t0 = time.monotonic()
            proc = _run([str(SCRIPTS / "provision.sh")], env)
            timings[label] = time.monotonic() - t0
            runs.append(PlaybookRun.parse(proc.returncode, proc.stdout + proc.stderr))
            # Kept for a look (task times of profile_tasks at the end): .mockfarm/<label>.log
            (MOCKFARM_DIR / f"{label}.log").write_text(proc.stdout + proc.stderr)
        print("\nmock farm timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
        yield MockFarm(runs[0], runs[1], timings)
    finally:
        if os.environ.get("MOCKFARM_KEEP") != "1":
            t0 = time.monotonic()
            _run([str(SCRIPTS / "down.sh")], env)
            print(f"\nmock farm down in {time.monotonic() - t0:.0f} s")
