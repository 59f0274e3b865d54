"""``farm.toml``: the one configuration file, the same schema on a laptop and on the farm.

It is validated when a command starts; a wrong key or value is an error that names the key
(``storage.backend: Input should be 'local' or 'xrootd'``), never a surprise at 3 a.m.  Ansible
renders the file from inventory variables through ``templates/farm.toml.j2``; on one machine
``farmtools`` writes one with :func:`write_default_config`.

Relative paths are taken relative to ``farm.home``, and ``farm.home`` itself relative to the
directory of the configuration file, so a farm directory can be moved as a whole.

Each stage owns its section; add keys there (with a default and a docstring-like ``description``)
rather than reading ad-hoc environment variables.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from farmtools.detector import Geometry, geometry


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FarmSection(_Section):
    home: Path = Field(
        Path("farm"), description="home of the production account: the seed layout lives below it"
    )
    detector: str = Field("3x1x1", description="detector geometry name")
    channel_map: Literal["311", "311-wa105soft"] = Field(
        "311",
        description="3x1x1 DAQ channel map: 311 (LArSoft's Get311Chan, the spec's) or "
        "311-wa105soft (WA105Soft's ChannelMap311); see docs/rawdata.md",
    )
    account: str = Field("prod", description="account the daemons run as on the farm")
    group: str = Field("wa105-comp", description="group of the farm accounts")


class DaqSection(_Section):
    watch_dir: Path = Field(Path("evb/data"), description="directory the DAQ writes raw files into")


class EvbSection(_Section):
    """The 6x6x6 L2 event builders (docs/protodune-dp.md); their event files go to daq.watch_dir."""

    l1_dir: Path = Field(
        Path("evb/l1"),
        description="directory the two L1 event builders write fragment streams into",
    )
    setaside_dir: Path = Field(
        Path("evb/setaside"), description="duplicate, mismatched, late and truncated fragments"
    )
    state_dir: Path = Field(
        Path("evb/state"), description="status (counts per run) of each builder"
    )
    builders: list[str] = Field(
        default_factory=lambda: ["a"], description="ids of the L2 builders sharing the triggers"
    )
    pair_timeout_s: float = Field(
        10.0, gt=0, description="an event whose partner fragment has not come is written incomplete"
    )
    roll_bytes: int = Field(3_000_000_000, gt=0, description="event files roll at this size")
    flush_s: float = Field(30.0, gt=0, description="events waiting longer are written anyway")
    idle_s: float = Field(
        60.0, gt=0, description="a stream file's partial tail idle this long is truncated"
    )


class StorageSection(_Section):
    backend: Literal["local", "xrootd"] = "local"
    input: str = Field("storage/input", description="raw files: <input>/run<N>/run<N>-seq<M>.dat")
    output: str = Field("storage/output", description="reconstruction output: <output>/run<N>/")
    url: str = Field(
        "", description="XRootD endpoint, e.g. root://eos.example:1094 (xrootd backend)"
    )
    retries: int = Field(5, ge=0, description="copy attempts before a file is quarantined")
    backoff_s: float = Field(
        1.0, gt=0, description="first retry delay; doubles each time, with jitter"
    )
    backoff_max_s: float = Field(300.0, gt=0)


class IngestSection(_Section):
    settle_s: float = Field(
        10.0,
        ge=0,
        description="when another user's open files cannot be inspected (/proc/<pid>/fd not "
        "readable), a file must be this long unmodified before reconciliation takes it",
    )
    max_rate_mb_s: float = Field(
        0.0, ge=0, description="bandwidth limit per copy in MB/s (0: none), to spare the DAQ link"
    )
    retry_alarm_after: int = Field(
        10, ge=1, description="failed attempts against a storage that is down before an alarm"
    )
    rescan_s: float = Field(
        60.0,
        ge=0,
        description="period of the watcher's safety-net rescan of the DAQ directory (0: none): "
        "entries no event announced (a lost event, a queue overflow, a watch added late) are "
        "taken; it reads the directories only, no file",
    )


class DatabaseSection(_Section):
    url: str = Field(
        "sqlite:///bookkeeping.sqlite",
        description="SQLAlchemy URL (SQLite or PostgreSQL), naming the user but not the password: "
        "the password comes from password_env or password_file",
    )
    password_env: str = Field(
        "FARMTOOLS_DB_PASSWORD",
        description="environment variable holding the database password (the daemons get it "
        "from secrets.env through systemd's EnvironmentFile)",
    )
    password_file: str = Field(
        "",
        description="file of NAME=value lines (secrets.env, readable by the production account "
        "alone) holding password_env's variable, read when the variable is not set ('' = none)",
    )


class BatchSection(_Section):
    backend: Literal["local", "slurm", "torque", "htcondor"] = "local"
    queue: str = "prod"
    slots: int = Field(2, ge=1, description="parallel jobs of the local backend")
    walltime: str = Field("01:00:00", description="HH:MM:SS per job")
    memory_mb: int = Field(1500, ge=64)
    local_dir: str = Field("processing/localbatch", description="state of the local backend's pool")


class ProcessingSection(_Section):
    max_tries: int = Field(
        3, ge=1, description="submissions of one file before it is parked as failed"
    )
    cooloff_s: float = Field(
        30.0, ge=0, description="wait before a transient failure is resubmitted"
    )
    poll_s: float = Field(1.0, gt=0, description="how often job states are polled")
    claim_s: float = Field(
        0.2,
        gt=0,
        description="how often the daemon looks for stored files: a cheap change check "
        "(SQLite data_version, PostgreSQL NOTIFY); the claim query runs only after a change",
    )
    rescan_s: float = Field(
        10.0,
        gt=0,
        description="a full pass (claim, due submissions, poll) at least this often even when "
        "no change was seen: the fallback for a missed notification",
    )
    program: Literal["check", "inspect", "reco"] = Field(
        "reco",
        description="what a job runs: check = read and check the whole raw file "
        "(python -m farmtools.job.readcheck), inspect = farmtools raw inspect, reco = farmtools reco",
    )
    farmtools: str = Field(
        "", description="farmtools executable on the workers ('' = next to this python)"
    )
    python: str = Field(
        "",
        description="python on the workers for program=check and the worker client ('' = this "
        "python)",
    )
    cores: int = Field(
        1,
        ge=1,
        description="cores each job asks its batch system for (Slurm --cpus-per-task, TORQUE "
        "ppn, HTCondor request_cpus, slots of the local pool) and reconstructs on "
        "(FARMTOOLS_THREADS in the job's environment): events, or a 6x6x6 event's CRPs, at once",
    )
    reco_worker_socket: str = Field(
        "",
        description="unix socket of the node's long-lived reconstruction worker (farmtools "
        "reco-worker): a reco job hands its file to it (no start-up per job) and reconstructs "
        "in-process when none listens (relative: below farm.home); '' = every job reconstructs "
        "in-process; with the local backend the processing daemon runs the worker itself",
    )
    scripts_dir: str = Field(
        "processing/scripts", description="archived job scripts: <dir>/run<N>/"
    )
    logs_dir: str = Field(
        "all_logs/batch", description="seed-format job logs and job output: <dir>/run<N>/"
    )
    memory_factor: float = Field(
        2.0, ge=1, description="memory multiplier after an out-of-memory failure"
    )
    walltime_factor: float = Field(
        2.0, ge=1, description="walltime multiplier after a walltime failure"
    )
    batch_retry_s: float = Field(
        10.0, gt=0, description="wait before asking a batch system that is down again"
    )


class AnalysisSection(_Section):
    group_size: int = Field(4, ge=1, description="reconstructed files of a run per analysis")
    summary_dir: str = Field("processing/summary", description="where summaries for the monitor go")
    auto: bool = Field(
        True,
        description="the processing daemon (process run / once) analyses complete groups "
        "of reconstructed files itself after each pass",
    )


class RunsSection(_Section):
    quiet_s: float = Field(
        900.0,
        gt=0,
        description="a run without an end-of-run record closes when a later run has started "
        "and no file of it arrived for this long; with a record, the wait for the files it "
        "names",
    )
    archive_at_close: bool = Field(
        True, description="plan a closed run's files into archives without waiting for more data"
    )


class ArchiveSection(_Section):
    target_size: str = "5GB"
    min_size: str = "1GB"
    destination: str = Field(
        "central", description="local directory or root:// URL of central storage"
    )
    workdir: str = "archive"


class FinalSection(_Section):
    """6x6x6 filtering and final-storage files (docs/final.md): the filter policy and the files.

    Each event class is ``keep``, ``drop`` or ``prescale:N`` (keep 1 in N of the class in the
    run, in trigger order); change ``policy_version`` with the policy, it is recorded per run.
    """

    policy_version: str = Field("1", description="name of the policy below, recorded per run")
    beam: str = Field("keep", description="beam trigger with activity")
    cosmic: str = Field("prescale:10", description="cosmic-only event (not a beam trigger)")
    empty: str = Field("prescale:100", description="no charge and no light at the trigger")
    noisy: str = Field("keep", description="noisy or corrupt event (kept for diagnosis)")
    incomplete: str = Field("keep", description="an L1 fragment missing")
    target_size: str = Field("5GB", description="size of a final-storage file")
    destination: str = Field(
        "central/final", description="local directory or root:// URL of central storage"
    )
    workdir: str = Field("final", description="where final files are written before transfer")


class MonitorSection(_Section):
    host: str = Field("127.0.0.1", description="bind address; loopback unless exposed on purpose")
    port: int = Field(8050, ge=1, le=65535)
    poll_s: float = Field(5.0, gt=0, description="how often the page asks for new results")
    auth_user: str = ""
    auth_password_env: str = Field(
        "FARMTOOLS_MONITOR_PASSWORD", description="env var holding the password"
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="extra modules to import at start; each registers its MonTask classes",
    )
    lifetime_min_us: float = Field(
        2000.0, ge=0, description="alarm when a view's electron lifetime falls below (us)"
    )
    gain_min: float = Field(1.0, ge=0, description="alarm when a LEM's effective gain is below")
    gain_max: float = Field(50.0, gt=0, description="alarm when a LEM's effective gain is above")
    asymmetry_max: float = Field(
        0.2, ge=0, description="alarm when a LEM's |charge asymmetry| between views is above"
    )
    dead_rms_adc: float = Field(
        0.3, ge=0, description="a channel whose noise RMS is below this (ADC) is flagged dead"
    )
    noisy_rms_adc: float = Field(
        5.0, gt=0, description="a channel whose noise RMS is above this (ADC) is flagged noisy"
    )
    bad_channels_max: int = Field(
        20, ge=0, description="alarm when a run has more dead + noisy channels than this"
    )
    stuck_after_s: float = Field(
        3600.0, gt=0, description="a file not yet analysed that kept its state this long is stuck"
    )
    stuck_max: int = Field(0, ge=0, description="alarm when more files than this are stuck")
    totals_s: float = Field(
        30.0, gt=0, description="how often farm-wide totals (full-table counts) are recomputed"
    )
    runs_shown: int = Field(50, ge=1, description="runs in the data-flow plots (latest first)")
    trend_points: int = Field(500, ge=10, description="analysis results in a trend plot")
    # -- data-quality checks (docs/monitor.md, "Checks"): warning and error limits --------------
    references: dict[str, int] = Field(
        default_factory=dict,
        description='reference runs: "task/item", "task" or "*" -> run (the CLI pin wins)',
    )
    lifetime_drop_frac: float = Field(
        0.3, gt=0, lt=1, description="warning when a lifetime fell by more than this fraction"
    )
    gain_rel_warn: float = Field(
        0.1, gt=0, description="warning when a LEM gain is off its reference by this fraction"
    )
    gain_rel_error: float = Field(
        0.25, gt=0, description="error when a LEM gain is off its reference by this fraction"
    )
    asymmetry_warn: float = Field(
        0.1,
        ge=0,
        description="warning when a LEM's |view asymmetry| is above (error: asymmetry_max)",
    )
    pedestal_shift_adc: float = Field(
        10.0, gt=0, description="a channel whose pedestal moved more than this from the reference"
    )
    latency_warn_s: float = Field(
        600.0, gt=0, description="warning when transfer latency p95 is above"
    )
    latency_error_s: float = Field(
        3600.0, gt=0, description="error when transfer latency p95 is above"
    )
    backlog_warn: int = Field(
        1000, ge=0, description="warning when more files than this wait in an active state"
    )
    failed_files_max: int = Field(
        3, ge=0, description="error when more FILES than this failed in the window (1: warning)"
    )
    check_window_files: int = Field(
        500, ge=1, description="the recent window of the data-flow checks (newest files)"
    )
    min_entries: int = Field(
        5, ge=1, description="fewer entries than this (files, channels) in a check: too few"
    )
    heartbeat_s: float = Field(
        10.0, gt=0, description="each daemon records that it works at most this often"
    )
    daemon_silent_s: float = Field(
        120.0,
        gt=0,
        description="a running daemon without a heartbeat for this long is silent: an alarm",
    )
    buffer_warn_h: float = Field(
        24.0,
        ge=0,
        description="farmtools status asks for a person, and the monitor raises buffer_full, "
        "when the storage is full sooner than this at the current incoming rate (hours; the "
        "6x6x6 design: 72, a 3-day outage of the link to the computing centre)",
    )
    rate_window_s: float = Field(
        3600.0, gt=0, description="the incoming rate of the buffer forecast is taken over this"
    )


class NotifySection(_Section):
    """Mail and webhook to people (farmtools.notify); the SMTP password never lives here."""

    email_to: list[str] = Field(default_factory=list)
    email_from: str = "prod@localhost"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        "none",
        description="none (plain SMTP, a relay on the farm), starttls (upgrade, port 587) or "
        "ssl (TLS from the first byte, port 465); the server's certificate is verified",
    )
    smtp_ca_file: str = Field(
        "", description="CA certificates to verify the SMTP server with ('' = the system's)"
    )
    smtp_user: str = Field("", description="log in as this user ('' = no authentication)")
    smtp_password_env: str = Field(
        "FARMTOOLS_SMTP_PASSWORD", description="environment variable holding the SMTP password"
    )
    smtp_password_file: str = Field(
        "",
        description="file of NAME=value lines (secrets.env) holding smtp_password_env's "
        "variable, read when the variable is not set ('' = none)",
    )
    digest_s: float = Field(
        600.0,
        ge=0,
        description="the first message of a kind goes at once, the others of the same kind "
        "within this many seconds go as one digest at its end (0: one mail per message)",
    )
    error_lines: int = Field(
        20, ge=0, description="last lines of a failed job's error output quoted in the mail"
    )
    webhook_url: str = ""


class FarmConfig(_Section):
    """The whole farm configuration; see the module docstring."""

    farm: FarmSection = FarmSection()
    daq: DaqSection = DaqSection()
    evb: EvbSection = EvbSection()
    storage: StorageSection = StorageSection()
    ingest: IngestSection = IngestSection()
    database: DatabaseSection = DatabaseSection()
    batch: BatchSection = BatchSection()
    processing: ProcessingSection = ProcessingSection()
    analysis: AnalysisSection = AnalysisSection()
    runs: RunsSection = RunsSection()
    archive: ArchiveSection = ArchiveSection()
    final: FinalSection = FinalSection()
    monitor: MonitorSection = MonitorSection()
    notify: NotifySection = NotifySection()
    #: Directory of the configuration file (not a key of the file).
    base_dir: Path = Field(Path("."), exclude=True)
    #: The file read, None for the embedded default (set by :func:`load_config`, not a key).
    _source: Path | None = PrivateAttr(None)

    # --- paths -----------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """The production account's home, absolute."""
        home = self.farm.home
        return home if home.is_absolute() else (self.base_dir / home).resolve()

    def path(self, value: str | os.PathLike[str]) -> Path:
        """A path of the configuration, absolute (relative ones are below ``farm.home``)."""
        p = Path(value)
        return p if p.is_absolute() else self.home / p

    @property
    def geometry(self) -> Geometry:
        """The detector geometry, with ``[farm] channel_map`` applied to a 3x1x1-style map."""
        g = geometry(self.farm.detector)
        if g.channel_map == "311" and self.farm.channel_map != g.channel_map:
            return dataclasses.replace(g, channel_map=self.farm.channel_map)
        return g

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL to connect with: a relative SQLite path placed below ``farm.home``,
        the password of a server URL added from ``database.password_env`` / ``password_file``.

        Holds the password: print :func:`masked_url` of it, never the URL itself.
        """
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix):
            if not url.startswith(prefix + "/") and url != prefix + ":memory:":
                return prefix + str(self.home / url[len(prefix) :])
            return url
        return _with_password(url, self.database_password)

    @property
    def database_password(self) -> str | None:
        """The database password: ``$<password_env>``, else that line of ``password_file``.

        Raises :class:`ConfigError` when the file is named but cannot be read (it is readable by
        the production account alone: the message says to run the command as that account).
        """
        db = self.database
        return self._secret(db.password_env, db.password_file, "database.password_file")

    @property
    def smtp_password(self) -> str | None:
        """The SMTP password: ``$<smtp_password_env>``, else that line of ``smtp_password_file``
        (never a key of farm.toml); :class:`ConfigError` as :attr:`database_password`."""
        n = self.notify
        return self._secret(n.smtp_password_env, n.smtp_password_file, "notify.smtp_password_file")

    def _secret(self, env: str, file: str, key: str) -> str | None:
        """The value of the environment variable ``env``, else its line in the secrets ``file``."""
        value = os.environ.get(env) if env else None
        if value or not file:
            return value or None
        path = self.path(file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(
                f"{key} {path}: {exc.strerror or exc} (readable by the "
                f"production account alone: run the command as {self.farm.account}, "
                f"e.g. sudo -u {self.farm.account} farmtools ...)"
            ) from None
        return secret_from_env_file(text, env) or None

    @property
    def source_text(self) -> str:
        """Which configuration this is, for messages: the file, or what was looked for."""
        if self._source is not None:
            return f"configuration {self._source}"
        return (
            f"no configuration found ($FARMTOOLS_CONFIG not set, no farm.toml in {Path.cwd()}): "
            "pass --config FILE or set FARMTOOLS_CONFIG"
        )


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message names the key."""


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: the one way a database URL is printed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # not a URL SQLAlchemy parses: hide whatever sits between "user:" and "@"
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` added (URL-quoted) when it names a user but no password."""
    if not password:
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.username is None or parsed.password is not None:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def secret_from_env_file(text: str, name: str) -> str | None:
    """The value of ``name`` in an environment file (``NAME=value`` lines, shell-quoted values,
    ``#`` comments), as Ansible writes ``secrets.env`` and systemd's ``EnvironmentFile`` reads it."""
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == name:
            try:
                return "".join(shlex.split(value))
            except ValueError:
                return value.strip()
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> FarmConfig:
    """Read and validate ``farm.toml``.

    ``path`` defaults to ``$FARMTOOLS_CONFIG``, then ``./farm.toml``; when neither exists the
    embedded defaults are used (one machine: local storage, local batch, SQLite below ./farm).
    """
    if path is None:
        env = os.environ.get("FARMTOOLS_CONFIG")
        path = env if env else ("farm.toml" if Path("farm.toml").exists() else None)
    if path is None:
        return FarmConfig(base_dir=Path.cwd())
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        cfg = FarmConfig.model_validate({**data, "base_dir": p.resolve().parent})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"])
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError(f"{p}: invalid configuration\n" + "\n".join(lines)) from None
    cfg._source = p.resolve()
    return cfg
