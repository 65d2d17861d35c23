"""ferindex in the browser: `streamlit run ui/app.py -- --index DIR`.

The sidebar names the index (an index folder, or an album folder holding `.ferindex`) and the
page. Every page reads the index through ui/state.py (cached per catalog generation) and calls
the same pipeline and analysis functions as the CLI. Problems a user can act on (no index, an
empty index, an upload that is not an image or has no face) are shown as messages, never as
tracebacks.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # `streamlit run` executes this file as a script, not a module
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st

from ferindex.config import INDEX_DIRNAME
from ferindex.errors import FerindexError
from ui import actions, state
from ui.views import classify, explore, people, search, subclasses, summary

PAGES = {
    "Search": search.render,
    "Classify": classify.render,
    "Explore": explore.render,
    "Sub-classes": subclasses.render,
    "Summary": summary.render,
    "People": people.render,
}


def default_index(argv: list[str]) -> str:
    """`--index DIR` after streamlit's `--`, else ./.ferindex (where `ferindex build .` puts it)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--index")
    args, _ = parser.parse_known_args(argv)
    return args.index or str(Path.cwd() / INDEX_DIRNAME)


def main() -> None:
    st.set_page_config(page_title="ferindex", layout="wide")
    st.session_state.setdefault("index_path", default_index(sys.argv[1:]))
    with st.sidebar:
        st.title("ferindex")
        text = st.text_input("Index folder", key="index_path",
                             help="An index folder, or an album folder holding .ferindex")
        page = st.radio("Page", list(PAGES), key="page")
    try:
        index = state.open_index(text)
    except state.IndexUnavailable as e:
        st.error(str(e))
        return
    st.sidebar.caption(f"{index.photos} photos · {index.faces} faces  \nalbum {index.album}  \n"
                       f"model {index.model_id}")
    actions.show_flash()
    try:
        PAGES[page](index)
        actions.show_open_face(index)
    except FerindexError as e:  # e.g. the installed model differs from the index's
        st.error(str(e))


main()
