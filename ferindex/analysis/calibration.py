"""Prior correction of class posteriors: the labels a user sees, not skewed to "neutral".

FER+ Training is 36 % neutral and 0.6 % contempt, so a KNN vote over the Training bank and a
softmax fitted to those frequencies both lean to the frequent classes: on unseen people the
shipped model called 0 of 30 posed angry faces angry. The correction multiplies each class's
posterior by prior_c ** -tau (tau = 0: raw; tau = 1: divided by the prior, i.e. as if the
classes were equally frequent) and renormalises; tau is chosen on held-out labelled faces (FER+
PublicTest, never the test split): the best balanced accuracy (mean per-class recall) among the
taus that cost at most `max_acc_drop` of accuracy, so rare classes are named far more often
while the frequent ones are not sacrificed. The raw posterior stays available (tau = 0 / no
weights).

The KNN label is also blended with the model's own softmax before the correction
(`BlendCalibrator`): eleven neighbours give coarse vote shares (multiples of about 1/11) that
a class weight can only shift in steps, while the softmax ranks the rare classes smoothly; on
FER+ PublicTest the blend names rare classes far more often at the same accuracy
(docs/MODEL.md). The neighbours keep at least half the say (weights up to 0.5), so faces the
user labelled still steer the labels of faces like them.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

TAUS = tuple(np.round(np.arange(-0.6, 1.01, 0.05), 2))  # < 0 leans further to the prior (a model trained on
# class-balanced batches under-predicts frequent classes)


def reweight(proba: np.ndarray, class_weight: np.ndarray | None) -> np.ndarray:
    """proba * class_weight, rows renormalised (unchanged when class_weight is None)."""
    if class_weight is None:
        return proba
    p = np.asarray(proba, np.float64) * np.asarray(class_weight, np.float64)
    s = p.sum(axis=1, keepdims=True)
    return (p / np.where(s > 0, s, 1.0)).astype(np.float32)


def unweight(proba: np.ndarray, class_weight: np.ndarray | None) -> np.ndarray:
    """The raw posterior back from a corrected one (the inverse of `reweight`), e.g. the
    network's softmax from the corrected posterior an album stores."""
    return proba if class_weight is None else reweight(proba, 1.0 / np.asarray(class_weight, np.float64))


def blend(votes: np.ndarray, softmax: np.ndarray | None, softmax_weight: float) -> np.ndarray:
    """(1 - w) * votes + w * softmax, row by row; a row of `softmax` that is NaN (a face whose
    posterior is unknown) keeps its votes alone."""
    if not softmax_weight:
        return votes
    if softmax is None:
        raise ValueError(f"softmax_weight={softmax_weight}: the model's raw softmax of the same faces is needed")
    softmax = np.asarray(softmax, np.float64)
    known = ~np.isnan(softmax).any(axis=1, keepdims=True)
    mixed = (1.0 - softmax_weight) * votes + softmax_weight * np.nan_to_num(softmax)
    return np.where(known, mixed, votes).astype(np.float32)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean per-class recall over the classes present in `y`."""
    recalls = [np.mean(pred[y == c] == c) for c in range(n_classes) if np.any(y == c)]
    return float(np.mean(recalls))


class PriorCalibrator(BaseEstimator):
    """Chooses tau for class weights prior ** -tau on held-out (proba, y) pairs.

    fit(proba, y, prior) -> self; fitted: tau_, class_weight_, scores_ ({tau: (acc, bacc)})."""

    def __init__(self, taus: tuple[float, ...] = TAUS, max_acc_drop: float = 0.01) -> None:
        self.taus = taus
        self.max_acc_drop = max_acc_drop

    def fit(self, proba: np.ndarray, y: np.ndarray, prior: np.ndarray,
            acc_floor: float | None = None) -> "PriorCalibrator":
        """`acc_floor`: the accuracy a tau must keep (default: tau 0's accuracy - max_acc_drop);
        when no tau reaches it, the most accurate tau is taken."""
        prior = np.asarray(prior, np.float64) / np.sum(prior)
        n = proba.shape[1]
        self.scores_ = {}
        for tau in self.taus:
            pred = reweight(proba, prior ** -tau).argmax(1)
            self.scores_[float(tau)] = (float(np.mean(pred == y)), balanced_accuracy(y, pred, n))
        if acc_floor is None:
            acc_floor = self.scores_[0.0][0] - self.max_acc_drop if 0.0 in self.scores_ else 0.0
        allowed = ([t for t, (acc, _) in self.scores_.items() if acc >= acc_floor - 1e-9]
                   or [max(self.scores_, key=lambda t: self.scores_[t][0])])
        self.tau_ = max(allowed, key=lambda t: (self.scores_[t][1], -abs(t)))
        self.class_weight_ = prior ** -self.tau_
        self.class_weight_ /= self.class_weight_.max()
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        return reweight(proba, self.class_weight_)


class BlendCalibrator(BaseEstimator):
    """Chooses the softmax weight w of `blend` and tau for the KNN label on held-out faces:
    the best balanced accuracy whose accuracy is at most `max_acc_drop` below the raw votes'
    (ties: the smaller w, so the neighbours keep their say).

    fit(votes, softmax, y, prior) -> self; fitted: softmax_weight_, tau_, class_weight_,
    scores_ ({w: {tau: (acc, bacc)}})."""

    def __init__(self, softmax_weights: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
                 taus: tuple[float, ...] = TAUS, max_acc_drop: float = 0.01) -> None:
        self.softmax_weights = softmax_weights
        self.taus = taus
        self.max_acc_drop = max_acc_drop

    def fit(self, votes: np.ndarray, softmax: np.ndarray, y: np.ndarray, prior: np.ndarray) -> "BlendCalibrator":
        floor = float(np.mean(np.argmax(votes, 1) == y)) - self.max_acc_drop
        fits = {float(w): PriorCalibrator(self.taus, self.max_acc_drop).fit(blend(votes, softmax, w), y, prior, floor)
                for w in self.softmax_weights}
        self.scores_ = {w: c.scores_ for w, c in fits.items()}

        def rank(w: float) -> tuple[bool, float, float]:
            acc, bacc = fits[w].scores_[fits[w].tau_]
            return acc >= floor - 1e-9, bacc, -w

        self.softmax_weight_ = max(fits, key=rank)
        self.tau_, self.class_weight_ = fits[self.softmax_weight_].tau_, fits[self.softmax_weight_].class_weight_
        return self
