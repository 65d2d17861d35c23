"""The PyTorch reading of dlib's face-recognition ResNet: it must reproduce dlib's own 128-d
descriptor on real faces (no research data needed: the sample album's portraits), and the
expression backbone built on it must accept ferindex's 48x48 chips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferindex.faces import dlib_models
from ferindex.nn.dlib_resnet import DlibResNet, read_dlib_resnet
from ferindex.nn.model import build_model


def _portraits() -> list[np.ndarray]:
    """The astronaut (scikit-image) and Grace Hopper (matplotlib): the sample album's people."""
    import matplotlib
    import skimage.data
    from PIL import Image

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return [np.ascontiguousarray(skimage.data.astronaut()), np.asarray(Image.open(hopper).convert("RGB"))]


@pytest.fixture(scope="module")
def face_chips() -> np.ndarray:
    """dlib's own 150x150 chips of the largest face of each portrait."""
    import dlib

    chips = []
    for img in _portraits():
        r = max(dlib_models.hog_detector()(img, 1), key=lambda r: r.area())
        chips.append(dlib.get_face_chip(img, dlib_models.shape_predictor()(img, r), size=150, padding=0.25))
    return np.stack(chips)


def test_reader_finds_every_layer() -> None:
    w = read_dlib_resnet(dlib_models.model_path(dlib_models.RESNET))
    assert [f.shape for f, _ in w["con"][:2]] == [(32, 3, 7, 7), (32, 32, 3, 3)]
    assert w["con"][-1][0].shape == (256, 256, 3, 3) and w["fc"][0].shape == (256, 128)
    assert sum(f.size + b.size for f, b in w["con"]) + sum(g.size * 2 for g, _ in w["affine"]) + w["fc"][0].size > 5.5e6


def test_descriptor_matches_dlib(face_chips: np.ndarray) -> None:
    net = DlibResNet().load_dlib().eval()
    x = DlibResNet.normalize(torch.from_numpy(face_chips).permute(0, 3, 1, 2).float())
    with torch.no_grad():
        ours = net.descriptor(x).numpy()
    theirs = np.stack([np.asarray(dlib_models.face_recognizer().compute_face_descriptor(c)) for c in face_chips])
    assert len(face_chips) == 2
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.linalg.norm(ours[0] - ours[1]) > 0.6  # two people: dlib's different-person distance


def test_expression_backbone_reads_48px_chips() -> None:
    model = build_model({"backbone": "dlib_resnet", "backbone_kw": {"size": 112}, "dim": 64, "n_classes": 8}).eval()
    with torch.no_grad():
        z, logits = model({"face": torch.zeros(2, 1, 48, 48)})
    assert z.shape == (2, 64) and logits.shape == (2, 8)


def test_identity_encoder_equals_dlibs_descriptor() -> None:
    """The build's identity vectors come from the PyTorch network; they must be dlib's own, so
    catalogs built before the switch (model "dlib-resnet-v1") stay comparable."""
    from ferindex.faces.detect import HogDetector
    from ferindex.faces.identity import IdentityEncoder, dlib_shapes

    for img in _portraits():
        dets = HogDetector().detect(img)
        assert dets, "no face in a sample portrait"
        theirs = np.asarray(dlib_models.face_recognizer().compute_face_descriptor(img, dlib_shapes(dets)), np.float32)
        ours = IdentityEncoder().encode(img, dets)
        assert ours.shape == theirs.reshape(len(dets), 128).shape and ours.dtype == np.float32
        assert np.abs(ours - theirs.reshape(len(dets), 128)).max() < 1e-4
