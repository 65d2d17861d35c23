"""What every command shares: the option types (`--json`, `--index`, `--album`, `--out`), the
error handling that turns known failures into one line and an exit code, and finding the index.

Both cli/app.py and cli/analysis_cmds.py import from here (neither imports the other), so there
is one definition of each option and one error policy.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import typer

from ferindex.cli import output
from ferindex.errors import FerindexError

if TYPE_CHECKING:
    from ferindex.store.catalog import Catalog

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout.")]
IndexOpt = Annotated[Optional[Path], typer.Option(
    "--index", help="Index folder (default: <album>/.ferindex, or ./.ferindex).")]
AlbumOpt = Annotated[Optional[Path], typer.Option(
    "--album", help="Album folder whose <album>/.ferindex index to use.")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Where to write the PNG(s) (default: inside the index folder).")]
PersonOpt = Annotated[Optional[str], typer.Option(
    help="Person id or name (see `ferindex people`).")]


def guarded(as_json: bool, fn: Callable[[], T]) -> T:
    """Run a command body, turning known failures into a message and an exit code: 1 the query
    photo has no face, 2 bad input (FerindexError, an OSError on a path, or a ValueError from
    an analysis component given values it cannot use), 130 interrupted."""
    from ferindex.pipeline.query import NoFaceError

    try:
        return fn()
    except NoFaceError as e:
        output.fail(str(e), 1, as_json)
    except (FerindexError, ValueError) as e:  # BadImageError, CatalogError, unknown person...
        output.fail(str(e), 2, as_json)
    except OSError as e:  # e.g. an index or sample folder we may not write to
        output.fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), 2, as_json)
    except KeyboardInterrupt:
        output.fail("interrupted: everything committed so far is kept; run the same command"
                    " again to resume", 130, as_json)


def index_for(index: Path | None, album: Path | None) -> Path:
    """The index folder named by --index / --album / the current folder (CatalogError if none)."""
    from ferindex.pipeline.query import resolve_index

    return resolve_index(index, album)


def open_catalog(index: Path | None, album: Path | None) -> tuple[Path, "Catalog"]:
    """(index folder, open Catalog) for --index / --album; the caller closes the catalog."""
    from ferindex.store.catalog import Catalog

    where = index_for(index, album)
    return where, Catalog.open(where)
