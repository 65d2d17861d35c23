"""Analysis components: metrics on hand-checkable examples, KNN vs scikit-learn, sub-class
discovery, summaries, people clustering (real dlib_johns chips when the data is present)."""
from __future__ import annotations

import numpy as np
import pytest

from ferindex.analysis import metrics
from ferindex.analysis.knn import KNNClassifier, combine_banks, self_neighbours
from ferindex.analysis.people import PeopleClustering
from ferindex.analysis.projection import Projection
from ferindex.analysis.subclasses import SubclassDiscovery
from ferindex.analysis.summary import AlbumSummary

# Five points on a line: a a b b b at 0, 1, 3, 10, 11 (neighbour lists worked out by hand).
LINE = np.array([[0.0], [1.0], [3.0], [10.0], [11.0]], dtype=np.float32)
LINE_Y = np.array([0, 0, 1, 1, 1])


def test_recall_and_acc_at_k_by_hand():
    # Nearest others: 0->1,3,.. 1->0,3 3->1,0,10 10->11,3 11->10,3
    assert metrics.recall_at_k(LINE, LINE_Y, ks=(1, 2, 4)) == pytest.approx({1: 0.8, 2: 0.8, 4: 1.0})
    # Acc@2: 0:[a,b]=.5 1:[a,b]=.5 3:[a,a]=0 10:[b,b]=1 11:[b,b]=1 -> 3/5
    assert metrics.acc_at_k(LINE, LINE_Y, ks=(1, 2)) == pytest.approx({1: 0.8, 2: 0.6})


def test_group_excluded_retrieval_by_hand():
    groups = [0, 0, 1, 2, 2]  # e.g. subjects: 0 and 1 are one person, 10 and 11 another
    # Nearest other-subject item: 0->3(b) 1->3(b) 3->1(a) 10->3(b) 11->3(b): two hits of five
    assert metrics.recall_at_k(LINE, LINE_Y, ks=(1,), groups=groups) == pytest.approx({1: 0.4})
    assert metrics.same_group_share(LINE, groups, k=1) == pytest.approx(0.8)


def test_map_at_r_by_hand():
    assert metrics.map_at_r(LINE, LINE_Y) == pytest.approx(4 / 5)  # only the point at 3 scores 0
    # 0(a) 1(b) 2(a) 10(a): query 0 -> [b, a] with R=2 -> (1/2)/2; 2 -> [b, a] -> 1/4;
    # 10 -> [a(2), b] -> (1/1)/2; the lone b is skipped.
    x = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float32)
    assert metrics.map_at_r(x, [0, 1, 0, 0]) == pytest.approx((0.25 + 0.25 + 0.5) / 3)


def test_self_excluded_even_with_duplicates():
    x = np.zeros((4, 3), dtype=np.float32)  # all identical: self may come back in any position
    _, idx = self_neighbours(x, 3)
    assert all(i not in row for i, row in enumerate(idx))
    assert metrics.recall_at_k(x, [0, 0, 1, 1], ks=(1, 3))[3] == 1.0


def test_pairwise_f1_and_kmeans_on_separated_blobs():
    # same-cluster pairs: 1 + 3, same-class pairs: 3 + 1, shared: 2 -> P = R = F1 = 0.5
    assert metrics.pairwise_f1([0, 0, 0, 1, 1], [0, 0, 1, 1, 1]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 8)) * 0.1 + np.eye(8)[y] * 5
    nmi, f1 = metrics.kmeans_nmi_f1(x, y)
    assert nmi == pytest.approx(1.0) and f1 == pytest.approx(1.0)
    nmi_rand, _ = metrics.kmeans_nmi_f1(rng.normal(size=(90, 8)), y)
    assert nmi_rand < 0.2


def test_confusion_and_png(tmp_path):
    cm = metrics.confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    with pytest.raises(ValueError):
        metrics.confusion([0, 3], [0, 1], 3)
    out = metrics.save_confusion_png(cm, ["a", "b", "c"], tmp_path / "cm.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_knn_matches_sklearn_distance_weighted():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, 16)).astype(np.float32), rng.integers(0, 4, 300)
    q = rng.normal(size=(50, 16)).astype(np.float32)
    ours = KNNClassifier(k=11).fit(X, y)
    ref = KNeighborsClassifier(n_neighbors=11, weights="distance").fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(q), ref.predict_proba(q), atol=1e-5)
    assert (ours.predict(q) == ref.predict(q)).all()
    assert metrics.knn_accuracy(X, y, q, ref.predict(q)) == 1.0


def test_knn_classes_duplicates_and_user_weight():
    X = np.array([[0.0], [1.0], [2.0], [5.0]], dtype=np.float32)
    clf = KNNClassifier(k=3).fit(X, ["happy", "sad", "sad", "happy"], classes=["sad", "happy", "fear"])
    proba = clf.predict_proba(np.array([[1.0]], dtype=np.float32))
    assert proba.shape == (1, 3) and proba[0].tolist() == [1.0, 0.0, 0.0]  # exact match wins
    # Query 1.5: bank "sad" at 1 and 2 (votes 2 + 2), user "happy" at 1.9 (vote 2.5): weighting
    # the user label 10x flips the answer.
    Xc, yc, w = combine_banks(X[1:3], ["sad", "sad"], np.array([[1.9]]), ["happy"], user_weight=10)
    q = np.array([[1.5]], dtype=np.float32)
    assert KNNClassifier(k=3).fit(Xc, yc).predict(q)[0] == "sad"
    assert KNNClassifier(k=3).fit(Xc, yc, sample_weight=w).predict(q)[0] == "happy"
    with pytest.raises(ValueError, match="not in classes"):
        KNNClassifier().fit(X, ["x", "y", "z", "w"], classes=["x"])


# -- sub-classes, summaries, contact sheets ----------------------------------------------------

def _planted(seed: int = 0):
    """Class "a" = 2 sub-blobs, class "b" = 3 sub-blobs (60 each), in 8-d, well apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, 8)) * 4
    sub = np.repeat(np.arange(5), 60)
    X = centres[sub] + rng.normal(size=(300, 8)) * 0.5
    y = np.where(sub < 2, "a", "b")
    return X, y, sub


def test_subclass_discovery_recovers_planted_subclusters():
    from sklearn.metrics import normalized_mutual_info_score

    X, y, sub = _planted()
    sd = SubclassDiscovery(max_level=2, n_components="bic", min_size=20).fit(X, y)
    assert normalized_mutual_info_score(sub, sd.labels_) > 0.95
    assert {n.id for n in sd.tree_.values() if n.level == 1} >= {"a/0", "a/1", "b/0", "b/1", "b/2"}
    assert sum(leaf.size for leaf in sd.leaves()) == len(X)
    root = sd.tree_["a"]
    assert root.size == 120 and y[root.medoid] == "a" and root.children == ["a/0", "a/1"]
    # Fixed counts split every node big enough, down to level 2: ids like "b/0/1".
    fixed = SubclassDiscovery(max_level=2, n_components=2, min_size=10).fit(X, y)
    assert "b/0/1" in fixed.tree_ and all(n.level <= 2 for n in fixed.tree_.values())


def test_recovery_nmi_separates_merged_classes():
    from ferindex.analysis.subclasses import recovery_nmi

    rng = np.random.default_rng(2)
    y = np.repeat(["surprise", "fear", "happiness"], 80)
    X = rng.normal(size=(240, 16)) + np.where(y == "fear", 3.0, 0.0)[:, None] \
        + np.where(y == "happiness", 20.0, 0.0)[:, None]
    nmi, rows = recovery_nmi(X, y, ("surprise", "fear"))
    assert len(rows) == 160 and nmi > 0.8
    shuffled, _ = recovery_nmi(rng.normal(size=(240, 16)), y, ("surprise", "fear"))
    assert shuffled < 0.1


def test_medoid_topk_and_album_summary_covers_groups():
    from ferindex.analysis.summary import allocate, medoid, top_k_near_medoid

    X = np.array([[0.0, 0], [1, 0], [0, 1], [10, 10]])
    assert medoid(X) == 1  # mean (2.75, 2.75): (1,0) and (0,1) tie, the first wins
    assert top_k_near_medoid(X, 3).tolist() == [1, 0, 2]
    assert allocate([100, 10, 1], 12).tolist() == [10, 1, 1]
    assert allocate([5, 3, 2], 2).tolist() == [1, 1, 0]
    assert allocate([2, 1], 10).tolist() == [2, 1]
    Xp, y, sub = _planted(1)
    s = AlbumSummary(n=12).fit(Xp, sub)
    assert len(s.selected_) == 12 and len(set(s.selected_.tolist())) == 12
    assert set(sub[s.selected_].tolist()) == set(range(5))  # every group represented
    assert (sub[s.selected_] == s.groups_).all()


def test_contact_sheet_png(tmp_path):
    from PIL import Image

    from ferindex.analysis.contact_sheet import contact_sheet

    gray = np.full((48, 48), 200, np.uint8)
    rgb = np.zeros((150, 150, 3), np.uint8)
    rgb[..., 0] = 255
    img = contact_sheet([gray, rgb, gray], ["a", "b", "c"], cols=2, path=tmp_path / "s.png", cell=64)
    back = Image.open(tmp_path / "s.png")
    assert back.size == img.size == (2 * 66 + 2, 2 * (64 + 14 + 2) + 2)
    assert back.getpixel((66 + 2 + 30, 2 + 30)) == (255, 0, 0)  # second chip, scaled, in place
    with pytest.raises(ValueError):
        contact_sheet([np.zeros((4, 4), np.float32)])


def test_projection_shapes_and_cache_key():
    from ferindex.analysis.projection import cache_key

    X, _, sub = _planted()
    emb = Projection("tsne", random_state=0).fit_transform(X[::3])
    assert emb.shape == (100, 2) and np.isfinite(emb).all()
    k1 = cache_key("m1", [1, 2, 3], "tsne", perplexity=30)
    assert k1 == cache_key("m1", [1, 2, 3], "tsne", perplexity=30)
    assert k1 != cache_key("m1", [1, 2, 4], "tsne", perplexity=30)
    assert k1 != cache_key("m2", [1, 2, 3], "tsne", perplexity=30)


# -- people ---------------------------------------------------------------------------------

def test_people_clustering_synthetic_noise_and_merge():
    from ferindex.analysis.people import pairwise_precision_recall

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)  # people ~1.4 apart, like dlib's
    who = np.repeat(np.arange(3), [12, 8, 5])
    X = centres[who] + rng.normal(size=(25, 128)) * 0.02
    stranger = rng.normal(size=(1, 128))
    pc = PeopleClustering(min_cluster_size=3).fit(np.vstack([X, 3 * stranger]))
    assert pc.labels_[-1] == -1  # a lone stranger stays noise
    assert pairwise_precision_recall(who, pc.labels_[:-1]) == (1.0, 1.0)
    assert np.bincount(pc.labels_[:-1]).tolist() == [12, 8, 5]  # numbered by size
    assert pc.centers_.shape == (3, 128)
    assert pairwise_precision_recall([0, 0, 1], [0, -1, -1]) == (1.0, 0.0)


def test_bestshot_ear_bursts_and_pick():
    from datetime import datetime, timedelta

    from ferindex.analysis.bestshot import Shot, best_shots, eye_aspect_ratio, parse_time

    lm = np.zeros((68, 2))
    for eye, x0 in ((slice(36, 42), 0.0), (slice(42, 48), 10.0)):
        # p1..p6 around an eye 4 wide and 1.2 tall: EAR = (1.2 + 1.2) / (2 * 4) = 0.3
        lm[eye] = [[x0, 0], [x0 + 1, -0.6], [x0 + 3, -0.6], [x0 + 4, 0], [x0 + 3, 0.6], [x0 + 1, 0.6]]
    assert eye_aspect_ratio(lm) == pytest.approx(0.3)
    assert parse_time("2024:05:01 12:00:03") == datetime(2024, 5, 1, 12, 0, 3)
    assert parse_time("garbage") is None
    t0 = datetime(2024, 5, 1, 12)
    shots = [
        Shot(1, t0, frozenset({7}), [(0.9, 0.1), (0.8, 0.3)]),  # one smiles with eyes closed
        Shot(2, t0 + timedelta(seconds=2), frozenset({7}), [(0.9, 0.3), (0.7, 0.3)]),  # best
        Shot(3, t0 + timedelta(seconds=3), frozenset({7}), [(0.2, 0.3), (0.9, 0.3)]),
        Shot(4, t0 + timedelta(seconds=4), frozenset({9}), [(0.9, 0.3)]),  # someone else
        Shot(5, None, frozenset(), [(0.9, 0.3)]),
    ]
    assert best_shots(shots) == [([0, 1, 2], 1)]


def test_people_ari_floor_on_dlib_johns():
    """Measured ARI 1.000 (scripts/eval_people.py); floor a few points below."""
    from pathlib import Path

    from PIL import Image
    from sklearn.metrics import adjusted_rand_score

    from ferindex.analysis.people import chip_descriptors
    from ferindex.config import data_dir

    root = data_dir()
    if root is None or not (root / "photos" / "dlib_johns").is_dir():
        pytest.skip("photos/dlib_johns not found: set FERINDEX_DATA to the research data folder")
    pytest.importorskip("ferindex.faces.identity")
    files = sorted(p for p in Path(root, "photos", "dlib_johns").glob("*/*.jpg"))
    X = chip_descriptors([np.asarray(Image.open(p).convert("RGB")) for p in files])
    y = [p.parent.name for p in files]
    labels = PeopleClustering(min_cluster_size=3).fit(X).labels_
    assert adjusted_rand_score(y, labels) >= 0.95


# -- CLI on a synthetic index ----------------------------------------------------------------

def _synthetic_index(tmp_path):
    from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord

    rng = np.random.default_rng(0)
    who = np.repeat(np.arange(3), 8)
    ident = np.eye(128)[who] + rng.normal(size=(24, 128)) * 0.01
    labels = np.where(np.arange(24) % 2, "happiness", "neutral")
    expr = np.where(labels == "happiness", 3.0, 0.0)[:, None] + rng.normal(size=(24, 8))
    with Catalog.open(tmp_path, create=True) as cat:
        with cat.transaction():
            for i in range(24):
                probs = np.full(8, 0.02, np.float32)
                probs[1 if labels[i] == "happiness" else 0] = 0.86
                face = FaceRecord(box=(0, 0, 10, 10), score=1.0, landmarks=np.zeros((68, 2), np.float32),
                                  chip=np.full((48, 48), i * 10, np.uint8), probs=probs, label=str(labels[i]),
                                  probs_model="m", vectors={("expression", "m"): expr[i],
                                                            ("identity", "dlib"): ident[i]})
                cat.add_photo(PhotoRecord(f"p{i}.jpg", 1, 1, f"h{i}", "ok", faces=[face]))
            # KNN votes as a build stores them: happiness faces with shares 0.5 .. 0.95
            ids = cat.load_vectors("expression", "m")[0].tolist()
            votes = np.zeros((24, 8), np.float32)
            share = 0.5 + 0.45 * (np.arange(24) % 7) / 6
            col = np.where(labels == "happiness", 1, 0)
            votes[np.arange(24), col] = share
            votes[np.arange(24), 6] = 1 - share
            cat.set_knn_labels(ids, votes, labels.tolist(), "m")
            cat.set_meta("model_id", "m")
            cat.set_meta("album", str(tmp_path))
    return tmp_path


def test_cli_analysis_commands_json(tmp_path):
    import json

    import typer
    from typer.testing import CliRunner

    from ferindex.cli.analysis_cmds import register

    app = typer.Typer()
    register(app)
    idx = str(_synthetic_index(tmp_path))
    run = lambda *a: CliRunner().invoke(app, [*a, "--index", idx, "--json"])  # noqa: E731

    r = run("people")
    assert r.exit_code == 0, r.output
    assert sorted(p["count"] for p in json.loads(r.stdout)) == [8, 8, 8]
    r = run("summarize", "--n", "4")
    doc = json.loads(r.stdout)
    assert doc["groups"] == {"happiness": 2, "neutral": 2} and (tmp_path / "sheets" / "summary.png").is_file()
    r = run("subclasses", "--min-size", "4", "--levels", "1")
    assert {n["id"] for n in json.loads(r.stdout)["nodes"]} >= {"happiness", "neutral"}
    r = run("people", "--merge", "1", "2")
    assert sorted(p["count"] for p in json.loads(r.stdout)) == [8, 16]
    r = run("find", "--person", "abc")
    assert r.exit_code == 2 and "abc" in json.loads(r.stdout)["error"]

    # "this person, smiling": only that person's happiness faces, highest vote share first
    people = json.loads(run("people").stdout)
    pid = people[-1]["id"]
    r = run("find", "--person", str(pid), "--expression", "happy", "--k", "50")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)
    assert hits and all(h["person_id"] == pid and h["label"] == "happiness" for h in hits)
    assert all(h["label_source"] == "knn" and h["score"] == h["confidence"] for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    everyone = json.loads(run("find", "--expression", "happiness", "--k", "50").stdout)
    assert len(everyone) == 12 and len(hits) < 12
    r = run("find", "--expression", "sleepy")
    assert r.exit_code == 2 and "unknown expression" in json.loads(r.stdout)["error"]
    r = run("subclasses", "--components", "1")
    assert r.exit_code == 2 and "--components" in json.loads(r.stdout)["error"]


@pytest.mark.parametrize("make", [
    lambda: KNNClassifier(k=3, metric="cosine"),
    lambda: SubclassDiscovery(max_level=1, random_state=7),
    lambda: Projection("umap", random_state=7),
    lambda: PeopleClustering(min_cluster_size=5),
    lambda: AlbumSummary(n=4),
], ids=["knn", "subclasses", "projection", "people", "summary"])
def test_analysis_components_are_scikit_learn_estimators(make):
    # get_params/set_params/clone are what grid searches and pipelines rely on: every
    # constructor argument must come back unchanged, and a clone must be unfitted.
    from sklearn.base import clone

    est = make()
    params = est.get_params()
    assert params and all(getattr(est, name) == value for name, value in params.items())
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert not [a for a in vars(twin) if a.endswith("_") and not a.startswith("_")]
    if "random_state" in params:
        assert est.set_params(random_state=3).random_state == 3


def test_projection_rejects_an_unknown_method_when_fitted():
    with pytest.raises(ValueError, match="method must be one of"):
        Projection("pca").fit_transform(np.zeros((5, 2)))
