"""Which environment variables a job is given (farmtools.batch.jobenv)."""

from __future__ import annotations

from farmtools.batch.jobenv import is_secret_name, job_environment


def test_secret_names_are_recognised_whatever_their_case() -> None:
    for name in ("FARMTOOLS_DB_PASSWORD", "PGPASSWORD", "eos_token", "X_SECRET", "MY_PASSWD"):
        assert is_secret_name(name), name
    for name in ("PATH", "HOME", "SLURM_CONF", "FARMTOOLS_CONFIG", "KRB5CCNAME"):
        assert not is_secret_name(name), name


def test_job_environment_drops_secrets_and_named_extras_and_adds_values() -> None:
    base = {"PATH": "/bin", "FARMTOOLS_DB_PASSWORD": "x", "PGPASS_ALT": "y", "KEEP": "1"}
    env = job_environment(base, also=["PGPASS_ALT"], FARMTOOLS_JOB_ID="7")
    assert env == {"PATH": "/bin", "KEEP": "1", "FARMTOOLS_JOB_ID": "7"}
    assert base["FARMTOOLS_DB_PASSWORD"] == "x"  # the caller's mapping is not changed
