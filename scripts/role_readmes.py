"""Write roles/<name>/README.md from roles/<name>/meta/main.yml and defaults/main.yml.

Why generated: the variables table must say what defaults/main.yml says; the comment lines
above each variable are its description.  Run after changing a role's defaults:
``.venv/bin/python scripts/role_readmes.py``.  A ``## Notes`` section written by hand at the end
of a README (what is untested and why, for instance) is kept as it is.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The hand-written end of a README, kept when the rest is generated again.
NOTES = "## Notes\n"


def variables(defaults: Path) -> list[tuple[str, str, str]]:
    """(name, default, description) of each top-level variable, description from comments."""
    values = yaml.safe_load(defaults.read_text()) or {}
    rows: list[tuple[str, str, str]] = []
    comment: list[str] = []
    for line in defaults.read_text().splitlines():
        if line.startswith("# ---"):
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("# ").strip())
        elif line and not line.startswith((" ", "-")) and ":" in line:
            name = line.split(":", 1)[0]
            if name in values:
                default = yaml.safe_dump(values[name], default_flow_style=True).strip()
                default = default.removesuffix("\n...").removesuffix("...").strip()
                rows.append((name, default.replace("|", "\\|"), " ".join(comment)))
            comment = []
        elif not line:
            comment = []
    return rows


def main() -> None:
    for role in sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()):
        meta = yaml.safe_load((role / "meta" / "main.yml").read_text())["galaxy_info"]
        lines = [
            f"# Role `{role.name}`",
            "",
            meta["description"] + ".",
            "",
            "Applied by `site.yml` (see docs/deployment.md).  Supported: Debian 12, the platform",
            "the mock farm tests; tasks that differ by OS family read `vars/<family>.yml`, and the",
            "EL ones (`vars/RedHat.yml`, EL9) are written but untested.",
            "",
            "## Variables",
            "",
            "| variable | default | description |",
            "|---|---|---|",
        ]
        for name, default, desc in variables(role / "defaults" / "main.yml"):
            lines.append(f"| `{name}` | `{default}` | {desc} |")
        readme = role / "README.md"
        old = readme.read_text() if readme.exists() else ""
        notes = old[old.index(NOTES) :] if NOTES in old else ""
        readme.write_text("\n".join(lines) + "\n" + ("\n" + notes if notes else ""))


if __name__ == "__main__":
    main()
