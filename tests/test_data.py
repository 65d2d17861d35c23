"""Training data loaders: the FER+ protocol and honest splits."""
from __future__ import annotations

import numpy as np
import torch

from ferindex.data.ckplus import load_ckplus, subject_folds
from ferindex.data.fer import FERPLUS_CLASSES, load_fer
from ferindex.data.samplers import ClassBalancedBatchSampler


def test_fer_plus_test_split_drops_training_duplicates(data_dir) -> None:
    raw = np.load(data_dir / "fer2013" / "fer2013.npz")
    full = load_fer("test", "ferplus", dedup=False)
    dedup = load_fer("test", "ferplus")
    train_groups = set(raw["dup_group"][raw["usage"] == 0])
    assert not train_groups & set(raw["dup_group"][dedup.rows])
    assert 200 < len(full) - len(dedup) <= 288  # 288 PrivateTest rows duplicate a Training image
    # FER+ majority never unknown / not-a-face, soft targets are distributions over 8 emotions
    assert dedup.soft.shape == (len(dedup), 8) and np.allclose(dedup.soft.sum(1), 1)
    assert (dedup.labels == dedup.soft.argmax(1)).all() and dedup.classes == FERPLUS_CLASSES


def test_fer2013_original_labels(data_dir) -> None:
    train = load_fer("train", "fer2013")
    assert len(train) == 28709 - int((~np.load(data_dir / "fer2013" / "fer2013.npz")["has_pixels"][:28709]).sum())
    assert set(np.unique(train.labels)) == set(range(7))


def test_ckplus_subject_folds_never_share_a_subject(data_dir) -> None:
    ck = load_ckplus()
    assert len(ck) == 981 and len(np.unique(ck.groups)) == 118
    folds = subject_folds(ck.groups, 10)
    assert sum(len(f) for f in folds) == len(ck)
    subj = [set(ck.groups[f]) for f in folds]
    assert all(not (a & b) for i, a in enumerate(subj) for b in subj[i + 1:])


def test_class_balanced_sampler_gives_n_per_class() -> None:
    labels = np.repeat(np.arange(4), [100, 5, 50, 30])
    batch = next(iter(ClassBalancedBatchSampler(labels, n_per_class=8)))
    assert np.bincount(labels[batch], minlength=4).tolist() == [8, 8, 8, 8]


def test_random_erasing_blanks_one_rectangle_in_the_requested_share() -> None:
    """`erase` must blank a 2-20 % rectangle in about that share of faces and leave the rest alone."""
    from ferindex.data.inputs import _erase

    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    x = torch.ones(400, 1, 48, 48)
    out = _erase(x, r, 0.5)
    blank = (out == 0).float().mean((1, 2, 3))
    hit = blank > 0
    assert 0.4 < hit.float().mean() < 0.6
    assert blank[hit].min() >= 0.01 and blank[hit].max() <= 0.23
    rows, cols = (out[hit] == 0).squeeze(1).any(2), (out[hit] == 0).squeeze(1).any(1)
    assert torch.equal((out[hit] == 0).squeeze(1).sum((1, 2)), rows.sum(1) * cols.sum(1))  # a solid rectangle
    assert torch.equal(_erase(x, r, 0.0), x)


def test_tempered_sampler_keeps_every_class_in_every_batch() -> None:
    """temper 0.5: shares ~ sqrt(count), each class at least 2 (SGM needs its class means)."""
    y = np.repeat(np.arange(4), [900, 400, 100, 4])
    s = ClassBalancedBatchSampler(y, 16, temper=0.5)
    for batch in s:
        counts = np.bincount(y[batch], minlength=4)
        assert counts.sum() == 64 and counts.min() >= 2
        assert counts[0] > counts[1] > counts[2] > counts[3]
    assert np.array_equal(np.bincount(y[next(iter(ClassBalancedBatchSampler(y, 16)))], minlength=4), [16] * 4)


def test_partial_image_nose_starts_at_landmark_28() -> None:
    """Paper 000 eq 1: Nose = A[y_28 : y_33, ...] with 0-indexed points."""
    from ferindex.faces.chips import part_boxes, template_landmarks

    lm = template_landmarks(48).copy()
    lm[27, 1], lm[28, 1] = 10.0, 14.0
    assert part_boxes(lm)["nose"][1] == 14.0


def test_degrade_blurs_or_relights_about_the_requested_share() -> None:
    """`degrade` changes about that share of faces (blur or gamma), keeps the rest and the range."""
    from ferindex.data.inputs import _degrade

    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    x = (torch.rand(400, 1, 48, 48, generator=gen) - 0.5) * 3  # normalised pixels, some clipped
    out = _degrade(x.clamp(-2, 2), r, 0.6)
    changed = (out - x.clamp(-2, 2)).abs().amax((1, 2, 3)) > 1e-4
    assert 0.35 < changed.float().mean() < 0.75
    assert torch.isfinite(out).all() and out.min() >= -2.0 - 1e-5 and out.max() <= 2.0 + 1e-5
    assert torch.equal(_degrade(x, r, 0.0), x)


def test_jpeg_adds_block_artefacts_to_about_the_requested_share() -> None:
    """`jpeg` re-encodes about that share of faces (a smooth ramp comes back lossy), the other
    faces stay bit-identical, and p = 0 is a no-op."""
    from ferindex.data.inputs import _jpeg

    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    ramp = torch.linspace(-1.5, 1.5, 48)
    x = (ramp.view(1, 48) + ramp.view(48, 1)).div(2).expand(200, 1, 48, 48).contiguous()
    x = x + torch.rand(200, 1, 1, 1, generator=gen) * 0.3  # each face its own brightness
    out = _jpeg(x, r, 0.5)
    changed = (out - x).abs().amax((1, 2, 3)) > 1e-3
    assert 0.38 < changed.float().mean() < 0.62
    assert torch.equal(out[~changed], x[~changed])
    assert torch.isfinite(out).all()
    err = (out[changed] - x[changed]).abs().mean().item()
    assert 0.005 < err < 0.3  # visibly lossy, still the same face
    assert torch.equal(_jpeg(x, r, 0.0), x)
