"""A real one-node Slurm cluster with accounting, on loopback ports, for tests and benchmarks.

Starts, in a temporary directory and in this order: ``munged`` (own key, socket dir mode 755),
MariaDB (``mariadb-install-db`` + ``mariadbd`` on its own port and socket), ``slurmdbd``,
``slurmctld -D`` and ``slurmd -D`` (see ../shared/spec/real-services.md); everything is stopped
by PID.  The fixture ``slurm_cluster`` is session scoped (the start costs a few seconds) and
yields a :class:`SlurmCluster` whose ``env`` (``SLURM_CONF``, ``PATH``) makes ``sbatch``,
``squeue``, ``sacct``, ``scancel`` and Slurm's TORQUE wrappers (``qsub``, ``qstat``, ``qdel``)
talk to it.  Run ``python -m tests.servers.slurm`` to start one by hand (Ctrl-C stops it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.eventually import eventually
from tests.servers.process import _tail, free_port, stop_pid, wait_for_port
from tests.servers.strict import need_tools

HOST = socket.gethostname().split(".")[0]
PARTITION = "prod"


@dataclass
class SlurmCluster:
    """A running cluster: its directory, ports, PIDs and the environment for its clients."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env=self.env, capture_output=True, text=True, check=check, timeout=60
        )

    def stop(self) -> None:
        """Stop every daemon, newest first, by PID."""
        for proc in reversed(self.procs):
            stop_pid(proc.pid)
            if proc.poll() is None:
                proc.wait(timeout=10)
        for pid in reversed(self.pids):
            stop_pid(pid)
        self.procs.clear()
        self.pids.clear()


def _start(
    cluster: SlurmCluster, args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    cluster.procs.append(proc)
    return proc


def _wait_for(cond: Callable[[], object], what: str, timeout: float, log: Path) -> None:
    eventually(cond, timeout, f"{what} ready", details=lambda: f"--- log ---\n{_tail(str(log))}")


def start_cluster(root: Path, cpus: int = 2) -> SlurmCluster:
    """Start munge, MariaDB, slurmdbd, slurmctld and slurmd below ``root``; see module doc."""
    cluster = SlurmCluster(root)
    try:
        _start_all(cluster, root, cpus)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_all(cluster: SlurmCluster, root: Path, cpus: int) -> None:
    for sub in ("munge", "db", "state", "spool", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    os.chmod(root / "munge", 0o755)
    log = root / "log"

    # -- munge ----------------------------------------------------------------------------
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge" / "munge.socket"
    _start(
        cluster,
        [
            "munged",
            "-F",
            "--force",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={root / 'run' / 'munged.pid'}",
            f"--seed-file={root / 'munge' / 'seed'}",
            f"--log-file={log / 'munged.log'}",
        ],
        log / "munged.out",
    )
    _wait_for(sock.exists, "munged socket", 10, log / "munged.log")

    # -- MariaDB --------------------------------------------------------------------------
    db_port = free_port()
    datadir = root / "db" / "data"
    subprocess.run(
        [
            "mariadb-install-db",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    db = _start(
        cluster,
        [
            "mariadbd",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",
            f"--port={db_port}",
            "--bind-address=127.0.0.1",
            f"--socket={root / 'db' / 'mysqld.sock'}",
            f"--pid-file={root / 'run' / 'mariadbd.pid'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            "--performance-schema=OFF",
        ],
        log / "mariadbd.log",
    )
    wait_for_port(db_port, timeout=60, proc=db, log=str(log / "mariadbd.log"))

    # -- slurmdbd -------------------------------------------------------------------------
    dbd_port = free_port()
    dbd_conf = root / "slurmdbd.conf"
    dbd_conf.write_text(
        f"AuthType=auth/munge\nAuthInfo=socket={sock}\nDbdHost={HOST}\nDbdAddr=127.0.0.1\n"
        f"DbdPort={dbd_port}\nSlurmUser=root\nPidFile={root / 'run' / 'slurmdbd.pid'}\n"
        f"LogFile={log / 'slurmdbd.log'}\nStorageType=accounting_storage/mysql\n"
        f"StorageHost=127.0.0.1\nStoragePort={db_port}\nStorageUser=root\n"
        f"StorageLoc=slurm_acct_db\n"
    )
    dbd_conf.chmod(0o600)
    port_ctl, port_d = free_port(), free_port()
    # jobs ask for memory (--mem): the node must declare what it has (Slurm's default is 1 MB)
    real_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    conf = root / "slurm.conf"
    conf.write_text(
        "ClusterName=farmtest\n"
        f"SlurmctldHost={HOST}(127.0.0.1)\nSlurmctldPort={port_ctl}\nSlurmdPort={port_d}\n"
        "SlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\nCredType=cred/munge\n"
        f"AuthInfo=socket={sock}\n"
        f"StateSaveLocation={root / 'state'}\nSlurmdSpoolDir={root / 'spool'}\n"
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}\n"
        f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}\n"
        f"SlurmctldLogFile={log / 'slurmctld.log'}\nSlurmdLogFile={log / 'slurmd.log'}\n"
        "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
        "JobAcctGatherType=jobacct_gather/linux\nJobAcctGatherFrequency=task=1\n"
        "AccountingStorageType=accounting_storage/slurmdbd\n"
        f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={dbd_port}\n"
        f"AccountingStoragePass={sock}\n"
        "MpiDefault=none\nReturnToService=2\nMinJobAge=300\nSchedulerType=sched/backfill\n"
        "SchedulerParameters=sched_interval=1\nMailProg=/bin/true\n"
        "SlurmctldTimeout=30\nSlurmdTimeout=30\nInactiveLimit=0\nKillWait=2\n"
        f"NodeName={HOST} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_mb} State=UNKNOWN\n"
        f"PartitionName={PARTITION} Nodes={HOST} Default=YES MaxTime=INFINITE State=UP\n"
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster.env = env
    dbd = _start(cluster, ["slurmdbd", "-D"], log / "slurmdbd.out", env)
    wait_for_port(dbd_port, timeout=60, proc=dbd, log=str(log / "slurmdbd.log"))
    # register the cluster before slurmctld starts, so its first jobs are accounted
    cluster.run("sacctmgr", "-i", "add", "cluster", "farmtest", check=False)
    ctl = _start(cluster, ["slurmctld", "-D", "-i"], log / "slurmctld.out", env)
    wait_for_port(port_ctl, timeout=60, proc=ctl, log=str(log / "slurmctld.log"))
    d = _start(cluster, ["slurmd", "-D"], log / "slurmd.out", env)
    wait_for_port(port_d, timeout=60, proc=d, log=str(log / "slurmd.log"))

    def node_idle() -> bool:
        out = cluster.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
        return out in ("idle", "mixed", "allocated")

    _wait_for(node_idle, "slurm node", 60, log / "slurmctld.log")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A one-node Slurm with slurmdbd accounting, shared by the session's Slurm/TORQUE tests."""
    need_tools("munged", package="munge")
    need_tools("mariadbd", package="mariadb-server")
    need_tools("slurmdbd", package="slurmdbd")
    need_tools("slurmctld", "slurmd", "sbatch", package="slurm-wlm")
    root = Path(tempfile.mkdtemp(prefix="farmtools-slurm-"))
    cluster = start_cluster(root)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    c = start_cluster(Path(tempfile.mkdtemp(prefix="farmtools-slurm-")))
    print(f"export SLURM_CONF={c.env['SLURM_CONF']}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        c.stop()
