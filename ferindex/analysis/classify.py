"""Classify the faces of photos with no index: decode -> detect -> align -> embed -> KNN.

The label is the distance-weighted K=11 vote (SGM, paper 003) among the model's shipped
reference bank, plus the user's labelled faces of an index when one is given; the model's own
softmax posterior is reported beside it. A bad file yields an error entry, not an abort.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ferindex.analysis.calibration import reweight
from ferindex.analysis.knn import KNNClassifier, combine_banks
from ferindex.errors import FerindexError


def expand(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given; folders walked recursively for image files (sorted)."""
    from ferindex.io.scan import ScanEntry, scan

    for p in map(Path, paths):
        if p.is_dir():
            yield from (e.path for e in scan(p) if isinstance(e, ScanEntry))
        else:
            yield p


def make_knn(model, k: int = 11, user: tuple[np.ndarray, np.ndarray] | None = None,
             user_weight: float = 1.0, calibrated: bool = True) -> KNNClassifier:
    """KNN over the model's reference bank (+ user-labelled embeddings and class names), its
    votes corrected for the bank's class prior as the model card says (raw when not `calibrated`)."""
    X, y = model.reference_bank()
    y = np.asarray(model.classes)[y]
    w = None
    if user is not None and len(user[0]):
        X, y, w = combine_banks(X, y, user[0], user[1], user_weight)
    cw, sw = (model.class_weight("knn"), model.knn_softmax_weight()) if calibrated else (None, 0.0)
    return KNNClassifier(k=k, metric=model.metric, class_weight=cw, softmax_weight=sw
                         ).fit(X, y, classes=model.classes, sample_weight=w)


def read_expressions(model, knn: KNNClassifier, chips: np.ndarray, landmarks: np.ndarray | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, KNN label posteriors, shown softmax) of aligned chips from one network pass:
    the KNN label blends in the raw softmax, users are shown the corrected one."""
    Z, raw = model.embed_and_proba(chips, landmarks, calibrated=False)
    return Z, knn.predict_proba(Z, raw), reweight(raw, model.class_weight("softmax"))


def classify_photo(path: Path, model, detector, knn: KNNClassifier) -> list[dict]:
    """[{box, label, probs (KNN votes), model_label, model_probs}] left to right."""
    from ferindex.faces.align import align_face_with_landmarks
    from ferindex.io.decode import load_rgb

    rgb = load_rgb(path)
    dets = sorted(detector.detect(rgb), key=lambda d: (d.box[0], d.box[1]))
    if not dets:
        return []
    aligned = [align_face_with_landmarks(rgb, d.landmarks) for d in dets]
    chips = np.stack([a[0] for a in aligned])
    lms = np.stack([a[1] for a in aligned])
    _, votes, P = read_expressions(model, knn, chips, lms if lms.shape[1:] == (68, 2) else None)
    classes = model.classes
    return [{"box": [int(v) for v in d.box],
             "label": classes[int(v.argmax())],
             "probs": {c: round(float(x), 4) for c, x in zip(classes, v)},
             "model_label": classes[int(p.argmax())],
             "model_probs": {c: round(float(x), 4) for c, x in zip(classes, p)}}
            for d, v, p in zip(dets, votes, P)]


def classify_paths(paths: Iterable[str | Path], model, detector, knn: KNNClassifier
                   ) -> Iterator[dict]:
    """{path, faces} per photo, or {path, error} for a file that cannot be used."""
    for path in expand(paths):
        try:
            yield {"path": str(path), "faces": classify_photo(path, model, detector, knn)}
        except FerindexError as e:
            yield {"path": str(path), "error": str(e)}
        except OSError as e:
            yield {"path": str(path), "error": f"{path}: {e.strerror or e}"}
