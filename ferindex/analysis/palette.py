"""One colour per group, the same in the CLI's map PNG and the UI's scatter.

Expression classes keep a fixed colour whatever else the album holds (happiness is always the
same yellow), so a map read yesterday and one read today agree. Other groups (people, sub-
classes) are sorted the way people count (person 2 before person 10) and take the next colour
of a 20-colour list chosen to be told apart (Kelly's colours of maximum contrast, minus white
and black); a group listed as missing ("no person") is grey.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

EXPRESSION_COLOURS = {
    "neutral": "#8c8c8c", "happiness": "#f2b200", "surprise": "#ff7f0e", "sadness": "#1f77b4",
    "anger": "#d62728", "disgust": "#2ca02c", "fear": "#9467bd", "contempt": "#8c564b",
}
DISTINCT = ("#f3c300", "#875692", "#f38400", "#a1caf1", "#be0032", "#c2b280", "#848482",
            "#008856", "#e68fac", "#0067a5", "#f99379", "#604e97", "#f6a600", "#b3446c",
            "#dcd300", "#882d17", "#8db600", "#654522", "#e25822", "#2b3d26")
MISSING = "#c8c8c8"
MISSING_NAMES = frozenset({"none", "no person", "-1", "unknown"})


def natural_key(name: object) -> tuple:
    """Sort key that compares digit runs as numbers: "person 2" < "person 10", "happiness/2" <
    "happiness/10"."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", str(name)) if part)


def ordered(groups: Iterable[object]) -> list[str]:
    """Distinct group names in natural order, missing-value groups last."""
    names = sorted({str(g) for g in groups}, key=natural_key)
    return [n for n in names if n not in MISSING_NAMES] + [n for n in names if n in MISSING_NAMES]


def colours(groups: Iterable[object]) -> dict[str, str]:
    """{group: "#rrggbb"} for every distinct group: expression classes by name, the rest by
    their natural order (the list repeats only past 20 groups)."""
    out, k = {}, 0
    for name in ordered(groups):
        if name in MISSING_NAMES:
            out[name] = MISSING
        elif name in EXPRESSION_COLOURS:
            out[name] = EXPRESSION_COLOURS[name]
        else:
            out[name] = DISTINCT[k % len(DISTINCT)]
            k += 1
    return out
