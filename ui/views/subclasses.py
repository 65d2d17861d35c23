"""Sub-classes: the recursive EM tree of one expression (paper 003, Alg. 2). Each node is
described by what sets it apart (its share of the parent, how often the mouth is open, the
model's softmax mix and the class that rose or fell most; ferindex/analysis/subclasses.py);
the chosen node shows the 16 faces nearest its medoid (the members that best show what the
sub-class is)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui import state, widgets

TOP = 16
PARTS = ("bic", 2, 3, 4, 5, 6)


def nodes_of(tree, expression: str) -> list:
    """The expression's nodes, parents before children (depth first, as the tree was grown)."""
    return [n for nid, n in tree.tree_.items()
            if nid == expression or nid.startswith(expression + "/")]


def top_rows(faces, node) -> list[int]:
    from ferindex.analysis.summary import top_k_near_medoid

    return node.indices[top_k_near_medoid(faces.X[node.indices], TOP)].tolist()


@st.cache_data(show_spinner="Describing the sub-classes...", max_entries=8)
def _descriptions(path: str, generation: int, labels_stamp: str, levels: int, parts, min_size: int,
                  _index: state.Index) -> dict[str, str]:
    from ferindex.analysis.album import landmarks68, probs_matrix
    from ferindex.analysis.subclasses import describe_nodes, mouth_aspect_ratio
    from ferindex.store.catalog import Catalog

    faces = state.album_faces(_index)
    classes = list(state.model(_index).classes)
    with Catalog.open(path) as cat:
        mouth = mouth_aspect_ratio(landmarks68(cat, faces.ids))
    tree = state.subclasses(_index, levels, parts, min_size)
    return describe_nodes(tree.tree_, probs_matrix(faces, len(classes)), classes, mouth)


def descriptions(index: state.Index, levels: int, parts, min_size: int) -> dict[str, str]:
    """{node id: what sets it apart}, cached with the tree's own key."""
    return _descriptions(str(index.path), index.generation, index.labels_stamp, levels, parts,
                         min_size, index)


def render(index: state.Index) -> None:
    st.header("Sub-classes: kinds of each expression")
    faces = state.album_faces(index)
    names, sizes = np.unique(faces.labels, return_counts=True)
    order = np.argsort(-sizes, kind="stable")  # the largest expression first
    labels, counts = names[order].tolist(), sizes[order].tolist()
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    expression = c1.selectbox("Expression", labels, key="sub_expression",
                              format_func=lambda e: f"{e} ({counts[labels.index(e)]} faces)")
    levels = int(c2.number_input("Levels", 1, 3, 2, key="sub_levels"))
    parts = c3.selectbox("Parts per split", PARTS, key="sub_parts",
                         help="bic: chosen per node by the Bayesian information criterion")
    min_size = int(c4.number_input("Min. size", 2, 1000, 20, key="sub_min_size",
                                   help="Smallest sub-class worth splitting off"))
    tree = state.subclasses(index, levels, parts, min_size)
    words = descriptions(index, levels, parts, min_size)
    nodes = nodes_of(tree, expression)
    if len(nodes) == 1:
        st.info(f"{expression} stays one group at these settings ({nodes[0].size} faces; a node"
                f" splits only when the mixture's parts hold at least {min_size} faces on"
                " average).")
    ids = [n.id for n in nodes]
    if st.session_state.get("sub_node") not in ids:
        st.session_state["sub_node"] = ids[0]  # a new expression or tree: start at its root
    st.radio("Sub-class", ids, key="sub_node", label_visibility="collapsed",
             format_func=lambda i: "\u2003" * i.count("/") + f"**{i}** — {words[i]}")
    node = tree.tree_[st.session_state["sub_node"]]
    st.markdown(f"**{node.id}**: the {min(TOP, node.size)} faces nearest its medoid")
    rows = top_rows(faces, node)
    widgets.gallery(widgets.face_cards(index, faces, rows), cols=8, actions="sub")
    widgets.downloads(index, widgets.face_rows(
        index, faces, node.indices, extra=lambda r: {"subclass": node.id}),
        "sub", f"subclass_{node.id.replace('/', '_')}")
