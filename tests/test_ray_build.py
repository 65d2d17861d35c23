"""`ferindex build --engine ray`: the same catalog as an in-process build, and a kill -9 of a
Ray build followed by a rerun (joining a runtime with --address) loses nothing.

Each Ray build starts Ray and loads the models in every worker (tens of seconds on 2 cores),
so the albums are small and identity descriptors are computed only where they are compared.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ferindex.config import DATA_HINT, data_dir
from ferindex.pipeline.build import BuildOptions, build_album
from ferindex.store.catalog import Catalog

DATA = data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason=DATA_HINT)
CHIPS = "photos/dlib_johns"
GROUP = "photos/dlib_faces/2008_001009.jpg"
RAY_WORKERS = "2"


def _ray_or_skip():
    return pytest.importorskip("ray", reason="Ray is not installed: pip install 'ferindex[ray]'")


def _album(dest: Path, n_chips: int, group: bool = False) -> Path:
    dest.mkdir(parents=True)
    for f in sorted((DATA / CHIPS).rglob("*.jpg"))[:n_chips]:
        (dest / f"{f.parent.name}_{f.name}").write_bytes(f.read_bytes())
    if group:
        (dest / "group.jpg").write_bytes((DATA / GROUP).read_bytes())
    return dest


def _cli_build(album: Path, index: Path, *args: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ferindex.cli.app", "build", str(album), "--index", str(index),
           "--engine", "ray", "--workers", RAY_WORKERS, "--json", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True, **popen)


def _faces(index: Path) -> dict[str, list[dict]]:
    """{photo path: its faces left to right with box and vectors by kind}, every photo listed."""
    with Catalog.open(index) as cat:
        out: dict[str, list[dict]] = {p: [] for p in cat.photo_index()}
        rows = cat.con.execute(
            "SELECT p.path, f.id, f.x0, f.y0, f.x1, f.y1 FROM faces f JOIN photos p"
            " ON p.id = f.photo_id ORDER BY p.path, f.face_idx").fetchall()
        vecs = {}
        for kind in ("expression", "identity"):
            for model_id in cat.vector_models(kind):
                ids, X = cat.load_vectors(kind, model_id)
                vecs.update({(int(i), kind): x for i, x in zip(ids, X)})
    for path, fid, *box in rows:
        out[path].append({"box": np.array(box), "expression": vecs.get((fid, "expression")),
                          "identity": vecs.get((fid, "identity"))})
    return out


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_ray_build_matches_in_process_build(tmp_path):
    _ray_or_skip()
    album = _album(tmp_path / "album", 3, group=True)
    (album / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    local = build_album(album, tmp_path / "local", BuildOptions())

    proc = _cli_build(album, tmp_path / "ray")  # no --address: a local runtime of its own
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    ray_report = json.loads(out)  # stdout holds the one JSON document, Ray's logs stay off it

    assert ray_report["totals"] == local.totals and local.totals["faces"] >= 5
    assert ray_report["detected"] == local.detected == 4
    assert [e["path"] for e in ray_report["errors"]] == ["corrupt.jpg"]
    a, b = _faces(tmp_path / "local"), _faces(tmp_path / "ray")
    assert a.keys() == b.keys()
    for path in a:
        assert len(a[path]) == len(b[path]), path
        for fa, fb in zip(a[path], b[path]):
            assert np.abs(fa["box"] - fb["box"]).max() <= 1, path
            for kind in ("expression", "identity"):
                assert fa[kind] is not None and fb[kind] is not None, (path, kind)
                assert _cos(fa[kind], fb[kind]) > 0.999, (path, kind)


def test_kill_9_of_a_ray_build_then_rerun_loses_nothing(tmp_path):
    from test_build import _check_consistent, _photo_count

    ray = _ray_or_skip()
    n = 16
    album = _album(tmp_path / "album", n)
    index = tmp_path / "idx"
    # its own session, so that what its local Ray runtime leaves behind can be ended by group
    proc = _cli_build(album, index, "--batch-size", "1", "--no-identity",
                      start_new_session=True)
    try:
        deadline = time.time() + 300
        while _photo_count(index) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # Ray agents the killed driver leaves behind
        except ProcessLookupError:
            pass
    at_kill = _photo_count(index)
    assert 2 <= at_kill < n, f"kill came too late or too early ({at_kill} photos committed)"

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:  # the rerun joins a running cluster: --address
        proc = _cli_build(album, index, "--no-identity", "--address",
                          ray.get_runtime_context().gcs_address)
        out, err = proc.communicate(timeout=600)
    finally:
        ray.shutdown()
    assert proc.returncode == 0, err[-2000:]
    report = json.loads(out)
    assert report["skipped"] == at_kill and report["new"] == n - at_kill  # nothing redone
    counts = _check_consistent(index, n)
    assert counts["ok"] == counts["faces"] == n  # one face per chip, each photo once


def test_ray_options_without_ray_say_what_to_do(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ferindex.cli.app import app

    album = _album(tmp_path / "album", 1)
    runner = CliRunner()
    res = runner.invoke(app, ["build", str(album), "--address", "auto", "--json"])
    assert res.exit_code == 2 and "need --engine ray" in json.loads(res.stdout)["error"]

    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    res = runner.invoke(app, ["build", str(album), "--engine", "ray", "--json"])
    assert res.exit_code == 2
    assert "pip install 'ferindex[ray]'" in json.loads(res.stdout)["error"]
    assert not (album / ".ferindex").exists()  # refused before anything was written
