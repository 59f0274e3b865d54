"""The HTCondor backend, through the ``htcondor`` Python bindings (``htcondor2``/``classad2``).

Owns the submit description (:func:`submit_description`) and the reading of job ClassAds
(:func:`accounting_from_ad`, :func:`status_from_ad`).  HTCondor's daemons (schedd, startd...)
cannot run on these machines (PyPI ``htcondor`` holds bindings only), so the tests cover the
submit description, its acceptance by ``htcondor2.Submit``, and the parsing of recorded-format
job ads (``tests/data/htcondor/``); talking to a schedd is exercised on a real pool only.

Walltime is enforced by a ``periodic_remove`` expression whose reason the ad keeps
(``RemoveReason``), memory by ``request_memory`` plus a ``periodic_remove`` on
``ResidentSetSize``; the ad's ``ExitBySignal``/``ExitSignal``/``ExitCode`` give the rest.

Imports the standard library and :mod:`farmtools.batch.base`; the bindings are imported inside
the methods that talk to the schedd.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from farmtools.batch.base import (
    BatchSystem,
    BatchUnavailable,
    Ending,
    JobAccounting,
    JobSpec,
    JobStatus,
    SubmissionRefused,
)

WALLTIME_REASON = "walltime exceeded"
#: the job ad attribute carrying the submission's idempotency key (:meth:`HTCondorBatch.find`)
KEY_ATTRIBUTE = "FarmtoolsKey"
MEMORY_REASON = "memory exceeded"

_IDLE, _RUNNING, _REMOVED, _COMPLETED, _HELD, _TRANSFERRING, _SUSPENDED = 1, 2, 3, 4, 5, 6, 7

PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "QDate",
    "JobStartDate",
    "JobCurrentStartDate",
    "CompletionDate",
    "EnteredCurrentStatus",
    "RemoteUserCpu",
    "RemoteSysCpu",
    "ResidentSetSize_RAW",
    "ResidentSetSize",
    "ImageSize_RAW",
    "RemoteWallClockTime",
    "LastRemoteHost",
    "RemoteHost",
    "RemoveReason",
    "HoldReason",
    "JobBatchName",
]


def submit_description(spec: JobSpec) -> dict[str, str]:
    """The submit description of ``spec`` (values go to HTCondor as they are: no shell)."""
    return {
        "executable": str(spec.script),
        "universe": "vanilla",
        "output": str(spec.stdout),
        "error": str(spec.stderr),
        "log": str(spec.stdout.with_suffix(".condor.log")),
        "initialdir": str(spec.workdir),
        "batch_name": spec.batch_name,
        # the idempotency key as an ad attribute of its own: BatchSystem.find asks for it
        f"+{KEY_ATTRIBUTE}": f'"{spec.key}"',
        "+JobFlavour": f'"{spec.queue}"',
        "request_memory": f"{spec.memory_mb}",
        "request_cpus": f"{spec.cores}",
        "getenv": "false",
        "periodic_remove": (
            f"(JobStatus == 2 && time() - EnteredCurrentStatus > {spec.walltime_s}) || "
            f"(ResidentSetSize > {spec.memory_mb * 1024})"
        ),
        "periodic_remove_reason": (
            f'ifThenElse(ResidentSetSize > {spec.memory_mb * 1024}, "{MEMORY_REASON}", '
            f'"{WALLTIME_REASON}")'
        ),
    }


def _time(value: Any) -> datetime | None:
    if value in (None, 0):
        return None
    return datetime.fromtimestamp(int(value), UTC)


def status_from_ad(ad: Mapping[str, Any]) -> JobStatus:
    status = int(ad.get("JobStatus", 0))
    if status in (_COMPLETED, _REMOVED):
        return JobStatus.FINISHED
    if status in (_RUNNING, _TRANSFERRING):
        return JobStatus.RUNNING
    if status in (_IDLE, _HELD, _SUSPENDED):
        return JobStatus.PENDING
    return JobStatus.UNKNOWN


def accounting_from_ad(ad: Mapping[str, Any]) -> JobAccounting | None:
    """Accounting of a finished job's ad (from the queue or the history); None if not finished."""
    status = int(ad.get("JobStatus", 0))
    if status not in (_COMPLETED, _REMOVED):
        return None
    code: int | None = None
    sig: int | None = None
    if status == _REMOVED:
        reason = str(ad.get("RemoveReason", ""))
        if WALLTIME_REASON in reason:
            ending = Ending.TIMEOUT
        elif MEMORY_REASON in reason:
            ending = Ending.OUT_OF_MEMORY
        else:
            ending = Ending.CANCELLED
    elif ad.get("ExitBySignal"):
        sig = int(ad.get("ExitSignal", 0)) or None
        ending = Ending.SIGNALLED
    else:
        code = int(ad.get("ExitCode", 0))
        ending = Ending.COMPLETED
    rss = ad.get("ResidentSetSize_RAW", ad.get("ResidentSetSize"))
    cpu = None
    if "RemoteUserCpu" in ad or "RemoteSysCpu" in ad:
        cpu = float(ad.get("RemoteUserCpu", 0)) + float(ad.get("RemoteSysCpu", 0))
    host = ad.get("LastRemoteHost") or ad.get("RemoteHost")
    return JobAccounting(
        ending=ending,
        exit_code=code,
        signal=sig,
        submitted=_time(ad.get("QDate")),
        started=_time(ad.get("JobCurrentStartDate") or ad.get("JobStartDate")),
        ended=_time(ad.get("CompletionDate") or ad.get("EnteredCurrentStatus")),
        cpu_s=cpu,
        max_rss_kb=int(rss) if rss is not None else None,
        vmem_kb=int(ad["ImageSize_RAW"]) if "ImageSize_RAW" in ad else None,
        walltime_s=float(ad["RemoteWallClockTime"]) if "RemoteWallClockTime" in ad else None,
        node=str(host).split("@")[-1] if host else None,
        raw_state=f"JobStatus={status} {ad.get('RemoveReason', '')}".strip(),
    )


class HTCondorBatch(BatchSystem):
    """HTCondor through the local schedd (or the one ``schedd_name`` names)."""

    name = "htcondor"

    def __init__(self, schedd_name: str = "") -> None:
        self.schedd_name = schedd_name

    def _schedd(self) -> Any:
        try:
            import htcondor2 as htcondor
        except ImportError as exc:
            raise BatchUnavailable("the htcondor Python bindings are not installed") from exc
        try:
            if self.schedd_name:
                collector = htcondor.Collector()
                ad = collector.locate(htcondor.DaemonType.Schedd, self.schedd_name)
                return htcondor.Schedd(ad)
            return htcondor.Schedd()
        except Exception as exc:  # the bindings raise HTCondorException and friends
            raise BatchUnavailable(f"no schedd: {exc}") from exc

    def submit(self, spec: JobSpec) -> str:
        import htcondor2 as htcondor

        schedd = self._schedd()
        try:
            result = schedd.submit(htcondor.Submit(submit_description(spec)))
        except Exception as exc:
            raise SubmissionRefused(f"schedd refused {spec.name}: {exc}") from exc
        return f"{result.cluster()}.0"

    def find(self, spec: JobSpec) -> str | None:
        """The job whose :data:`KEY_ATTRIBUTE` is ``spec.key``: in the queue, then the history."""
        if not spec.key:
            return None
        schedd = self._schedd()
        constraint = f'{KEY_ATTRIBUTE} == "{spec.key}"'
        try:
            ads = list(schedd.query(constraint=constraint, projection=["ClusterId", "ProcId"]))
            if not ads:
                ads = list(
                    schedd.history(
                        constraint=constraint, projection=["ClusterId", "ProcId"], match=1
                    )
                )
        except Exception as exc:
            raise BatchUnavailable(f"schedd query failed: {exc}") from exc
        return f"{ads[0]['ClusterId']}.{ads[0]['ProcId']}" if ads else None

    def _ads(self, ids: list[str]) -> dict[str, Mapping[str, Any]]:
        if not ids:
            return {}
        schedd = self._schedd()
        clusters = " || ".join(f"ClusterId == {int(i.split('.')[0])}" for i in ids)
        try:
            ads = list(schedd.query(constraint=clusters, projection=PROJECTION))
            found = {f"{a['ClusterId']}.{a['ProcId']}" for a in ads}
            missing = [i for i in ids if i not in found]
            if missing:
                hist = " || ".join(f"ClusterId == {int(i.split('.')[0])}" for i in missing)
                ads += list(
                    schedd.history(constraint=hist, projection=PROJECTION, match=len(missing))
                )
        except Exception as exc:
            raise BatchUnavailable(f"schedd query failed: {exc}") from exc
        return {f"{a['ClusterId']}.{a['ProcId']}": a for a in ads}

    def states(self, ids: Iterable[str]) -> dict[str, JobStatus]:
        wanted = list(ids)
        ads = self._ads(wanted)
        return {i: status_from_ad(ads[i]) if i in ads else JobStatus.UNKNOWN for i in wanted}

    def accounting(self, job_id: str) -> JobAccounting | None:
        ad = self._ads([job_id]).get(job_id)
        return accounting_from_ad(ad) if ad is not None else None

    def cancel(self, job_id: str) -> None:
        import htcondor2 as htcondor

        self._schedd().act(htcondor.JobAction.Remove, f"ClusterId == {int(job_id.split('.')[0])}")

    def available(self) -> bool:
        try:
            self._schedd()
        except BatchUnavailable:
            return False
        return True
