"""Classify: every face of uploaded photos. The photo is shown with its faces numbered (so a
missed face is visible), then one row per face: the KNN vote (K=11 over the model's reference
bank plus the faces labelled in this index) with its share, and the model's own softmax in the
same line, with a word when the two readings disagree."""
from __future__ import annotations

import streamlit as st

from ui import state, widgets

TOP = 3  # classes listed per reading


def classify_upload(index: state.Index, name: str, data: bytes):
    """(`classify_photo` dicts left to right, face crops, the photo with numbered boxes);
    UploadProblem for a file that is not an image or holds no face."""
    from ferindex.analysis.classify import classify_photo
    from ferindex.io.decode import load_rgb

    with widgets.saved_upload(name, data) as path:
        faces = classify_photo(path, state.model(index), state.detector(index), state.knn(index))
        rgb = load_rgb(path)
    if not faces:
        raise widgets.UploadProblem(f"{name}: no face found in this photo", no_face=True)
    photo = state.draw_boxes(rgb, [f["box"] for f in faces], side=900)
    return faces, [widgets.face_crop(rgb, f["box"]) for f in faces], photo


def face_line(j: int, f: dict) -> str:
    """"1. **happiness** 82% by KNN vote (neutral 10%, ...) · model softmax: **happiness** 64%
    (...)" and a word when the two readings disagree."""
    def top(probs: dict) -> str:
        ranked = sorted(probs.items(), key=lambda kv: -kv[1])[:TOP]
        return ", ".join(f"{c} {p:.0%}" for c, p in ranked[1:])

    knn, model = f["label"], f["model_label"]
    text = (f"**{j + 1}.** **{knn}** {f['probs'][knn]:.0%} by KNN vote ({top(f['probs'])}) · "
            f"model softmax: **{model}** {f['model_probs'][model]:.0%} ({top(f['model_probs'])})")
    if knn != model:
        text += " · :orange[the two readings disagree: an ambiguous face]"
    return text


def render(index: state.Index) -> None:
    st.header("Classify expressions")
    ups = st.file_uploader("Photos to classify", accept_multiple_files=True, key="classify_upload")
    if not ups:
        st.info("Upload one or more photos: every face is labelled by a K=11 nearest-neighbour"
                " vote, shown beside the model's own softmax.")
        return
    bar = st.progress(0.0, text=f"Classifying {len(ups)} photo(s)...")
    for n, up in enumerate(ups):
        bar.progress(n / len(ups), text=f"Detecting and classifying faces: photo {n + 1} of"
                                        f" {len(ups)} ({up.name})...")
        st.subheader(up.name)
        try:
            faces, crops, photo = classify_upload(index, up.name, up.getvalue())
        except widgets.UploadProblem as e:
            widgets.show_problem(e)
            continue
        left, right = st.columns([2, 3])
        left.image(photo, caption=f"{len(faces)} face(s), numbered left to right",
                   width="stretch")
        with right:
            for j, (f, crop) in enumerate(zip(faces, crops)):
                c1, c2 = st.columns([1, 7], vertical_alignment="center")
                c1.image(crop, caption=f"face {j + 1}: {f['label']}", width="stretch")
                c2.markdown(face_line(j, f))
    bar.empty()
