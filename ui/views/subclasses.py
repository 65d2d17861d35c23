"""Sub-classes: the recursive EM tree of one expression (paper 003, Alg. 2) with, at each node,
the 16 faces nearest its medoid (the members that best show what the sub-class is)."""
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


def render(index: state.Index) -> None:
    st.header("Sub-classes: kinds of each expression")
    faces = state.album_faces(index)
    names, sizes = np.unique(faces.labels, return_counts=True)
    order = np.argsort(-sizes, kind="stable")  # the largest expression first
    labels, counts = names[order].tolist(), sizes[order].tolist()
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    expression = c1.selectbox("Expression", labels, key="sub_expression",
                              format_func=lambda e: f"{e} ({counts[labels.index(e)]} faces)")
    levels = c2.number_input("Levels", 1, 3, 2, key="sub_levels")
    parts = c3.selectbox("Parts per split", PARTS, key="sub_parts",
                         help="bic: chosen per node by the Bayesian information criterion")
    min_size = c4.number_input("Min. size", 2, 1000, 20, key="sub_min_size",
                               help="Smallest sub-class worth splitting off")
    tree = state.subclasses(index, int(levels), parts, int(min_size))
    nodes = nodes_of(tree, expression)
    if len(nodes) == 1:
        st.info(f"{expression} stays one group at these settings ({nodes[0].size} faces; a node"
                f" splits only when the mixture's parts hold at least {min_size} faces on"
                " average).")
    for node in nodes:
        head = "\u2003" * node.level + f"{node.id} — {node.size} faces"
        with st.expander(head, expanded=node.level == 0):
            widgets.gallery(widgets.face_cards(index, faces, top_rows(faces, node)), cols=8)
