"""``farmtools deploy``: write farm.toml from the template the Ansible roles render.

The roles, the mock farm and the Vagrantfile are driven by ``ansible-playbook`` and ``make
mockfarm-up`` (docs/deployment.md); this group only offers the configuration file, so a laptop
gets the very file a farm node gets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

deploy_app = typer.Typer(
    help="Deployment: the farm configuration from its one template.", no_args_is_help=True
)


@deploy_app.command("config")
def config_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="file to write ('-' prints to standard output)")
    ] = Path("farm.toml"),
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a key: section.key=value (TOML value)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
) -> None:
    """Render farm.toml from templates/farm.toml.j2 and check it loads."""
    import tomllib

    from rich.console import Console

    from farmtools.config import ConfigError, load_config
    from farmtools.deploy.farmtoml import render_farm_toml

    console = Console(stderr=True)
    overrides: dict[str, object] = {}
    for item in set_ or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected section.key=value", param_hint="--set")
        try:
            overrides[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key.strip()] = raw  # a bare word is a string
    try:
        text = render_farm_toml(overrides, rendered_by="farmtools deploy config")
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0]), param_hint="--set") from None
    if str(output) == "-":
        typer.echo(text, nl=False)
        return
    if output.exists() and not force:
        console.print(f"[red]{output}: exists; use --force to replace it[/red]")
        raise typer.Exit(1)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    try:
        load_config(tmp)
    except ConfigError as exc:
        tmp.unlink()
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    tmp.replace(output)
    console.print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    """Add ``farmtools deploy`` to the root application."""
    app.add_typer(deploy_app, name="deploy")
