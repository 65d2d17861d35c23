"""The pure pieces behind the UI and the CLI's map: the shared palette, the similarity scale,
sub-class descriptions. No index or research data needed."""
from __future__ import annotations

import numpy as np

from ferindex.analysis.palette import EXPRESSION_COLOURS, MISSING, colours, ordered
from ferindex.analysis.similarity import fit_scale, pair_distances
from ferindex.analysis.subclasses import (SubclassDiscovery, describe_nodes,
                                          mouth_aspect_ratio)


def test_palette_numeric_order_stable_and_distinct():
    people = ["person 10", "person 2", "person 1", "no person"]
    assert ordered(people) == ["person 1", "person 2", "person 10", "no person"]
    c = colours(people)
    assert c["no person"] == MISSING and len({c[p] for p in people}) == 4
    assert colours(["person 1", "person 2"])["person 2"] == c["person 2"]  # same in every run
    assert colours(["happiness", "zzz"])["happiness"] == EXPRESSION_COLOURS["happiness"]
    assert colours(["sadness"])["sadness"] == colours(["happiness", "sadness"])["sadness"]
    many = colours([f"g{i}" for i in range(20)])
    assert len(set(many.values())) == 20


def test_similarity_scale_orders_same_before_different():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 3
    y = rng.integers(0, 4, 2000)
    X = centres[y] + rng.normal(size=(2000, 8))
    same, diff = pair_distances(X, y, n=3000)
    assert np.median(same) < np.median(diff)
    scale = fit_scale(same, diff)
    s = scale(np.array([0.0, np.median(same), np.median(diff), 50.0]))
    assert np.all(np.diff(s) < 0) and s[0] > 0.9 and s[-1] < 0.01
    assert not scale.weak(np.median(same)) and scale.weak(np.median(diff))
    assert abs(scale(scale.distance_at(0.5)) - 0.5) < 1e-6


def test_mouth_aspect_ratio_open_and_closed():
    closed = np.zeros((68, 2))
    closed[60], closed[64] = (0, 0), (40, 0)  # mouth corners 40 px apart, lips touching
    opened = closed.copy()
    for top, bottom in ((61, 67), (62, 66), (63, 65)):
        opened[top], opened[bottom] = (20, -10), (20, 10)  # 20 px apart
    mar = mouth_aspect_ratio(np.stack([closed, opened, np.zeros((68, 2))]))
    assert mar[0] == 0 and abs(mar[1] - 0.5) < 1e-9 and np.isnan(mar[2])


def test_describe_nodes_says_what_differs():
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(0, 0.1, (30, 4)), rng.normal(5, 0.1, (30, 4))]
    tree = SubclassDiscovery(max_level=1, n_components=2, min_size=5).fit(X, ["happy"] * 60).tree_
    probs = np.zeros((60, 2))
    probs[:30] = (0.9, 0.1)
    probs[30:] = (0.5, 0.5)
    mouth = np.r_[np.full(30, 0.5), np.full(30, 0.0)]
    words = describe_nodes(tree, probs, ["happiness", "surprise"], mouth)
    assert words["happy"].startswith("60 faces · mouth open 50%")
    kids = tree["happy"].children
    texts = sorted(words[k] for k in kids)
    assert any("mouth open 100% (parent 50%)" in t and "less surprise" in t for t in texts)
    assert any("mouth open 0% (parent 50%)" in t and "more surprise" in t for t in texts)
    assert all("50% of happy" in t for t in texts)


def test_map_png_uses_the_shared_palette(tmp_path, monkeypatch):
    """`ferindex map` draws each group in the colour the UI's Explore scatter gives it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    from ferindex.cli.map_export_cmds import _scatter

    drawn, scatter = {}, Axes.scatter
    monkeypatch.setattr(Axes, "scatter", lambda self, x, y, **kw: drawn.setdefault(
        kw["label"].rsplit(" (", 1)[0], kw["color"]) and scatter(self, x, y, **kw))
    groups = np.array(["10", "2", "none", "1", "2"])
    _scatter(np.zeros((5, 2)), groups, tmp_path / "map.png", "t")
    assert list(drawn) == ["1", "2", "10", "none"]  # numeric order, missing last
    assert drawn == colours(groups) and (tmp_path / "map.png").stat().st_size > 1000
