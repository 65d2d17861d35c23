"""People you can trust: faces of one photo are never one person (cannot-link), a face moved
out of a person stays out when the album is clustered again."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferindex.analysis import people as ppl
from ferindex.errors import FerindexError
from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord

GROUP_PHOTO = "2008_001322.jpg"  # three frontal faces


def _holds_two_of_one_photo(labels: np.ndarray, groups: np.ndarray) -> bool:
    clustered = labels >= 0
    pairs = set(zip(labels[clustered].tolist(), groups[clustered].tolist()))
    return len(pairs) < clustered.sum()


def test_group_photo_faces_never_share_a_person(data_dir: Path):
    """A group photo next to its mirror image, in ONE photo (a mirror on the wall): each person
    appears twice in that photo, so unconstrained clustering pairs them up; with the photo as
    cannot-link group no person holds two of its faces. Chips of two other people (one photo
    each) still cluster perfectly."""
    from PIL import Image

    from ferindex.faces.detect import make_detector
    from ferindex.faces.identity import IdentityEncoder
    from ferindex.io.decode import load_rgb

    rgb = load_rgb(data_dir / "photos" / "dlib_faces" / GROUP_PHOTO)
    mirror = np.ascontiguousarray(np.concatenate([rgb, rgb[:, ::-1]], axis=1))
    dets = make_detector("hog", upsample=1).detect(mirror)
    assert len(dets) == 6
    X = [IdentityEncoder().encode(mirror, dets)]
    files = sorted((data_dir / "photos" / "dlib_johns").glob("John_S[ai]*/*.jpg"))[:22]
    X.append(ppl.chip_descriptors([np.asarray(Image.open(f).convert("RGB")) for f in files]))
    X = np.vstack(X)
    groups = np.array([0] * 6 + list(range(1, len(files) + 1)))

    free = ppl.PeopleClustering(min_cluster_size=2).fit(X).labels_
    assert _holds_two_of_one_photo(free, groups)  # what the constraint is for
    fit = ppl.PeopleClustering(min_cluster_size=2).fit(X, groups=groups)
    assert not _holds_two_of_one_photo(fit.labels_, groups)
    # each of the three is on one photo only: a person of one face is no cluster
    assert (fit.labels_[:6] == -1).all()
    who = [f.parent.name for f in files]
    assert ppl.pairwise_precision_recall(who, fit.labels_[6:]) == (1.0, 1.0)


def _index(tmp_path: Path) -> Path:
    """Five photos: A and B together on photos 0 and 3, A alone on 1, 2 and 4 (identity vectors:
    A and B 1.4 apart, like dlib's different people)."""
    rng = np.random.default_rng(0)
    a, b = np.eye(128)[0], np.eye(128)[1]
    who = [[a, b], [a], [a], [a, b], [a]]
    idx = tmp_path / "idx"
    with Catalog.open(idx, create=True) as cat, cat.transaction():
        for p, faces in enumerate(who):
            cat.add_photo(PhotoRecord(f"p{p}.jpg", 1, 1, f"h{p}", "ok", faces=[
                FaceRecord(box=(60 * i, 0, 60 * i + 50, 50), score=1.0,
                           landmarks=np.zeros((68, 2), np.float32),
                           chip=np.zeros((48, 48), np.uint8), quality=0.9,
                           vectors={("identity", "dlib-resnet-v1"):
                                    (v + rng.normal(size=128) * 0.01).astype(np.float32)})
                for i, v in enumerate(faces)]))
    return idx


def test_move_face_out_of_a_person_survives_reclustering(tmp_path: Path):
    idx = _index(tmp_path)
    with Catalog.open(idx) as cat:
        ppl.cluster_people(cat, min_cluster_size=2)
        big = cat.people()[0]
        assert big["count"] == 5  # person A
        moved = cat.faces_of_person(big["id"])[-1]
        new = ppl.move_face(cat, moved, None)
        assert moved not in cat.faces_of_person(big["id"])
        assert cat.faces_of_person(new) == [moved]
        ppl.cluster_people(cat, min_cluster_size=2)  # --recluster
        assert [p["count"] for p in cat.people()] == [4, 2, 1]
        assert any(cat.faces_of_person(p["id"]) == [moved] for p in cat.people())
        # into a person that holds a face of the same photo: refused
        a_person = next(p["id"] for p in cat.people() if p["count"] == 4)
        b_face = cat.faces_of_person(next(p["id"] for p in cat.people() if p["count"] == 2))[0]
        with pytest.raises(FerindexError, match="same photo"):
            ppl.move_face(cat, b_face, str(a_person))
        with pytest.raises(ppl.UnknownPersonError):
            ppl.move_face(cat, 99, None)
