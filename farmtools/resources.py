"""Where farmtools finds its Jinja2 templates (job scripts, farm.toml), installed or not.

The one copy of each template lives in the repository's top-level ``templates/`` (the Ansible
roles render the same files, DESIGN.md).  A wheel cannot hold a directory outside the package,
so pyproject.toml installs a copy under ``<prefix>/share/farmtools/templates`` (setuptools
data-files) and this module looks, in order, at ``$FARMTOOLS_TEMPLATES``, the work tree beside
the package (a clone or an editable install), and the environment's installed copy.  A farm node
installs the wheel: without the last step its manager could not render a job script.
Imports only the standard library.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: A template every layout has: how a candidate directory is recognised.
_MARKER = "job.sh.j2"


def templates_dir() -> Path:
    """The directory holding farmtools' templates (see the module docstring for the order)."""
    env = os.environ.get("FARMTOOLS_TEMPLATES")
    if env:
        return Path(env)
    candidates = (
        Path(__file__).resolve().parents[1] / "templates",
        Path(sys.prefix) / "share" / "farmtools" / "templates",
    )
    for candidate in candidates:
        if (candidate / _MARKER).is_file():
            return candidate
    raise FileNotFoundError(
        "farmtools templates not found in "
        + ", ".join(str(c) for c in candidates)
        + " (set FARMTOOLS_TEMPLATES)"
    )
