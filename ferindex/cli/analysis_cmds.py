"""Album analysis commands: classify, subclasses, summarize, people, find, map, label, notface,
bestshot, export.

`register(app)` adds them to the typer app (cli/app.py calls it after defining its own
commands), in the order `ferindex --help` lists them. They live by job: expression_cmds.py
(classify, subclasses, summarize, bestshot), people_cmds.py (people, find, label, notface),
map_export_cmds.py (map, export), with their shared helpers in album_helpers.py. Each command is
thin: read arrays from the index (analysis/album.py), run one analysis component, print a table
or one JSON document (cli/output.py rules).
"""
from __future__ import annotations

import typer

from ferindex.cli.expression_cmds import bestshot, classify, subclasses, summarize
from ferindex.cli.map_export_cmds import export, map_cmd
from ferindex.cli.people_cmds import find, label, notface, people


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ferindex app."""
    app.command()(classify)
    app.command()(subclasses)
    app.command()(summarize)
    app.command()(people)
    app.command()(find)
    app.command("map")(map_cmd)
    app.command()(label)
    app.command()(notface)
    app.command()(bestshot)
    app.command()(export)
