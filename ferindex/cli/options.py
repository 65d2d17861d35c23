"""What every command shares: the option types (`--json`, `--index`, `--album`, `--out`), the
error handling that turns failures into one line and an exit code, and finding the index.

Exit codes (README): 0 success, 1 the query photo has no face, 2 bad input or a state the user
can fix (unreadable image, missing, locked or damaged index, full disk, bad option), 3 an
internal error (a bug), 130 interrupted. With `--json` every one of them, option-parsing errors
included, prints exactly one JSON document on stdout.

cli/app.py and the analysis command modules (cli/*_cmds.py) import from here, so there is one
definition of each option and one error policy.
"""
from __future__ import annotations

import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from typer.core import TyperGroup

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


INTERNAL_ERROR = 3


def guarded(as_json: bool, fn: Callable[[], T]) -> T:
    """Run a command body, turning failures into a message and an exit code: 1 the query photo
    has no face, 2 bad input (FerindexError, an OSError on a path, an SQLite error, or a
    ValueError from an analysis component given values it cannot use), 3 anything else (a bug:
    the traceback goes to stderr), 130 interrupted."""
    from ferindex.pipeline.query import NoFaceError

    try:
        return fn()
    except NoFaceError as e:
        output.fail(str(e), 1, as_json)
    except (FerindexError, ValueError) as e:  # BadImageError, CatalogError, unknown person...
        output.fail(str(e), 2, as_json)
    except OSError as e:  # e.g. an index or sample folder we may not write to
        output.fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), 2, as_json)
    except sqlite3.Error as e:  # outside a `with Catalog` block, which names the file itself
        output.fail(f"the index catalog cannot be used ({e}): run `ferindex check` on it", 2,
                    as_json)
    except KeyboardInterrupt:
        output.fail("interrupted: everything committed so far is kept; run the same command"
                    " again to resume", 130, as_json)
    except (typer.Exit, typer.Abort):  # a body that already reported its failure
        raise
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        output.fail(f"internal error ({type(e).__name__}: {e}); please report it with the"
                    " traceback above", INTERNAL_ERROR, as_json)


class JsonErrorsGroup(TyperGroup):
    """The command group: click reports bad options (a value out of range, an unknown choice
    or command, a missing argument) before any command runs; when `--json` is among the
    arguments they become the one JSON document `{"error", "exit_code"}` like every other
    failure, instead of a usage text on stderr only."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or "--json" not in argv:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except typer.Abort:
            output.report_error("interrupted", 130, True)
            sys.exit(130)
        except typer.TyperException as e:  # click's usage errors, as typer vendors them
            output.report_error(e.format_message(), e.exit_code, True)
            sys.exit(e.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def index_for(index: Path | None, album: Path | None) -> Path:
    """The index folder named by --index / --album / the current folder (CatalogError if none)."""
    from ferindex.pipeline.query import resolve_index

    return resolve_index(index, album)


def open_catalog(index: Path | None, album: Path | None) -> tuple[Path, "Catalog"]:
    """(index folder, open Catalog) for --index / --album; the caller closes the catalog."""
    from ferindex.store.catalog import Catalog

    where = index_for(index, album)
    return where, Catalog.open(where)
