"""The environment a batch job starts with: the submitter's, without its secrets.

The daemons hold secrets in their environment (the bookkeeping password ``FARMTOOLS_DB_PASSWORD``
from ``secrets.env`` through systemd's ``EnvironmentFile``, the monitor's and the mail server's
passwords).  A job never needs them, yet by default it would inherit them all: ``sbatch`` exports
the submitting process's whole environment (``--export=ALL``) and keeps it with the job, ``qsub``
passes what ``-V`` or the wrappers forward, and the local pool's supervisor is a child of the
manager.  Anything in a job's environment is readable by whoever runs code in that job (its
``/proc/<pid>/environ``, the job's output when a script prints ``env``), so the variables are
removed before any batch command or job process is started.

A name is secret when it contains one of :data:`SECRET_WORDS` (case-insensitive): the names the
configuration uses (``database.password_env``, ``monitor.auth_password_env``...) all do, and so
do the usual ``PGPASSWORD``, ``*_TOKEN`` and ``*_SECRET`` of the tools a farm runs beside it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

#: Words that make an environment variable's name secret.
SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE_KEY")

_SECRET_NAME = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True when the variable ``name`` looks like it holds a secret."""
    return _SECRET_NAME.search(name) is not None


def job_environment(
    base: Mapping[str, str] | None = None, *, also: Iterable[str] = (), **extra: str
) -> dict[str, str]:
    """``base`` (default: this process's environment) without secrets, plus ``extra``.

    ``also`` names further variables to drop (a configured password variable whose name does
    not say so).
    """
    drop = set(also)
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k not in drop and not is_secret_name(k)
    }
    env.update(extra)
    return env
