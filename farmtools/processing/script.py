"""Job scripts: rendering ``templates/job.sh.j2`` for one raw file, and where everything goes.

Owns :class:`JobPaths` (the archived script, the job's stdout/stderr, its status file, the seed
job log, the reconstruction output and its partial name) and :func:`render_job_script`.  The
Jinja2 environment has autoescape off (it writes shell) and a ``shquote`` filter
(``shlex.quote``) through which the template passes every value: a file or directory name with
``$(...)``, quotes, spaces or newlines is data, never shell.

Imports Jinja2, :mod:`farmtools.config`, :mod:`farmtools.rawdata.naming`,
:mod:`farmtools.batch.base`, the worker client's file names (:mod:`farmtools.job.recoclient`)
and the output layout of :mod:`farmtools.storage.derived`.
"""

from __future__ import annotations

import functools
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from farmtools.batch.base import hms
from farmtools.config import FarmConfig
from farmtools.job.recoclient import usage_path
from farmtools.rawdata.naming import RawName, parse_raw_name
from farmtools.resources import templates_dir
from farmtools.storage.derived import output_location
from farmtools.storage.location import is_url


@dataclass(frozen=True)
class JobPaths:
    """Every path of one try of one file's job (absolute)."""

    name: str  # reco_run<N>-seq<M>, or reco_<run>_<seq>_<id> for a 6x6x6 file
    script: Path
    stdout: Path
    stderr: Path
    status_file: Path
    job_log: Path
    output: str  # a path, or a root:// URL with XRootD storage (see storage.derived)
    #: the stem of the name a local output is written under before its rename ("" for a URL
    #: output); each run of the script appends its host and pid, so that no two runs share one
    partial: str

    @classmethod
    def of(cls, cfg: FarmConfig, raw: RawName, serial: int) -> JobPaths:
        """Paths of the job with database id ``serial`` (unique, unlike a try number)."""
        name = raw.job_name
        stem = f"{name}.{serial}"
        scripts = cfg.path(cfg.processing.scripts_dir) / raw.run_dir
        logs = cfg.path(cfg.processing.logs_dir) / raw.run_dir
        output = output_location(cfg, raw)
        return cls(
            name=name,
            script=scripts / f"{stem}.sh",
            stdout=logs / f"{stem}.out",
            stderr=logs / f"{stem}.err",
            status_file=logs / f"{stem}.status",
            job_log=logs / f"{stem}.log",
            output=output,
            partial="" if is_url(output) else f"{output}.part{serial}",
        )


def job_command(
    cfg: FarmConfig, input_path: str, target: str, usage: str | None = None
) -> list[str]:
    """argv of the job's program for ``processing.program`` (see the config's description).

    ``target`` is where ``farmtools reco`` writes: the partial name of a local output (the
    script renames it when the job succeeds), or the output URL itself (reco publishes it).
    With ``processing.reco_worker_socket`` a reco job runs the light client
    (:mod:`farmtools.job.recoclient`), which hands the same ``reco`` arguments to the node's
    worker and writes the worker's CPU and memory figures of the job to ``usage``.
    """
    python = cfg.processing.python or sys.executable
    farmtools = cfg.processing.farmtools or str(Path(sys.executable).with_name("farmtools"))
    program = cfg.processing.program
    if program == "check":
        return [python, "-m", "farmtools.job.readcheck", input_path]
    if program == "inspect":
        return [farmtools, "raw", "inspect", input_path]
    reco = [input_path, "-o", target]
    raw = parse_raw_name(input_path.rsplit("/", 1)[-1])
    if raw is not None and raw.pddp and ":" in cfg.farm.detector:
        # a 6x6x6 event file of a shortened drift window (6x6x6:SAMPLES): the job has no
        # farm.toml to read it from, and the name alone says the full 6x6x6
        reco += ["--detector", cfg.farm.detector]
    if not cfg.processing.reco_worker_socket:
        return [farmtools, "reco", *reco]
    socket_path = str(cfg.path(cfg.processing.reco_worker_socket))  # relative: below farm.home
    client = [python, "-m", "farmtools.job.recoclient", "--socket", socket_path]
    if usage:
        client += ["--usage", usage]
    return [*client, "--farmtools", farmtools, "--", *reco]


@functools.cache
def _environment(directory: Path) -> jinja2.Environment:
    # shell, not HTML: autoescape off, every value goes through shquote instead
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    return env


def render_job_script(
    cfg: FarmConfig,
    raw: RawName,
    input_path: str,
    paths: JobPaths,
    *,
    backend: str,
    try_number: int,
    memory_mb: int,
    walltime_s: int,
    generated: datetime,
) -> str:
    """The text of the job script of one try (not written anywhere)."""
    template = _environment(templates_dir()).get_template("job.sh.j2")
    return template.render(
        backend=backend,
        name=paths.name,
        queue=cfg.batch.queue,
        walltime=hms(walltime_s),
        memory_mb=memory_mb,
        cores=cfg.processing.cores,
        try_number=try_number,
        run=raw.run,
        generated=generated.isoformat(timespec="seconds"),
        input=input_path,
        output=paths.output,
        partial=paths.partial,
        status_file=str(paths.status_file),
        # a local output is renamed into place by the script; a URL one is published by reco
        makes_output=cfg.processing.program == "reco" and bool(paths.partial),
        command_line=_command_line(cfg, input_path, paths),
    )


def _command_line(cfg: FarmConfig, input_path: str, paths: JobPaths) -> str:
    """The job's program as a shell line: every argument quoted, a local output as ``"$partial"``.

    The partial name is made unique by the running script (see ``templates/job.sh.j2``), so the
    program is given the variable, not a literal name.
    """
    usage = str(usage_path(paths.status_file))
    if not paths.partial:
        return " ".join(map(shlex.quote, job_command(cfg, input_path, paths.output, usage)))
    marker = "\0partial"  # not a path anyone can have: NUL is not allowed in one
    argv = job_command(cfg, input_path, marker, usage)
    return " ".join('"$partial"' if a == marker else shlex.quote(a) for a in argv)
