"""Render ``farm.toml`` from ``templates/farm.toml.j2``, the template the Ansible roles use too.

Why here and not a second template: one copy of each template (DESIGN.md), so a key added to the
schema and the template reaches laptops and farms alike.  Overrides are given as dotted keys
(``storage.backend``) and become the template's ``farmtools_<section>_<key>`` variables, the
names the inventories set.  May import :mod:`farmtools.config` and :mod:`farmtools.resources` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from farmtools.config import FarmConfig
from farmtools.resources import templates_dir

TEMPLATE_NAME = "farm.toml.j2"


def template_variable(key: str) -> str:
    """``storage.backend`` -> ``farmtools_storage_backend``; unknown keys are an error.

    Checked against the schema so a typo fails here, naming the key, rather than being silently
    ignored by the template (which only knows the keys it lists).
    """
    section, _, name = key.partition(".")
    fields = FarmConfig.model_fields
    if section not in fields or section == "base_dir" or not name:
        raise KeyError(f"{key}: not a <section>.<key> of farm.toml")
    annotation = fields[section].annotation
    sub = getattr(annotation, "model_fields", {})
    if name not in sub:
        raise KeyError(f"{key}: section [{section}] has no key {name!r}")
    return f"farmtools_{section}_{name}"


def render_farm_toml(overrides: Mapping[str, Any] | None = None, rendered_by: str = "") -> str:
    """The text of ``farm.toml``: the schema's defaults with ``overrides`` (dotted keys) applied."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - TOML, not HTML; values are escaped by tojson
    )
    variables = {template_variable(k): v for k, v in (overrides or {}).items()}
    if rendered_by:
        variables["farmtools_rendered_by"] = rendered_by
    return env.get_template(TEMPLATE_NAME).render(**variables)
