"""Classify: every face of uploaded photos, with the KNN vote distribution (K=11 over the
model's reference bank plus the faces labelled in this index) beside the model's softmax."""
from __future__ import annotations

import streamlit as st

from ui import state, widgets


def classify_upload(index: state.Index, name: str, data: bytes) -> tuple[list[dict], list[bytes]]:
    """(`classify_photo` dicts left to right, face crops); UploadProblem for a file that is not
    an image or holds no face."""
    from ferindex.analysis.classify import classify_photo
    from ferindex.io.decode import load_rgb

    with widgets.saved_upload(name, data) as path:
        faces = classify_photo(path, state.model(index), state.detector(index), state.knn(index))
        if not faces:
            raise widgets.UploadProblem(f"{name}: no face found in this photo", no_face=True)
        rgb = load_rgb(path)
    return faces, [widgets.face_crop(rgb, f["box"]) for f in faces]


def render(index: state.Index) -> None:
    st.header("Classify expressions")
    ups = st.file_uploader("Photos to classify", accept_multiple_files=True, key="classify_upload")
    if not ups:
        st.info("Upload one or more photos: every face is labelled by a K=11 nearest-neighbour"
                " vote, shown beside the model's own softmax.")
        return
    classes = state.model(index).classes
    for n, up in enumerate(ups):
        st.subheader(up.name)
        try:
            faces, crops = classify_upload(index, up.name, up.getvalue())
        except widgets.UploadProblem as e:
            widgets.show_problem(e)
            continue
        for j, (f, crop) in enumerate(zip(faces, crops)):
            left, right = st.columns([1, 4])
            left.image(crop, caption=f"face {j + 1}: {f['label']}", width="stretch")
            right.markdown(
                f"Face {j + 1} of {len(faces)}: **{f['label']}** by KNN vote"
                f" ({f['probs'][f['label']]:.2f}); model softmax: **{f['model_label']}**"
                f" ({f['model_probs'][f['model_label']]:.2f})")
            right.plotly_chart(widgets.prob_bars(classes, {"KNN votes (K=11)": f["probs"],
                                                           "model softmax": f["model_probs"]}),
                               key=f"classify_bars_{n}_{j}")
