"""Face detection, landmarks, FER-framed alignment, expression chips and identity descriptors,
checked on real photos (skipped without the research data)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferindex.errors import ModelError
from ferindex.faces import align, chips, dlib_models, landmarks
from ferindex.faces.detect import HogDetector, make_detector
from ferindex.faces.identity import IdentityEncoder
from ferindex.io.decode import load_rgb
from ferindex.store.catalog import box_iou

REPO = Path(__file__).resolve().parents[1]
GROUP_PHOTO = "2008_001322.jpg"  # three frontal faces, 500x375


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hog() -> HogDetector:
    return make_detector("hog", upsample=1)


@pytest.fixture(scope="module")
def faces_dir(data_dir: Path) -> Path:
    return data_dir / "photos" / "dlib_faces"


@pytest.fixture(scope="module")
def group(faces_dir: Path, hog: HogDetector):
    rgb = load_rgb(faces_dir / GROUP_PHOTO)
    return rgb, hog.detect(rgb)


def test_hog_recall_floor_on_labelled_photos(faces_dir: Path, hog: HogDetector):
    # scripts/eval_detection.py measured 43/43 faces, 0 false positives (default `hog`).
    ev = _load_script("eval_detection")
    truth = ev.load_boxes(faces_dir)
    n_faces = tp = fp = 0
    for name, boxes in truth.items():
        found = [d.box for d in hog.detect(load_rgb(faces_dir / name))]
        hits = ev.match(found, boxes)
        n_faces, tp, fp = n_faces + len(boxes), tp + hits, fp + len(found) - hits
    assert n_faces >= 40
    assert tp / n_faces >= 0.98
    assert fp == 0


def test_no_face_in_dogs_photo(faces_dir: Path, hog: HogDetector):
    assert hog.detect(load_rgb(faces_dir / "dogs.jpg")) == []


def test_astronaut_patch_is_not_a_face(hog):
    """Plain HOG takes the mission patch on the suit for a face; the CNN check rejects it."""
    from skimage.data import astronaut

    from ferindex.faces.verify import FaceVerifier

    rgb = astronaut()
    plain = make_detector("hog-plain", upsample=1).detect(rgb)
    assert len(plain) == 2  # the face and the patch (what the checks are for)
    (face,) = hog.detect(rgb)
    assert box_iou(face.box, max(plain, key=lambda d: d.score).box) > 0.8
    verifier = FaceVerifier()
    patch = min(plain, key=lambda d: d.score)
    assert verifier.score(rgb, patch.box) < 0 <= verifier.score(rgb, face.box)


def test_sideways_photo_is_found_by_the_retry(faces_dir: Path, hog: HogDetector, group):
    """A photo turned by 90 degrees (no EXIF to undo it): the retry finds its faces, with boxes
    and landmarks on the photo as given."""
    rgb, upright = group
    turned = np.ascontiguousarray(np.rot90(rgb))  # anticlockwise: (x, y) -> (y, w - 1 - x)
    assert make_detector("hog-plain", upsample=1).detect(turned) == []
    found = hog.detect(turned)
    assert len(found) >= 2
    w = rgb.shape[1]
    for d in found:
        x0, y0, x1, y1 = d.box
        back = (w - y1, x0, w - y0, x1)  # the box on the upright photo
        assert max(box_iou(back, u.box) for u in upright) > 0.5
        eyes = d.landmarks[36:48, 0].mean()
        assert eyes < d.landmarks[48:68, 0].mean()  # turned: the eyes are left of the mouth


def test_detection_fields(group):
    rgb, dets = group
    h, w = rgb.shape[:2]
    assert len(dets) == 3
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)
    for d in dets:
        x0, y0, x1, y1 = d.box
        assert all(isinstance(v, int) for v in d.box)
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert d.landmarks.shape == (68, 2) and d.landmarks.dtype == np.float32
        # landmarks lie around the box they were predicted in
        centre = d.landmarks.mean(0)
        assert x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1


def test_huge_photo_is_detected_on_a_small_copy_and_mapped_back(group):
    rgb, _ = group
    dets = HogDetector(upsample=1).detect(rgb)
    big = cv2.resize(rgb, (rgb.shape[1] * 4, rgb.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    big_dets = HogDetector(upsample=1, max_side=500).detect(big)
    assert len(big_dets) == len(dets)
    for d in dets:
        scaled = tuple(4 * v for v in d.box)
        best = max(big_dets, key=lambda b: box_iou(b.box, scaled))
        assert box_iou(best.box, scaled) > 0.8
        iod = np.linalg.norm(d.landmarks[36:42].mean(0) - d.landmarks[42:48].mean(0)) * 4
        err = np.linalg.norm(best.landmarks - (d.landmarks + 0.5) * 4 + 0.5, axis=1).mean()
        assert err < 0.1 * iod


def test_aligned_faces_match_the_fer_template(group):
    rgb, dets = group
    template = align.template_landmarks(48)
    iod48 = np.linalg.norm(template[36:42].mean(0) - template[42:48].mean(0))
    for d in dets:
        chip, lm_chip = align.align_face_with_landmarks(rgb, d.landmarks, 48)
        assert chip.shape == (48, 48) and chip.dtype == np.uint8
        err = np.linalg.norm(lm_chip - template, axis=1)[align.ALIGN_POINTS].mean()
        assert err < 0.15 * iod48  # measured 1.25-1.87 px of ~18 px interocular
        # the naive box crop frames the same face further from the FER template
        box_lm = align.apply_transform(align.box_matrix(d.box, 48), d.landmarks)
        assert np.linalg.norm(box_lm - template, axis=1)[align.ALIGN_POINTS].mean() > err


def test_alignment_undoes_rotation_and_scale(group):
    rgb, dets = group
    d = dets[0]
    cx, cy = d.landmarks.mean(0)
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), 25.0, 1.3)
    turned = cv2.warpAffine(rgb, m, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_CUBIC)
    turned_lm = d.landmarks @ m[:, :2].T + m[:, 2]
    a = align.align_face(rgb, d.landmarks).astype(float)
    b = align.align_face(turned, turned_lm).astype(float)
    assert np.abs(a - b).mean() < 6  # gray levels; different faces differ by ~30+


def test_box_crop_shape(group):
    rgb, dets = group
    crop = align.box_crop(rgb, dets[0].box)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8


def test_partial_image_and_regions(group):
    rgb, dets = group
    smalls, bigs = [], []
    for d in dets:
        chip, lm_chip = align.align_face_with_landmarks(rgb, d.landmarks, 48)
        small = chips.partial_image(chip, lm_chip)
        assert small.shape == (30, 60) and small.dtype == np.uint8
        smalls.append(small.astype(float).ravel())
        bigs.append(chips.partial_image(
            *align.align_face_with_landmarks(rgb, d.landmarks, 192)).astype(float).ravel())
        reg = chips.regions(chip, lm_chip)
        assert set(reg) == {"eyes", "mouth"}
        assert all(r.shape == (24, 48) and r.dtype == np.uint8 for r in reg.values())
        boxes = chips.part_boxes(lm_chip)
        assert boxes["eyes"][3] < boxes["mouth"][3]  # eyes above the mouth
    # margins scale with the face: parts cut from a 4x larger chip of the same face look alike
    # (measured r = 0.81-0.91), more than the same parts of another face do
    corr = np.corrcoef(np.asarray(smalls), np.asarray(bigs))[:3, 3:]
    assert (np.diag(corr) > 0.75).all()
    assert (np.diag(corr) > corr.max(axis=1) - 1e-9).all()


def test_fer_landmarks_on_fer_crops(data_dir: Path):
    data = np.load(data_dir / "fer2013" / "fer2013.npz")
    rows = np.flatnonzero(data["has_pixels"] & (data["usage"] == 0))[:40]
    crops = np.concatenate([data["pixels"][rows], np.zeros((1, 48, 48), np.uint8)])
    pts = chips.fer_landmarks(crops)
    assert pts.shape == (41, 68, 2) and pts.dtype == np.float32
    assert not pts[-1].any()  # blank crop -> zeros
    template = align.template_landmarks(48)
    eye_err = np.linalg.norm(np.median(pts[:-1, 36:48], axis=0) - template[36:48], axis=1)
    assert eye_err.mean() < 1.5  # px at 48: FER faces sit where the template says
    with pytest.raises(ValueError):
        landmarks.fer_landmarks(np.zeros((2, 64, 64), np.uint8))


def test_template_file_is_consistent():
    meta = json.loads(align.TEMPLATE_PATH.read_text())
    pts = np.asarray(meta["landmarks"])
    assert pts.shape == (68, 2) and meta["faces_used"] > 10000
    assert (pts >= -2).all() and (pts <= 52).all()
    # eyes above nose tip above mouth, left-right order as in iBUG
    assert pts[36:48, 1].mean() < pts[30, 1] < pts[48:68, 1].mean()
    assert pts[36:42, 0].mean() < pts[42:48, 0].mean()


def test_identity_same_person_closer_than_different(data_dir: Path, hog: HogDetector):
    people = sorted((data_dir / "photos" / "dlib_johns").iterdir())[:3]
    encoder = IdentityEncoder()
    vecs, who = [], []
    for person in people:
        for path in sorted(person.iterdir())[:3]:
            rgb = load_rgb(path)
            dets = hog.detect(rgb)
            assert dets, f"no face found in {path}"
            vecs.append(encoder.encode(rgb, dets[:1])[0])
            who.append(person.name)
    v = np.asarray(vecs)
    assert v.shape == (9, 128) and v.dtype == np.float32
    dist = np.linalg.norm(v[:, None] - v[None], axis=2)
    same = np.equal.outer(who, who) & ~np.eye(len(who), dtype=bool)
    assert dist[same].max() < dist[~np.equal.outer(who, who)].min()
    assert encoder.encode(rgb, []).shape == (0, 128)


def test_missing_model_package_is_a_model_error(monkeypatch):
    dlib_models.models_dir.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(ModelError, match="face_recognition_models"):
            dlib_models.model_path(dlib_models.SHAPE_68)
    finally:
        dlib_models.models_dir.cache_clear()


def test_insightface_never_downloads(tmp_path: Path):
    with pytest.raises(ModelError, match="model pack"):
        make_detector("insightface")
    with pytest.raises(ModelError):  # missing package, or a pack folder without det_*.onnx
        make_detector("insightface", model_pack=tmp_path)
    with pytest.raises(ValueError):
        make_detector("nope")
