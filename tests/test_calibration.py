"""Prior correction of labels (analysis/calibration.py): on a problem where the frequent class
swallows a rare one, the chosen tau must name the rare class again without costing more than the
allowed accuracy, and the KNN classifier and model must apply the weights they are given."""
from __future__ import annotations

import numpy as np
import pytest

from ferindex.analysis.calibration import BlendCalibrator, PriorCalibrator, balanced_accuracy, blend, reweight, unweight
from ferindex.analysis.knn import KNNClassifier


def _skewed(rng, n_major=900, n_minor=100):
    """Posteriors of a classifier that learned a 9:1 prior: the minority's evidence is real but
    its scores sit below the majority's."""
    y = np.r_[np.zeros(n_major, int), np.ones(n_minor, int)]
    evidence = np.where(y == 1, rng.normal(0.4, 0.1, len(y)), rng.normal(0.15, 0.1, len(y)))
    p1 = np.clip(evidence, 0.01, 0.99)
    return np.c_[1 - p1, p1].astype(np.float32), y


def test_calibrator_names_the_rare_class_within_the_accuracy_budget() -> None:
    proba, y = _skewed(np.random.default_rng(0))
    prior = np.array([0.9, 0.1])
    assert balanced_accuracy(y, proba.argmax(1), 2) < 0.6  # raw: the minority is rarely named
    cal = PriorCalibrator(max_acc_drop=0.01).fit(proba, y, prior)
    acc0, bacc0 = cal.scores_[0.0]
    acc, bacc = cal.scores_[cal.tau_]
    assert cal.tau_ > 0 and bacc > bacc0 + 0.2 and acc >= acc0 - 0.01
    assert balanced_accuracy(y, cal.transform(proba).argmax(1), 2) == pytest.approx(bacc)
    assert cal.get_params()["max_acc_drop"] == 0.01  # scikit-learn estimator
    np.testing.assert_allclose(cal.transform(proba).sum(1), 1, atol=1e-6)


def test_knn_applies_class_weights_to_its_votes() -> None:
    X = np.array([[0.0], [0.1], [0.2], [1.0]], np.float32)
    y = np.array([0, 0, 0, 1])
    q = np.array([[0.6]], np.float32)
    raw = KNNClassifier(k=4).fit(X, y).predict_proba(q)
    weighted = KNNClassifier(k=4, class_weight=np.array([0.2, 1.0])).fit(X, y).predict_proba(q)
    np.testing.assert_allclose(weighted, reweight(raw, np.array([0.2, 1.0])), atol=1e-6)
    assert raw.argmax() == 0 and weighted.argmax() == 1


def test_blend_calibrator_mixes_in_the_softmax_where_coarse_votes_cannot_be_corrected() -> None:
    """Votes of 11 neighbours that put every minority face below the majority (at most 4 of 11
    votes) cannot be corrected by a class weight without calling many majority faces minority
    too; a smooth softmax with the same evidence can. The calibrator must find that blend, keep
    the accuracy budget, and prefer no blend when the softmax adds nothing."""
    rng = np.random.default_rng(1)
    proba, y = _skewed(rng)
    votes = np.round(proba * 11).clip(0, 11)
    votes[y == 1, 1] = rng.integers(2, 5, (y == 1).sum())  # minority: 2-4 of 11 votes
    votes[y == 0, 1] = rng.integers(0, 5, (y == 0).sum())  # majority: 0-4 of 11 votes
    votes[:, 0] = 11 - votes[:, 1]
    votes = (votes / 11).astype(np.float32)
    prior = np.array([0.9, 0.1])
    votes_only = PriorCalibrator().fit(votes, y, prior, acc_floor=np.mean(votes.argmax(1) == y) - 0.01)
    cal = BlendCalibrator().fit(votes, proba, y, prior)
    acc, bacc = cal.scores_[cal.softmax_weight_][cal.tau_]
    assert 0 < cal.softmax_weight_ <= 0.5
    assert bacc > votes_only.scores_[votes_only.tau_][1] + 0.1 and acc >= np.mean(votes.argmax(1) == y) - 0.01
    pred = reweight(blend(votes, proba, cal.softmax_weight_), cal.class_weight_).argmax(1)
    assert balanced_accuracy(y, pred, 2) == pytest.approx(bacc)
    assert BlendCalibrator().fit(votes, votes, y, prior).softmax_weight_ == 0.0  # nothing to gain: no blend


def test_blend_keeps_votes_where_the_softmax_is_unknown_and_unweight_inverts_reweight() -> None:
    votes = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    softmax = np.array([[0.0, 1.0], [np.nan, np.nan]], np.float32)
    np.testing.assert_allclose(blend(votes, softmax, 0.25), [[0.75, 0.25], [1.0, 0.0]])
    assert blend(votes, None, 0.0) is votes
    with pytest.raises(ValueError, match="softmax"):
        blend(votes, None, 0.5)
    p = np.array([[0.7, 0.3], [0.2, 0.8]], np.float32)
    np.testing.assert_allclose(unweight(reweight(p, np.array([0.25, 1.0])), np.array([0.25, 1.0])), p, atol=1e-6)


def test_knn_blends_the_softmax_it_is_given_before_the_class_weights() -> None:
    X = np.array([[0.0], [0.1], [0.2], [1.0]], np.float32)
    y = np.array([0, 0, 0, 1])
    q = np.array([[0.6]], np.float32)
    softmax = np.array([[0.1, 0.9]], np.float32)
    knn = KNNClassifier(k=4, softmax_weight=0.5, class_weight=np.array([0.5, 1.0])).fit(X, y)
    raw = KNNClassifier(k=4).fit(X, y).predict_proba(q)
    np.testing.assert_allclose(knn.predict_proba(q, softmax), reweight(0.5 * raw + 0.5 * softmax, np.array([0.5, 1.0])), atol=1e-6)
    with pytest.raises(ValueError, match="softmax"):
        knn.predict_proba(q)


class _CardModel:
    """What the album's label writers read of a model: its id, classes and card calibration."""

    model_id, classes = "m", ["a", "b", "c"]

    def __init__(self, softmax_class_weight: list[float]) -> None:
        self.card = {"calibration": {"softmax": {"class_weight": softmax_class_weight}}}

    def class_weight(self, kind: str) -> np.ndarray | None:
        cal = self.card["calibration"].get(kind)
        return None if cal is None else np.asarray(cal["class_weight"], np.float64)


def test_knn_labels_blend_the_stored_raw_softmax_after_a_recalibration(tmp_path) -> None:
    """The KNN vote blends in the network's raw softmax as the build stored it, not the shown
    posterior with the current card's correction undone (wrong when it was made under an older
    card); faces stored before the raw softmax was kept fall back to that undoing."""
    from ferindex.analysis.album import label_faces, predictions
    from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord

    old, new = _CardModel([1.0, 1.0, 0.1]), _CardModel([0.1, 1.0, 1.0])
    raw = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]], np.float32)
    X = np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]], np.float32)
    stored = predictions(old, raw)
    faces = [FaceRecord(box=(10 * i, 0, 10 * i + 9, 9), score=1.0, landmarks=np.zeros((68, 2)),
                        chip=np.zeros((48, 48), np.uint8), vectors={("expression", "m"): X[i]},
                        probs=stored.probs[i], label=stored.labels[i], probs_model="m",
                        probs_raw=raw[i], probs_labeller=stored.labeller) for i in range(3)]
    faces[2].probs, faces[2].probs_raw = reweight(raw[2:], new.class_weight("softmax"))[0], None
    knn = KNNClassifier(k=2, softmax_weight=0.5).fit(
        np.array([[0.1, 0.0], [0.9, 0.0], [0.5, 0.5]], np.float32), ["a", "b", "c"], classes=new.classes)
    with Catalog.open(tmp_path / "idx", create=True) as cat:
        with cat.transaction():
            cat.add_photo(PhotoRecord("a.jpg", 1, 1, "h", "ok", faces=faces))
        ids = cat.load_vectors("expression", "m")[0].tolist()
        assert label_faces(cat, new, ids, knn=knn) == 3
        got = np.array([d["knn_probs"] for d in map(cat.face_details(ids).get, ids)])
    np.testing.assert_allclose(got, knn.predict_proba(X, raw), atol=1e-6)
    undone = unweight(stored.probs, new.class_weight("softmax"))  # what was blended before
    assert not np.allclose(knn.predict_proba(X[:2], undone[:2]), got[:2], atol=1e-3)
