"""Commands of the ingest stage (being written)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root application."""
