"""The command line on the bundled sample album (needs no research data): JSON keys, exit codes,
and one-line messages instead of tracebacks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferindex.cli.app import app
from ferindex.store.lock import WriteLock

runner = CliRunner()


def _run(*args: str, cwd: Path | None = None):
    if cwd is None:
        return runner.invoke(app, list(args))
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, list(args))
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def album(tmp_path_factory) -> Path:
    """The quickstart album, built once through the CLI (identity descriptors skipped: faster)."""
    root = tmp_path_factory.mktemp("cli") / "demo"
    res = _run("sample-album", str(root), "--json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["photos"]) == 9
    res = _run("build", str(root), "--no-identity", "--json")
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    assert stats["new"] == 9 and stats["errors"] == []
    return root


def test_build_json_reports_counts(album):
    res = _run("build", str(album), "--json")
    assert res.exit_code == 0
    stats = json.loads(res.stdout)
    for key in ("album", "index", "model_id", "seen", "new", "skipped", "detected", "faces_added",
                "errors", "known_errors", "seconds", "photos_per_s", "totals"):
        assert key in stats, key
    assert stats["skipped"] == 9 and stats["detected"] == 0


def test_info_json_keys_and_counts(album):
    res = _run("info", "--album", str(album), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    for key in ("photos", "faces", "errors", "noface", "model", "size_bytes", "last_build",
                "vectors", "caches_fresh"):
        assert key in doc, key
    assert doc["photos"] == 9 and doc["noface"] == 2 and doc["errors"] == 0
    assert doc["faces"] >= 7 and doc["vectors"]["expression"] == doc["faces"]
    assert doc["model"] and doc["size_bytes"] > 0 and doc["caches_fresh"]
    human = _run("info", "--album", str(album))
    assert human.exit_code == 0 and "photos" in human.stdout


def test_query_json_lists_nearest_faces(album):
    res = _run("query", str(album / "astronaut.jpg"), "--album", str(album), "--k", "4", "--json")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert isinstance(hits, list) and len(hits) == 4
    for h in hits:
        assert {"path", "box", "distance", "label", "face_id", "photo_id", "query"} <= set(h)
        assert len(h["box"]) == 4
    assert hits[0]["path"].endswith("astronaut.jpg") and hits[0]["distance"] < 1e-3
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    assert hits[0]["query"]["box"] == hits[0]["box"]


def test_query_default_index_from_cwd(album):
    res = _run("query", "astronaut.jpg", "--k", "2", cwd=album)
    assert res.exit_code == 0, res.output
    assert "nearest faces" in res.stdout


def test_query_photo_without_face_exits_1(album):
    res = _run("query", str(album / "no_people" / "coffee.jpg"), "--album", str(album))
    assert res.exit_code == 1
    assert "no face found" in res.stderr and "Traceback" not in res.output
    res = _run("query", str(album / "no_people" / "coffee.jpg"), "--album", str(album), "--json")
    assert res.exit_code == 1 and json.loads(res.stdout)["exit_code"] == 1


def test_query_bad_image_exits_2(album, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    res = _run("query", str(bad), "--album", str(album))
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and "notes.jpg: " in res.stderr  # file + reason
    assert "image" in res.stderr.split("notes.jpg: ")[1]
    assert "Traceback" not in res.output
    res = _run("query", str(tmp_path / "missing.jpg"), "--album", str(album))
    assert res.exit_code == 2 and "not found" in res.stderr


def test_query_face_out_of_range_exits_2(album):
    res = _run("query", str(album / "grace_hopper.jpg"), "--album", str(album), "--face", "5")
    assert res.exit_code == 2 and "out of range" in res.stderr


def test_missing_index_is_explained(tmp_path):
    res = _run("query", "x.jpg", cwd=tmp_path)
    assert res.exit_code == 2
    assert "--index" in res.stderr and "--album" in res.stderr
    res = _run("info", "--index", str(tmp_path / "nothing"), "--json")
    assert res.exit_code == 2 and "no index at" in json.loads(res.stdout)["error"]


def test_second_writer_is_refused(album):
    with WriteLock(album / ".ferindex"):
        res = _run("build", str(album))
    assert res.exit_code == 2 and "another build is running on" in res.stderr


def _faces_by_path(album: Path) -> dict[str, list[dict]]:
    from ferindex.store.catalog import Catalog

    with Catalog.open(album / ".ferindex") as cat:
        details = cat.face_details(cat.load_vectors("expression", cat.get_meta("model_id"))[0])
    out: dict[str, list[dict]] = {}
    for d in sorted(details.values(), key=lambda d: d["face_id"]):
        out.setdefault(d["path"], []).append(d)
    return out


def test_build_stores_knn_votes_equal_to_classify(album):
    """Each face's stored KNN label is the K=11 vote `classify` computes for the same photo."""
    res = _run("info", "--album", str(album), "--json")
    doc = json.loads(res.stdout)
    assert sum(doc["labels"].values()) == doc["faces"] and doc["user_labels"] == 0
    stored = {tuple(d["box"]): d for d in _faces_by_path(album)["astronaut.jpg"]}
    res = _run("classify", str(album / "astronaut.jpg"), "--json")
    assert res.exit_code == 0, res.output
    faces = json.loads(res.stdout)[0]["faces"]
    assert len(faces) == len(stored) == 1  # the astronaut; her mission patch is not a face
    for f in faces:
        d = stored[tuple(f["box"])]
        assert d["knn_label"] == f["label"]
        assert d["knn_probs"].tolist() == pytest.approx(list(f["probs"].values()), abs=1e-3)
        assert d["label"] == f["model_label"]  # the softmax is kept beside the votes


def test_label_overrides_and_joins_the_votes(album):
    q = ["query", str(album / "grace_hopper.jpg"), "--album", str(album), "--k", "1", "--json"]
    hit = json.loads(_run(*q).stdout)[0]
    assert hit["label_source"] == "knn" and hit["model_label"]
    fid = hit["face_id"]
    res = _run("label", str(fid), "surprised", "--album", str(album), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"face_id": fid, "label": "surprise",
                                      "knn_relabelled": json.loads(_run(
                                          "info", "--album", str(album), "--json").stdout)["faces"]}
    hit = json.loads(_run(*q).stdout)[0]
    assert (hit["label"], hit["label_source"], hit["label_prob"]) == ("surprise", "user", 1.0)
    # the query face itself (identical to the labelled one) now takes the user's label by KNN
    assert hit["query"]["label"] == "surprise" and hit["query"]["model_label"]
    assert json.loads(_run("info", "--album", str(album), "--json").stdout)["user_labels"] == 1
    assert "(you)" in _run(*q[:-1]).stdout
    res = _run("label", str(fid), "none", "--album", str(album), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["label"] is None
    assert json.loads(_run(*q).stdout)[0]["label_source"] == "knn"
    res = _run("label", "99999", "happy", "--album", str(album), "--json")
    assert res.exit_code == 2 and "no face with id 99999" in json.loads(res.stdout)["error"]


def test_query_person_restricts_hits(album):
    from ferindex.store.catalog import Catalog

    mine = [d["face_id"] for p, ds in _faces_by_path(album).items() if p.startswith("grace")
            for d in ds]
    with Catalog.open(album / ".ferindex") as cat:
        with cat.transaction():
            pid = cat.add_person("Grace")
            cat.set_person(mine, pid)
    try:
        for who in ("Grace", str(pid)):
            res = _run("query", str(album / "astronaut.jpg"), "--album", str(album), "--k", "20",
                       "--person", who, "--json")
            assert res.exit_code == 0, res.output
            hits = json.loads(res.stdout)
            assert sorted(h["face_id"] for h in hits) == sorted(mine)  # all of hers, no one else
            assert all(h["person_id"] == pid for h in hits)
        res = _run("query", str(album / "astronaut.jpg"), "--album", str(album), "--person",
                   "Nobody", "--json")
        assert res.exit_code == 2 and "Nobody" in json.loads(res.stdout)["error"]
    finally:
        with Catalog.open(album / ".ferindex") as cat:
            with cat.transaction():
                cat.set_person(mine, None)


@pytest.mark.parametrize("args", [
    ["query", "x.jpg", "--k", "0"], ["query", "x.jpg", "--k", "-5"],
    ["build", ".", "--batch-size", "0"], ["build", ".", "--detector", "nonsense"],
    ["build", ".", "--upsample", "9"], ["query"], ["frobnicate"], ["info", "--bogus"],
])
def test_option_errors_under_json_are_one_json_document(args):
    """Issue 11.5: click rejects these before any command runs; with --json the failure is
    still exactly one JSON document on stdout, with the exit code."""
    res = _run(*args, "--json")
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == 2 and doc["error"] and "Traceback" not in res.output
    assert _run(*args).stdout == ""  # without --json: a usage message on stderr only
