"""The local process pool (pipeline/pool.py): the same photos, faces, boxes and descriptors as a
build in the writer's process, a bad file reported on its own, no worker left behind."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ferindex.pipeline.build import BuildOptions, build_album
from ferindex.store.catalog import Catalog

PHOTOS = ["photos/dlib_faces/2008_001009.jpg", "photos/dlib_faces/dogs.jpg",
          "photos/face_recognition/examples/obama_small.jpg",
          "photos/face_recognition/examples/two_people.jpg"]


def _faces(index: Path) -> dict[str, list]:
    with Catalog.open(index) as cat:
        rows = cat.con.execute("SELECT p.path, f.x0, f.y0, f.x1, f.y1, f.quality, f.id FROM faces f"
                               " JOIN photos p ON p.id = f.photo_id ORDER BY p.path, f.face_idx")
        out: dict[str, list] = {}
        for path, *box, quality, fid in rows:
            ident = cat.load_vectors("identity", "dlib-resnet-v1", face_ids=[fid])[1][0]
            out.setdefault(path, []).append((box, quality, ident))
        return out


def test_pool_build_matches_in_process_build(data_dir: Path, tmp_path: Path):
    album = tmp_path / "album"
    album.mkdir()
    for rel in PHOTOS:
        shutil.copyfile(data_dir / rel, album / Path(rel).name)
    (album / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    reports = {w: build_album(album, tmp_path / f"idx{w}", BuildOptions(workers=w))
               for w in (1, 2)}
    for rep in reports.values():
        assert rep.detected == 4 and rep.totals["noface"] == 1  # dogs.jpg
        assert [e["path"] for e in rep.errors] == ["broken.jpg"]
    one, two = _faces(tmp_path / "idx1"), _faces(tmp_path / "idx2")
    assert sorted(one) == sorted(two) and sum(map(len, one.values())) == 5
    for path in one:
        for (box1, q1, id1), (box2, q2, id2) in zip(one[path], two[path]):
            assert box1 == box2 and q1 == q2 and 0.0 < q1 <= 1.0
            assert np.abs(id1 - id2).max() < 1e-5
