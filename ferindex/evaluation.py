"""The evaluation protocol of DESIGN §6, as functions returning plain dicts, so `ferindex eval`,
scripts/evaluate.py, the model card and the regression tests compute the same numbers the same
way. Needs the research data (FERINDEX_DATA)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .analysis.calibration import blend, reweight
from .analysis.knn import KNNClassifier
from .analysis.metrics import (acc_at_k, confusion, kmeans_nmi_f1, knn_accuracy, map_at_r, recall_at_k,
                               save_confusion_png)
from .data.ckplus import load_ckplus, subject_folds
from .data.fer import load_fer
from .embed import ExpressionModel

K = 11  # SGM Fig. 5


def per_class(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class recall and their mean (balanced accuracy) of the argmax of `proba`:
    a model that never says "disgust" must show it, whatever its accuracy."""
    pred = proba.argmax(1)
    recall = {c: float(np.mean(pred[y == i] == i)) for i, c in enumerate(classes) if np.any(y == i)}
    return {"acc": float(np.mean(pred == y)), "recall": recall, "mean_recall": float(np.mean(list(recall.values())))}


def label_readings(model: ExpressionModel, z: np.ndarray, raw_softmax: np.ndarray) -> dict[str, np.ndarray]:
    """The four class posteriors of faces: KNN(K=11) votes over the reference bank and the
    softmax, each raw and as users are shown them (the votes blended with the softmax, each
    prior-corrected, as the card says)."""
    bank_z, bank_y = model.reference_bank()
    votes = KNNClassifier(k=K, metric=model.metric).fit(bank_z, bank_y, classes=np.arange(len(model.classes))).predict_proba(z)
    shown = reweight(blend(votes, raw_softmax, model.knn_softmax_weight()), model.class_weight("knn"))
    return {"knn_raw": votes, "knn": shown,
            "softmax_raw": raw_softmax, "softmax": reweight(raw_softmax, model.class_weight("softmax"))}


def fer_plus_test(model: ExpressionModel, full: bool = True, confusion_png: Path | None = None) -> dict:
    """FER+ PrivateTest (test rows identical to a Training image dropped): softmax and KNN(K=11)
    (against the shipped Training bank) accuracy and per-class recall, raw and prior-corrected;
    with `full`, the retrieval and clustering metrics too."""
    test = load_fer("test", "ferplus")
    z, p = model.embed_and_proba(test.images, calibrated=False)
    readings = label_readings(model, z, p)
    out = {"n": len(test)} | {f"{name}_acc": per_class(test.labels, q, model.classes)["acc"] for name, q in readings.items()}
    out["knn11_acc"], out["knn11_acc_raw"] = out.pop("knn_acc"), out.pop("knn_raw_acc")
    out["per_class"] = {name: per_class(test.labels, q, model.classes) for name, q in readings.items()}
    if full:
        from sklearn.metrics import normalized_mutual_info_score

        nmi, f1 = kmeans_nmi_f1(z, test.labels)
        # the classifier's own labelling as a clustering: what k-means on the embedding would
        # score if its clusters were exactly the softmax classes (NMI's link to accuracy)
        out["nmi_softmax_labels"] = float(normalized_mutual_info_score(test.labels, p.argmax(1)))
        out |= {"recall_at_k": recall_at_k(z, test.labels, metric=model.metric),
                "acc_at_k": acc_at_k(z, test.labels, metric=model.metric),
                "nmi": nmi, "f1": f1, "map_at_r": map_at_r(z, test.labels, metric=model.metric)}
        cm = confusion(test.labels, readings["knn"].argmax(1), len(model.classes))
        out["confusion_knn"] = cm.tolist()
        if confusion_png is not None:
            save_confusion_png(cm, model.classes, confusion_png)
    return out


def fer2013_test(model: ExpressionModel) -> dict:
    """Original 7-class FER2013 PrivateTest accuracy on the frozen embedding (the model's own
    classes are FER+'s): KNN(K=11) on the Training faces' original labels, and a linear probe
    (multinomial logistic regression fitted on those labels, the usual frozen-feature protocol).
    Reported on the full test split (as published numbers are) and with duplicates of Training
    images dropped."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = load_fer("train", "fer2013")
    ref = model.embed(train.images)
    test = load_fer("test", "fer2013", dedup=False)
    z = model.embed(test.images)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(ref, train.labels)
    probe_hit = probe.predict(z) == test.labels
    out = {}
    for name, keep in (("all", np.ones(len(test), bool)),
                       ("dedup", np.isin(test.rows, load_fer("test", "fer2013", dedup=True).rows))):
        out[f"knn11_acc_{name}"] = knn_accuracy(ref, train.labels, z[keep], test.labels[keep], k=K,
                                                metric=model.metric)
        out[f"probe_acc_{name}"] = float(probe_hit[keep].mean())
        out[f"n_{name}"] = int(keep.sum())
    return out


def ckplus_cross(model: ExpressionModel) -> dict:
    """CK+48 cross-dataset (when the model never saw CK+; `trained_on_ckplus` says whether it
    did, and then the scores are training-set scores): KNN against the model's bank, softmax, and
    k-means NMI of the CK+ embeddings (K = 7 CK+ classes)."""
    ck = load_ckplus(classes=model.classes)
    z, p = model.embed_and_proba(ck.images)
    bank_z, bank_y = model.reference_bank()
    nmi, f1 = kmeans_nmi_f1(z, ck.labels)
    return {"n": len(ck), "knn11_acc": knn_accuracy(bank_z, bank_y, z, ck.labels, k=K, metric=model.metric),
            "softmax_acc": float((p.argmax(1) == ck.labels).mean()), "nmi": nmi, "f1": f1,
            "trained_on_ckplus": saw_ckplus(model.card.get("training"))}


def saw_ckplus(training: dict | None) -> bool:
    """Whether CK+48 is named anywhere in a card's training lineage: its own data, an ensemble's
    members or the model it was fine-tuned from (`init`), since any of them put CK+ in the weights."""
    if not training:
        return False
    earlier = [*training.get("members", []), training.get("init")]
    return "CK+48" in training.get("data", "") or any(saw_ckplus(t) for t in earlier)


def ckplus_subject_cv(model: ExpressionModel, n_folds: int = 10, seed: int = 0) -> dict:
    """10-fold subject-independent CV on CK+48 with the frozen embedding: each fold is classified
    by KNN(K=11) against the other folds' faces, and no subject is in two folds. Subject-independent
    only for the KNN: an embedding trained on CK+ saw every fold's subjects (`trained_on_ckplus`),
    and then the score is not a test (scripts/ckplus_cv.py retrains per fold for that)."""
    ck = load_ckplus(classes=model.classes)
    z = model.embed(ck.images)
    accs = []
    for fold in subject_folds(ck.groups, n_folds, seed):
        rest = np.setdiff1d(np.arange(len(ck)), fold)
        accs.append(knn_accuracy(z[rest], ck.labels[rest], z[fold], ck.labels[fold], k=K, metric=model.metric))
    return {"folds": n_folds, "knn11_acc_mean": float(np.mean(accs)), "knn11_acc_std": float(np.std(accs)),
            "trained_on_ckplus": saw_ckplus(model.card.get("training"))}


def evaluate(model: ExpressionModel, quick: bool = False, out: Path | None = None) -> dict:
    """Every protocol above for one model (`quick` skips the FER2013 7-class run, which embeds
    all Training faces again); the KNN confusion matrix is saved as a PNG under `out`."""
    import time

    t0 = time.time()
    png = Path(out) / f"confusion_{model.card.get('name', 'model')}.png" if out else None
    res = {"model": model.model_id, "fer_plus_private_test": fer_plus_test(model, confusion_png=png),
           "ckplus_cross_dataset": ckplus_cross(model), "ckplus_10fold_subject_cv": ckplus_subject_cv(model)}
    if not quick:
        res["fer2013_private_test"] = fer2013_test(model)
    res["eval_s"] = round(time.time() - t0, 1)
    return res


def card_metrics(res: dict) -> dict:
    """The part of an evaluation a model card keeps (what the regression tests hold it to)."""
    metrics = {k: v for k, v in res.items() if k not in ("model", "eval_s")}
    metrics["fer_plus_private_test"] = {k: v for k, v in metrics["fer_plus_private_test"].items() if k != "confusion_knn"}
    return metrics


def report_lines(res: dict, classes: list[str]) -> list[str]:
    """The evaluation as an aligned text table for people."""
    def pct(x: float) -> str:
        return f"{100 * x:.1f}"

    f = res["fer_plus_private_test"]
    rows = [("FER+ PrivateTest (dedup) n", str(f["n"]))]
    for name, title in (("knn_raw", "KNN(K=11), raw votes"), ("knn", "KNN(K=11) + softmax blend, prior-corrected"),
                        ("softmax_raw", "softmax, raw"), ("softmax", "softmax, prior-corrected")):
        pc = f["per_class"][name]
        rows.append((f"  {title}: accuracy / mean class recall %", f"{pct(pc['acc'])} / {pct(pc['mean_recall'])}"))
        rows.append(("    recall per class %", " ".join(f"{c[:5]} {pct(r)}" for c, r in pc["recall"].items())))
    rows += [("  NMI (k-means) %", pct(f["nmi"])),
            ("  NMI of the softmax labels % (reference)", pct(f["nmi_softmax_labels"])),
            ("  F1 (k-means) %", pct(f["f1"])), ("  MAP@R %", pct(f["map_at_r"]))]
    rows += [(f"  Recall@{k} / Acc@{k} %", f"{pct(f['recall_at_k'][k])} / {pct(f['acc_at_k'][k])}") for k in f["recall_at_k"]]
    if "fer2013_private_test" in res:
        g = res["fer2013_private_test"]
        rows.append(("FER2013 7-class PrivateTest KNN %", f"{pct(g['knn11_acc_all'])} (all {g['n_all']}), "
                     f"{pct(g['knn11_acc_dedup'])} (dedup {g['n_dedup']})"))
        rows.append(("FER2013 7-class PrivateTest linear probe %", f"{pct(g['probe_acc_all'])} (all), "
                     f"{pct(g['probe_acc_dedup'])} (dedup)"))
    c, cv = res["ckplus_cross_dataset"], res["ckplus_10fold_subject_cv"]
    seen = " (CK+ in training: not cross-dataset)" if c.get("trained_on_ckplus") else " cross-dataset"
    frozen = " (embedding trained on every fold: not a test)" if cv.get("trained_on_ckplus") else ""
    rows += [(f"CK+48{seen} KNN / softmax %", f"{pct(c['knn11_acc'])} / {pct(c['softmax_acc'])}"),
             (f"CK+48{seen} NMI %", pct(c["nmi"])),
             (f"CK+48 10-fold subject CV, frozen KNN %{frozen}", f"{pct(cv['knn11_acc_mean'])} ± {pct(cv['knn11_acc_std'])}")]
    width = max(len(r[0]) for r in rows)
    lines = [f"model {res['model']}  ({res['eval_s']} s)"] + [f"{n:<{width}}  {v}" for n, v in rows]
    lines.append("confusion (rows: true class, columns: KNN prediction): " + " ".join(classes))
    lines += [f"  {name:<10} " + " ".join(f"{v:5d}" for v in row) for name, row in zip(classes, f["confusion_knn"])]
    return lines
