"""testinfra checks of the provisioned mock farm (marker farm): what site.yml promises.

The whole module shares one farm (module fixture in tests/servers/mockfarm.py): brought up,
provisioned twice, checked, torn down.
"""

from __future__ import annotations

import shlex
import zlib
from typing import Any

import pytest

from tests.servers.mockfarm import NODES, MockFarm

# The module fixture brings the farm up and provisions it twice inside the first test: allow for
# a cold cache on a slow machine (the suite default is 600 s per test): on 2 cores at load 13-19,
# the first site.yml run alone took 26 min and 1800 s cut the second run off (2026-12-08).
pytestmark = [pytest.mark.farm, pytest.mark.timeout(3600)]

FARMTOOLS_NODES = ("evb", "head", "worker1", "worker2", "l2")
VENV = "/opt/farmtools/venv"


def test_first_run_converges(mockfarm: MockFarm) -> None:
    run = mockfarm.first
    assert run.returncode == 0, run.output[-4000:]
    assert set(run.recap) == set(NODES)
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in run.recap.values())


def test_second_run_changes_nothing(mockfarm: MockFarm) -> None:
    run = mockfarm.second
    assert run.returncode == 0, run.output[-4000:]
    changed = {host: c["changed"] for host, c in run.recap.items() if c["changed"]}
    assert changed == {}, "\n".join(run.changed_tasks())


NODE_PACKAGES = {
    "evb": ["acl", "python3-venv", "xrootd-client", "python3-xrootd"],
    "storage": ["acl", "xrootd-server"],
    "head": ["munge", "slurmctld", "slurm-client", "slurm-wlm-torque", "postgresql"],
    "worker1": ["munge", "slurmd", "slurm-client", "xrootd-client", "python3-xrootd"],
    "worker2": ["munge", "slurmd", "slurm-client", "xrootd-client", "python3-xrootd"],
    "l2": ["acl", "python3-venv", "xrootd-client", "python3-xrootd"],
    "monitoring": ["acl", "prometheus"],
}
NODE_PORTS = {
    "storage": [1094],  # xrootd
    "head": [5432, 6817, 8050],  # postgresql, slurmctld, monitor
    "worker1": [6818],  # slurmd
    "worker2": [6818],
    "monitoring": [9090],  # prometheus
}


@pytest.mark.parametrize("node", NODES)
def test_packages_of_the_node_duty(mockfarm: MockFarm, node: str) -> None:
    host = mockfarm.host(node)
    missing = [name for name in NODE_PACKAGES[node] if not host.package(name).is_installed]
    assert missing == []


@pytest.mark.parametrize(("node", "port"), [(n, p) for n, ps in NODE_PORTS.items() for p in ps])
def test_services_listen_on_their_ports(mockfarm: MockFarm, node: str, port: int) -> None:
    host = mockfarm.host(node)
    listening = {str(s) for s in host.socket.get_listening_sockets()}
    assert any(s.endswith(f":{port}") for s in listening), sorted(listening)


def test_monitor_page_answers_from_another_node(mockfarm: MockFarm) -> None:
    # Exposed on the farm network, the page asks for the shift login: 401 without, 200 with.
    probe = (
        'python3 -c "import base64, sys, urllib.request as u, urllib.error as e\n'
        "r = u.Request('http://head:8050/metrics')\n"
        "if len(sys.argv) > 1: r.add_header('Authorization', 'Basic ' + "
        "base64.b64encode(sys.argv[1].encode()).decode())\n"
        "try: print(u.urlopen(r, timeout=10).status)\n"
        'except e.HTTPError as x: print(x.code)"'
    )
    evb = mockfarm.host("evb")
    assert evb.check_output(probe).strip() == "401"
    login = "shift:" + _secret("FARMTOOLS_MONITOR_PASSWORD")
    assert evb.check_output(probe + " " + shlex.quote(login)).strip() == "200"


@pytest.mark.parametrize("node", NODES)
def test_accounts_and_no_personal_accounts(mockfarm: MockFarm, node: str) -> None:
    host = mockfarm.host(node)
    assert host.group("wa105-comp").exists
    for name in ("shift", "prod", "evtbd"):
        user = host.user(name)
        assert user.exists, name
        assert user.group == "wa105-comp"
    # Personal accounts would get UIDs in login.defs' UID_MIN..UID_MAX (1000..60000); Debian's
    # package accounts (slurm 64030) are above.
    people = host.check_output("awk -F: '$3 >= 1000 && $3 <= 60000 {print $1}' /etc/passwd").split()
    assert sorted(people) == ["evtbd", "prod", "shift"]


@pytest.mark.parametrize("node", NODES)
def test_production_layout_and_inotify_limits(mockfarm: MockFarm, node: str) -> None:
    host = mockfarm.host(node)
    for sub in (
        "all_logs/fromEVB/runs",
        "all_logs/batch",
        "all_logs/toEOS",
        "processing/todo",
        "processing/scripts",
        "storage/input",
        "storage/output",
    ):
        d = host.file(f"/home/prod/{sub}")
        assert d.is_directory, sub
        assert (d.user, d.group, d.mode) == ("prod", "wa105-comp", 0o2775), sub
    sysctl = host.file("/etc/sysctl.d/60-farmtools-inotify.conf")
    assert sysctl.contains("fs.inotify.max_user_watches=1048576")


@pytest.mark.parametrize("node", FARMTOOLS_NODES)
def test_rendered_configuration_loads_as_prod(mockfarm: MockFarm, node: str) -> None:
    host = mockfarm.host(node)
    conf = host.file("/etc/farmtools/farm.toml")
    assert (conf.user, conf.group, conf.mode) == ("root", "wa105-comp", 0o640)
    assert conf.contains("rendered from templates/farm.toml.j2")
    out = host.check_output(
        f"runuser -u prod -- {VENV}/bin/python -c "
        "\"from farmtools.config import load_config as l; c = l('/etc/farmtools/farm.toml'); "
        'print(c.storage.backend, c.storage.url, c.batch.backend, c.home)"'
    )
    assert out.split() == ["xrootd", "root://storage:1094", "slurm", "/home/prod"]


@pytest.mark.parametrize("node", FARMTOOLS_NODES)
def test_database_password_only_in_the_secrets_file(mockfarm: MockFarm, node: str) -> None:
    """Issue 13, section 3: farm.toml (readable by the shift) holds no password; secrets.env is
    the production account's alone, and farmtools run as prod finds the password there."""
    host = mockfarm.host(node)
    password = _secret("FARMTOOLS_DB_PASSWORD")
    assert password and password not in host.file("/etc/farmtools/farm.toml").content_string
    secrets = host.file("/etc/farmtools/secrets.env")
    assert (secrets.user, secrets.mode) == ("prod", 0o400)
    assert host.run("runuser -u shift -- cat /etc/farmtools/secrets.env").rc != 0
    out = host.check_output(
        f"runuser -u prod -- {VENV}/bin/python -c "
        '"from farmtools.bookkeeping import Bookkeeping; from farmtools.config import load_config; '
        "print(Bookkeeping.from_config(load_config('/etc/farmtools/farm.toml')).schema_version())\""
    )
    assert int(out) >= 1


def test_xrootd_answers_with_adler32(mockfarm: MockFarm) -> None:
    storage = mockfarm.host("storage")
    svc = storage.service("xrootd@farm")
    assert svc.is_running and svc.is_enabled
    assert storage.socket("tcp://0.0.0.0:1094").is_listening
    assert "xrootd" in storage.check_output("ps -o user= -C xrootd")
    payload = b"run1014-seq2 mock farm payload " * 1000
    evb = mockfarm.host("evb")
    evb.check_output(f"python3 -c \"open('/tmp/probe.dat','wb').write({payload!r})\"")
    evb.check_output(
        "xrdcp --force --cksum adler32 /tmp/probe.dat "
        "root://storage:1094//wa105/storage/input/probe.dat"
    )
    reply = evb.check_output(
        "xrdfs root://storage:1094 query checksum /wa105/storage/input/probe.dat"
    )
    algo, value = reply.split()[:2]
    assert algo == "adler32"
    assert int(value, 16) == zlib.adler32(payload)
    evb.check_output("xrdfs root://storage:1094 rm /wa105/storage/input/probe.dat")


def test_slurm_workers_idle_with_the_head_munge_key(mockfarm: MockFarm) -> None:
    head = mockfarm.host("head")
    assert head.service("slurmctld").is_running
    key = head.check_output("sha256sum /etc/munge/munge.key").split()[0]
    for node in ("worker1", "worker2"):
        worker = mockfarm.host(node)
        assert worker.service("slurmd").is_running and worker.service("munge").is_running
        assert worker.check_output("sha256sum /etc/munge/munge.key").split()[0] == key
    # slurmd registers within a few seconds of starting: ask until both report (bounded loop).
    states = head.check_output(
        "for i in $(seq 60); do s=$(sinfo -h -N -o '%N=%t' | sort | tr '\\n' ' '); "
        "case $s in *worker1=idle*worker2=idle*) break;; esac; sleep 0.5; done; echo $s"
    )
    assert states.split() == ["worker1=idle", "worker2=idle"]
    job = head.run(
        "runuser -u prod -- sbatch --parsable --wait -p prod -w worker2 -D /home/prod "
        "--wrap 'hostname; id -un' -o /tmp/ft-probe-%j.out"
    )
    assert job.rc == 0, job.stderr
    out = mockfarm.host("worker2").check_output(f"cat /tmp/ft-probe-{job.stdout.strip()}.out")
    assert out.split() == ["worker2", "prod"]


def test_postgres_accepts_prod_from_the_network(mockfarm: MockFarm) -> None:
    import os

    head = mockfarm.host("head")
    assert head.service("postgresql").is_enabled
    assert head.socket("tcp://0.0.0.0:5432").is_listening
    password = os.environ.get("FARMTOOLS_DB_PASSWORD") or _secret("FARMTOOLS_DB_PASSWORD")
    out = mockfarm.host("head").check_output(
        f"PGPASSWORD={password} psql -h head -U prod -d farmtools -tAc 'select current_user'"
    )
    assert out.strip() == "prod"


@pytest.mark.parametrize(
    ("node", "unit", "command"),
    [
        ("evb", "farmtools-ingest", "ingest watch"),
        ("head", "farmtools-processing", "process run"),
        ("head", "farmtools-monitor", "monitor serve"),
        ("l2", "farmtools-evb-a", "evb build --id a"),
        ("l2", "farmtools-ingest", "ingest watch"),
    ],
)
def test_daemons_run_as_prod(mockfarm: MockFarm, node: str, unit: str, command: str) -> None:
    host = mockfarm.host(node)
    unit_file = host.file(f"/etc/systemd/system/{unit}.service")
    assert unit_file.contains("^User=prod$")
    assert unit_file.contains(f"ExecStart={VENV}/bin/farmtools {command}$")
    svc = host.service(unit)
    assert svc.is_enabled and svc.is_running
    pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "prod"


def _secret(name: str) -> str:
    from tests.servers.mockfarm import MOCKFARM_DIR

    for line in (MOCKFARM_DIR / "secrets.env").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == name:
            return value
    raise KeyError(name)


def test_distributed_data_challenge(mockfarm: MockFarm) -> None:
    """Issue 8, section 4: the chain across the nodes, driven from the event builder.

    The emulator on ``evb`` writes the files; the farm's own services do the rest (the watcher
    on evb copies them to ``storage`` over XRootD, the manager on ``head`` submits them to Slurm,
    both workers reconstruct, outputs land on storage, the manager's analysis pass analyses the
    complete group); the challenge only follows the bookkeeping (PostgreSQL on head) and reports.
    """
    import json

    evb = mockfarm.host("evb")
    files = 4  # one analysis group (group_size 4)
    run = evb.run(
        f"runuser -u prod -- {VENV}/bin/farmtools challenge run "
        "--config /etc/farmtools/farm.toml --no-daemons --no-monitor --no-archive --no-progress "
        # 0.5 s apart: the manager submits the files within a second or two, while the first
        # job still holds worker1, so Slurm's least-loaded rule (LLN) sends the next to worker2
        # (2 s apart, a fast job could end first and every job went to worker1)
        f"--files {files} --events 4 --interval 0.5 --timeout 480"
    )
    latest = evb.check_output("ls -t /home/prod/reports/challenge-run*.json | head -n 1")
    rep = json.loads(evb.check_output(f"cat {latest}"))
    text = evb.check_output(f"cat {latest[: -len('.json')]}.txt")
    assert rep["verdict"] == "PASS", text
    assert run.rc == 0, (run.stdout[-3000:], run.stderr[-3000:])
    assert rep["settings"]["storage"] == "xrootd" and rep["settings"]["batch"] == "slurm"
    assert rep["settings"]["database"] == "postgresql"
    for stage in ("written", "stored", "reconstructed", "analysed"):
        assert rep["counts"][stage] == files, (stage, rep["counts"])
    assert rep["incomplete"] == []
    assert rep["integrity"]["checked_bytes_of"] == files
    # The seed's check: every worker ran at least one job.
    jobs = rep["jobs_per_worker"]
    assert set(jobs) == {"worker1", "worker2"} and min(jobs.values()) >= 1, jobs
    # The outputs are on the storage node, where the workers wrote them.
    storage = mockfarm.host("storage")
    outputs = storage.check_output(
        "find /srv/xrootd/wa105/storage/output -name 'recotask_run*.root' | wc -l"
    )
    assert int(outputs) >= files


def test_l2_node_directories(mockfarm: MockFarm) -> None:
    """The L1 builders' account writes the stream directory; the builder's own ones are prod's."""
    l2 = mockfarm.host("l2")
    l1 = l2.file("/data/l1")
    assert (l1.user, l1.group, l1.mode) == ("evtbd", "wa105-comp", 0o2775)
    for path in ("/data/l1-setaside", "/home/prod/evb"):
        d = l2.file(path)
        assert (d.user, d.group, d.mode) == ("prod", "wa105-comp", 0o2750), path
    conf = l2.file("/etc/farmtools/farm.toml")
    assert conf.contains('^detector = "6x6x6:100"$')


L2_RUN = 6006
L2_DETECTOR = "6x6x6:100"


#: File states in which a raw file is on the farm storage, verified (processing may have taken
#: it further, or given up on its reconstruction: the raw file is there all the same).
ON_STORAGE = {"stored", "queued", "submitted", "running", "reconstructed", "analysed", "failed"}


def test_distributed_6x6x6_event_building(mockfarm: MockFarm) -> None:
    """Issue 14, section 4: the 6x6x6 leg through the L2 node, with faults and their truth.

    The L1 emulator runs on ``l2`` as evtbd (standing for the two L1 builders writing over the
    network into the L2 node's stream directory); the farm's own services do the rest: the L2
    daemon (systemd, prod) builds ProtoDUNE-DP files into the DAQ directory, ingest on ``l2``
    ships them to ``storage`` over XRootD and records them on ``head``.  The counts per run must
    equal the emulator's truth, and every stored file must read back whole.  Processing on
    ``head`` may already have taken a stored file further (its reconstruction, issue 15); what
    is checked here is that every file reached the storage.
    """
    import json
    import time
    from urllib.parse import urlsplit

    l2 = mockfarm.host("l2")
    farmtools = f"{VENV}/bin/farmtools"
    conf = "--config /etc/farmtools/farm.toml"
    emulate = l2.run(
        f"runuser -u evtbd -- {farmtools} daq emulate {conf} --run {L2_RUN} --files 2 "
        "--events 4 --no-physics --fault missing:1:2 --fault duplicate:0:5 --seed 14"
    )
    assert emulate.rc == 0, emulate.stderr
    truth = json.loads(l2.check_output(f"cat /data/l1/{L2_RUN}_l1truth.json"))
    exp = truth["expected"]
    events = exp["built"] + exp["incomplete"]

    def state() -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        runs = json.loads(l2.check_output(f"runuser -u prod -- {farmtools} runs {conf} --json"))
        row = next((r for r in runs if r["run"] == L2_RUN), None)
        # All files, not `--run`: that is an error (exit 1) until ingest has recorded one.
        every = json.loads(l2.check_output(f"runuser -u prod -- {farmtools} files {conf} --json"))
        return row, [f for f in every if f["run"] == L2_RUN]

    # Bounded wait on the daemons (pair time-out 3 s, flush 2 s, ingest settle 10 s).
    deadline = time.monotonic() + 180
    row, files = state()
    while time.monotonic() < deadline:
        evb = (row or {}).get("evb") or {}
        built = evb.get("built", 0) + evb.get("incomplete", 0)
        stored = [f for f in files if f["state"] in ON_STORAGE]
        if built >= events and stored and len(stored) == len(files) >= evb.get("files", 1):
            break
        time.sleep(2)
        row, files = state()
    assert row is not None and row["evb"] is not None, (row, files)
    c = row["evb"]
    assert [c["fragments_in0"], c["fragments_in1"]] == truth["emitted"]
    got = {k: c[k] for k in ("built", "incomplete", "duplicates", "mismatches", "truncated")}
    assert got == exp
    assert (c["pending"], c["late"], c["corrupt"]) == (0, 0, 0)
    assert files and {f["state"] for f in files} <= ON_STORAGE, files
    assert row["files"] == len(files) == c["files"]
    # Every stored file: the server's adler32 is the recorded one, and it reads back event by
    # event with the ProtoDUNE-DP reader (copied back to the L2 node, as a user of storage would).
    seen = 0
    incomplete = 0
    for f in files:
        url = f["storage_path"]
        path = "/" + (urlsplit(url).path if "://" in url else url).lstrip("/")
        reply = l2.check_output(f"xrdfs root://storage:1094 query checksum {shlex.quote(path)}")
        assert reply.split()[:2] == ["adler32", f["adler32"]], (f["name"], reply)
        local = f"/tmp/{f['name']}"
        l2.check_output(f"xrdcp --force {shlex.quote('root://storage:1094/' + path)} {local}")
        rep = json.loads(
            l2.check_output(f"{farmtools} raw inspect --json -q --detector {L2_DETECTOR} {local}")
        )
        l2.check_output(f"rm -f {local}")
        assert rep["valid"] and rep["format"] == "pddp" and rep["run"] == L2_RUN, rep
        seen += rep["events"]
        incomplete += rep["incomplete_events"]
    assert (seen, incomplete) == (events, exp["incomplete"])


def _prometheus(mockfarm: MockFarm, path: str) -> Any:
    """A Prometheus HTTP API answer (its ``data``), asked on the monitoring node itself."""
    import json

    url = f"http://localhost:9090/api/v1/{path}"
    fetch = f"import sys, urllib.request; sys.stdout.write(urllib.request.urlopen({url!r}).read().decode())"
    doc = json.loads(mockfarm.host("monitoring").check_output(f"python3 -c {shlex.quote(fetch)}"))
    assert doc["status"] == "success", doc
    return doc["data"]


def test_prometheus_scrapes_the_monitor_pages(mockfarm: MockFarm) -> None:
    """Issue 20, section 2: the monitoring node's Prometheus scrapes every monitor page's
    /metrics (with the shift login) and answers a query on a farmtools metric."""
    import time

    mon = mockfarm.host("monitoring")
    prom = mon.service("prometheus")
    assert prom.is_enabled and prom.is_running
    assert mon.file("/etc/prometheus/prometheus.yml").contains("head:8050")
    # Bounded wait: the scrape interval is 5 s in the mock farm; a target is "unknown" until
    # its first scrape.
    deadline = time.monotonic() + 120
    targets = _prometheus(mockfarm, "targets")["activeTargets"]
    while time.monotonic() < deadline and (
        not targets or any(t["health"] != "up" for t in targets)
    ):
        time.sleep(2)
        targets = _prometheus(mockfarm, "targets")["activeTargets"]
    health = {t["labels"]["instance"]: (t["health"], t["lastError"]) for t in targets}
    assert health.get("head:8050") == ("up", ""), health
    assert all(h == "up" for h, _e in health.values()), health
    result = _prometheus(mockfarm, "query?query=farmtools_files")["result"]
    assert result and {r["metric"]["instance"] for r in result} == {"head:8050"}, result
    assert {r["metric"]["job"] for r in result} == {"farmtools"}


CHAIN_RUN = 6016


def test_distributed_6x6x6_chain(mockfarm: MockFarm) -> None:
    """Issue 16, section 3, in the mock farm: the whole 6x6x6 chain through the deployed farm.

    ``farmtools challenge run --detector 6x6x6:100 --no-daemons`` on ``l2`` emulates the two L1
    streams (beam spills and cosmics, with physics) into the L2 node's stream directory and ends
    the run with its record; the farm's own services do the rest: the L2 builder (systemd, prod)
    builds the event files, ingest on ``l2`` ships them to ``storage`` over XRootD, the manager
    on ``head`` reconstructs them with flash t0 as Slurm jobs on both workers and measures
    purity and gain.  Once every file is stored, the challenge's final stage (the code of
    ``farmtools final``) classifies and filters the run's events, packs the kept ones into
    final files, transfers them to the storage node and verifies them there.  Every fragment
    and every event must be accounted for; then, on ``head``, ``farmtools final`` shows the
    filter's decisions and re-verifies every final file at the destination.
    """
    import json

    l2 = mockfarm.host("l2")
    farmtools = f"{VENV}/bin/farmtools"
    conf = "--config /etc/farmtools/farm.toml"
    run = l2.run(
        f"runuser -u prod -- {farmtools} challenge run {conf} --detector {L2_DETECTOR} "
        f"--preset beam --run {CHAIN_RUN} --files 2 --events 4 --interval 3 --no-daemons "
        "--no-monitor --no-progress --timeout 600"
    )
    stem = f"/home/prod/reports/challenge-run{CHAIN_RUN}"
    rep = json.loads(l2.check_output(f"cat {stem}.json"))
    text = l2.check_output(f"cat {stem}.txt")
    assert rep["verdict"] == "PASS", text
    assert run.rc == 0, (run.stdout[-3000:], run.stderr[-3000:])
    assert rep["settings"]["storage"] == "xrootd" and rep["settings"]["batch"] == "slurm"
    chain = rep["chain_6x6x6"]
    c = chain["counts"]
    # fragments: emitted = read by the builder; events: emitted = built + incomplete
    assert c["emitted"] == 8 and c["fragments_emitted"] == c["fragments_read"] == [8, 8]
    assert c["built"] + c["incomplete"] == c["emitted"] == c["in_event_files"] == c["stored"]
    assert c["reconstructed"] == c["stored"]  # every event through a Slurm job
    # classified (built + incomplete) = kept + prescaled out + dropped; kept = in verified files
    assert c["classified"] == c["kept"] + c["prescaled_out"] + c["dropped"] == c["emitted"]
    assert c["kept"] == c["in_verified_finals"] > 0
    assert chain["accounting"]["lost_total"] == 0
    assert all(v["holds"] for v in chain["accounting"]["identities"].values())
    assert set(rep["jobs_per_worker"]) <= {"worker1", "worker2"} and rep["jobs_per_worker"]
    for name in ("L2 building", "ingest", "reconstruction (t0)", "purity/gain"):
        assert chain["stages"][name]["latency"]["n"] > 0, (name, chain["stages"][name])
    # On head, as prod: the filter's decisions per run and every final file verified again,
    # read back from the storage node event by event.
    head = mockfarm.host("head")
    status = json.loads(
        head.check_output(f"runuser -u prod -- {farmtools} final status {CHAIN_RUN} {conf} --json")
    )
    counts = status["filter"]["counts"]
    assert sum(sum(v.values()) for v in counts.values()) == c["classified"]
    assert sum(v["kept"] for v in counts.values()) == c["kept"]
    files = status["files"]
    assert files and {f["state"] for f in files} == {"verified"}
    assert sum(f["events"] for f in files) == c["kept"]
    again = head.run(f"runuser -u prod -- {farmtools} final verify {CHAIN_RUN} --again {conf}")
    assert again.rc == 0, (again.stdout, again.stderr)
    # The final files are on the storage node with the adler32 the bookkeeping recorded.
    for f in files:
        assert f["destination"].startswith("root://storage:1094/"), f
        path = f"/wa105/central/final/run{CHAIN_RUN}/{f['name']}"
        reply = head.check_output(f"xrdfs root://storage:1094 query checksum {path}")
        assert reply.split()[:2] == ["adler32", f["adler32"]], (f["name"], reply)
    # Every raw file of the run may leave the buffer, and the bookkeeping says why.
    dels = json.loads(
        head.check_output(
            f"runuser -u prod -- {farmtools} final deletable {CHAIN_RUN} {conf} --json"
        )
    )
    assert dels and all(d["deletable"] for d in dels), dels


def test_archiving_on_schedule(mockfarm: MockFarm) -> None:
    """Issue 20, section 2: a timer on the processing node starts plan, create, transfer and
    verify as prod; one pass started by hand (after the challenges' files are stored) ends in
    success, every step having run."""
    head = mockfarm.host("head")
    timer = head.service("farmtools-archive.timer")
    assert timer.is_enabled and timer.is_running
    unit = head.file("/etc/systemd/system/farmtools-archive.service")
    assert unit.contains("^User=prod$")
    steps = [
        line.rsplit(" ", 1)[-1]
        for line in unit.content_string.splitlines()
        if line.startswith("ExecStart=")
    ]
    assert steps == ["plan", "create", "transfer", "verify"]
    head.check_output("systemctl start farmtools-archive.service")
    result = head.check_output("systemctl show -p Result --value farmtools-archive.service")
    assert result.strip() == "success"
    log = head.check_output("journalctl -q -o cat -u farmtools-archive.service")
    assert "planned archive(s)" in log, log[-2000:]
