"""Shared output of every command: `--json` documents on stdout, or rich tables for people.

Rules all commands follow (documented in README, "JSON output"):
- with `--json`, stdout holds exactly one JSON document, also on failure:
  `{"error": "<message>", "exit_code": N}`; progress and messages go to stderr;
- without it, results go to stdout as tables and errors to stderr as one line, never a traceback.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=_default) + "\n")
    sys.stdout.flush()


def emit_rows(rows: list[dict], as_json: bool, line: Callable[[dict], str], empty: str) -> None:
    """A list result: the JSON array, or one `line` per row and `empty` when there is none."""
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        stdout.print(line(r))
    if not rows:
        stdout.print(empty)


def report_error(message: str, code: int, as_json: bool) -> None:
    """One error: the JSON document `{"error", "exit_code"}` on stdout with --json, and one
    line on stderr in every case."""
    if as_json:
        emit_json({"error": message, "exit_code": code})
    stderr.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)


def fail(message: str, code: int, as_json: bool) -> NoReturn:
    """Report an error (one line, or a JSON document) and exit with `code`."""
    report_error(message, code, as_json)
    raise typer.Exit(code)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def key_value_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, "-" if v is None else str(v))
    return table


def errors_table(title: str, errors: list[dict]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("reason", overflow="fold")
    for e in errors:
        table.add_row(e["path"], e["reason"])
    return table


def hits_table(title: str, hits: list[dict]) -> Table:
    """Query hits; the label is marked "(you)" for your own label and "(model)" for the model's
    softmax where no KNN label is stored yet; the person column shows when people exist."""
    table = Table(title=title, title_justify="left")
    with_people = any(h.get("person_id") is not None for h in hits)
    cols = ("#", "distance", "label", "p", "face", *(("person",) if with_people else ()),
            "photo", "box")
    for col in cols:
        table.add_column(col, overflow="fold",
                         justify="right" if col in ("#", "distance", "p", "face") else "left")
    marks = {"user": " (you)", "model": " (model)"}
    for h in hits:
        p = "-" if h.get("label_prob") is None else f"{h['label_prob']:.2f}"
        person = h.get("person_id")
        table.add_row(str(h["rank"] + 1), f"{h['distance']:.4f}",
                      f"{h['label']}{marks.get(h.get('label_source'), '')}", p,
                      str(h.get("face_id", "")),
                      *((("-" if person is None else str(person)),) if with_people else ()),
                      display_path(h["path"]), ",".join(map(str, h["box"])))
    return table


def display_path(path: str) -> str:
    """A path as people want to read it in a table: relative to the current folder when it lies
    below it (JSON output keeps the absolute path)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
