"""A list of result rows (dicts, as the CLI's --json prints them) as CSV or JSON text.

One function per format so the CLI (`ferindex export --csv/--json`) and the UI's download
buttons write the same files.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def to_json(rows: Sequence[dict]) -> str:
    """A JSON array, one object per row."""
    return json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], indent=2,
                      ensure_ascii=False, default=str) + "\n"


def to_csv(rows: Sequence[dict]) -> str:
    """CSV with a header of every key in first-seen order; a box becomes x0, y0, x1, y1 and any
    other list or dict a JSON cell, so spreadsheet users get one value per cell."""
    flat = [_flatten(r) for r in rows]
    fields = list(dict.fromkeys(k for r in flat for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def _flatten(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        v = _plain(v)
        if k == "box" and isinstance(v, (list, tuple)) and len(v) == 4:
            out.update(zip(("x0", "y0", "x1", "y1"), v))
        elif isinstance(v, (list, tuple, dict)):
            out[k] = json.dumps(v, ensure_ascii=False, default=str)
        else:
            out[k] = "" if v is None else v
    return out
