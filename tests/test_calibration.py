"""Prior correction of labels (analysis/calibration.py): on a problem where the frequent class
swallows a rare one, the chosen tau must name the rare class again without costing more than the
allowed accuracy, and the KNN classifier and model must apply the weights they are given."""
from __future__ import annotations

import numpy as np
import pytest

from ferindex.analysis.calibration import PriorCalibrator, balanced_accuracy, reweight
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
