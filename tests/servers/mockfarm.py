"""The mock farm as a pytest module fixture: podman containers, provisioned twice by Ansible.

As ``make mockfarm-up`` does, through the Vagrantfile: ``scripts/mockfarm/host.sh`` prepares the
host (image, apt repository and wheelhouse cached under .mockfarm/, the internal network, the SSH
configuration testinfra uses), ``vagrant up --no-provision`` starts the nodes with the docker
provider on podman, ``vagrant provision`` runs the Ansible provisioner (site.yml on
inventories/mockfarm) twice (the second run must change nothing), and ``vagrant destroy -f``
then ``down.sh`` remove the ft- containers and network once the module that uses them is done
(``MOCKFARM_VAGRANT=0``: the podman scripts alone, ``up.sh`` and ``provision.sh``).
A module fixture, not a session one: six systemd containers and the farm they run (Slurm,
XRootD, the farmtools daemons) would otherwise stay up, taking CPU, through the rest of the
suite.  ``MOCKFARM_KEEP=1`` leaves the farm running for a look by hand.  Each
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
#: The nodes, in the order of nodes.txt (shared with the Vagrantfile and the podman scripts).
NODES = tuple(
    line.split()[0]
    for line in (SCRIPTS / "nodes.txt").read_text().splitlines()
    if line.partition("#")[0].strip()
)
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
        """testinfra host of a node, over SSH with the client configuration host.sh wrote."""
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


def _steps() -> dict[str, list[str]]:
    """The commands of each step: through the Vagrantfile (the default, as ``make mockfarm-up``),
    or the podman scripts alone with ``MOCKFARM_VAGRANT=0`` (the path before issue 20)."""
    if os.environ.get("MOCKFARM_VAGRANT", "1") == "0":
        return {
            "up": [str(SCRIPTS / "up.sh")],
            "provision": [str(SCRIPTS / "provision.sh")],
            "down": [str(SCRIPTS / "down.sh")],
        }
    # host.sh, then `vagrant up --no-provision` in one shell: each step is timed as a whole.
    return {
        "up": [
            "sh",
            "-c",
            f"{SCRIPTS / 'host.sh'} docker && vagrant up --no-provision --provider=docker",
        ],
        "provision": ["vagrant", "provision"],
        "down": ["sh", "-c", f"vagrant destroy -f; {SCRIPTS / 'down.sh'}"],
    }


@pytest.fixture(scope="module")
def mockfarm() -> Iterator[MockFarm]:
    """Bring the farm up, provision it twice, yield it, tear it down."""
    need_tools("podman", package="podman")
    need_tools("mmdebstrap", package="mmdebstrap")
    need_tools("dpkg-scanpackages", package="dpkg-dev")
    steps = _steps()
    if steps["provision"][0] == "vagrant":
        need_tools("vagrant", package="vagrant")
    if os.geteuid() != 0:
        missing(
            "the mock farm needs root (rootful podman, cgroup mounts)",
            "run make test as root, as CI does",
        )
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(MOCKFARM_DIR / "containers.conf")
    env["VAGRANT_CHECKPOINT_DISABLE"] = "1"
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        up = _run(steps["up"], env)
        timings["up"] = time.monotonic() - t0
        assert up.returncode == 0, f"bringing the farm up failed:\n{up.stdout}\n{up.stderr}"
        runs = []
        for label in ("provision-1", "provision-2"):
            t0 = time.monotonic()
            proc = _run(steps["provision"], env)
            timings[label] = time.monotonic() - t0
            runs.append(PlaybookRun.parse(proc.returncode, proc.stdout + proc.stderr))
            # Kept for a look (task times of profile_tasks at the end): .mockfarm/<label>.log
            (MOCKFARM_DIR / f"{label}.log").write_text(proc.stdout + proc.stderr)
        print("\nmock farm timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
        yield MockFarm(runs[0], runs[1], timings)
    finally:
        if os.environ.get("MOCKFARM_KEEP") != "1":
            t0 = time.monotonic()
            _run(steps["down"], env)
            print(f"\nmock farm down in {time.monotonic() - t0:.0f} s")
