"""First render time of each UI page on a 5k-face index, after warm-up (issue 13: under 2 s).

    python scripts/bench_ui.py [--faces 5000] [--work DIR] [--repeats 3]

The index is real where it can be and synthetic only in how many faces it holds:
1. `build_album` indexes a few photos from ../shared/data/photos (real detections, identity
   descriptors, thumbnails, settings, FAISS caches);
2. faces are added through the catalog API until there are --faces of them: each is a FER2013
   training face (a real 48x48 expression, aligned like album chips) written to the album as its
   own PNG, embedded by the index's model (real vectors, posteriors and labels) and given the
   identity descriptor of one of the real album faces plus noise (so people clustering finds
   those people again); landmarks are zeros (no page reads them);
3. `build_album` runs again: every file is unchanged, so it only publishes the FAISS caches for
   the new catalog generation, as after a real build.

Timing, with streamlit.testing.v1.AppTest (the script run and the element tree it produces; the
browser's own drawing is not included):
- warm-up: one visit to every page in this process; the heavy objects are computed and cached
  (model, detector, album arrays, FAISS, sub-class tree, the t-SNE map, which is also stored in
  the catalog as `ferindex map` does). Their times are printed as "cold" for reference;
- then, for each page, --repeats fresh sessions (new AppTest, empty session state) open the page
  and the time of that first script run is reported (median and max). Search and Classify also
  report the run that handles an upload (detector + model on the uploaded photo).
"""
from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "ui" / "app.py"
PHOTOS = ["dlib_johns/John_Salley", "dlib_johns/John_Savage", "dlib_johns/John_Simm"]
GROUP = "dlib_faces/2008_001009.jpg"
UPLOAD = "face_recognition/examples/obama-240p.jpg"
CLASSIFY = "dlib_faces/2008_002506.jpg"


def base_album(data: Path, album: Path) -> None:
    """Four photos each of three people plus a group photo."""
    album.mkdir(parents=True, exist_ok=True)
    for who in PHOTOS:
        for f in sorted((data / "photos" / who).glob("*.jpg"))[:4]:
            shutil.copyfile(f, album / f"{Path(who).name}_{f.name}")
    shutil.copyfile(data / "photos" / GROUP, album / Path(GROUP).name)


def add_synthetic_faces(index: Path, album: Path, data: Path, total: int, seed: int = 0) -> int:
    """Fill the index up to `total` faces (see the module docstring); returns the number added."""
    from PIL import Image

    from ferindex.io.scan import content_hash
    from ferindex.pipeline.process import EXPRESSION, IDENTITY, IDENTITY_MODEL, THUMB_SIZE
    from ferindex.store.catalog import Catalog, FaceRecord, PhotoRecord
    from ferindex.store.lock import WriteLock
    from ferindex.embed import load_model

    rng = np.random.default_rng(seed)
    with Catalog.open(index) as cat:
        have = cat.counts()["faces"]
        model = load_model(cat.get_meta("model_ref") or None)
        _, ident = cat.load_vectors(IDENTITY, IDENTITY_MODEL)
    n = total - have
    if n <= 0:
        return 0
    fer = np.load(data / "fer2013" / "fer2013.npz")
    rows = rng.choice(np.flatnonzero(fer["has_pixels"] & (fer["usage"] == 0)), n, replace=False)
    chips = fer["pixels"][rows]
    Z, P = model.embed_and_proba(chips)
    who = rng.integers(0, len(ident), n)
    ids = ident[who] + rng.normal(0, 0.02, (n, ident.shape[1])).astype(np.float32)
    folder = album / "fer"
    folder.mkdir(exist_ok=True)
    records = []
    for i in range(n):
        path = folder / f"{i:05d}.png"
        Image.fromarray(chips[i]).save(path)
        buf = io.BytesIO()
        Image.fromarray(chips[i]).convert("RGB").resize((THUMB_SIZE, THUMB_SIZE)).save(
            buf, "JPEG", quality=85)
        st = path.stat()
        face = FaceRecord(box=(0, 0, 48, 48), score=1.0, landmarks=np.zeros((68, 2), np.float32),
                          chip=chips[i], thumb=buf.getvalue(), probs=P[i],
                          label=model.classes[int(P[i].argmax())], probs_model=model.model_id,
                          vectors={(EXPRESSION, model.model_id): Z[i],
                                   (IDENTITY, IDENTITY_MODEL): ids[i]})
        records.append(PhotoRecord(path.relative_to(album).as_posix(), st.st_size, st.st_mtime_ns,
                                   content_hash(path), "ok", width=48, height=48, faces=[face]))
    with WriteLock(index), Catalog.open(index) as cat, cat.transaction():
        for rec in records:
            cat.add_photo(rec)
        cat.bump_generation()
    return n


def make_index(work: Path, total: int) -> Path:
    from ferindex.config import DATA_HINT, data_dir
    from ferindex.pipeline.build import build_album

    data = data_dir()
    if data is None:
        sys.exit(DATA_HINT)
    album, index = work / "album", work / "album" / ".ferindex"
    if not index.is_dir():
        base_album(data, album)
        build_album(album, index)
    t = time.perf_counter()
    added = add_synthetic_faces(index, album, data, total)
    if added:
        build_album(album, index)  # publishes the FAISS caches of the new generation
        print(f"added {added} synthetic faces in {time.perf_counter() - t:.1f} s")
    return index


def cluster_people(index: Path) -> int:
    """What a user does once on the People page: cluster and store the people."""
    from ferindex.analysis import people as ppl
    from ferindex.analysis.album import IDENTITY, load_faces
    from ferindex.store.catalog import Catalog

    with Catalog.open(index) as cat:
        if not ppl.list_people(cat):
            faces = load_faces(cat, IDENTITY)
            ppl.store_clusters(cat, faces.ids.tolist(),
                               ppl.PeopleClustering().fit(faces.X).labels_)
        return len(ppl.list_people(cat))


def session(index: Path, page: str, **state):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=1800)
    at.session_state["index_path"] = str(index)
    at.session_state["page"] = page
    for k, v in state.items():
        at.session_state[k] = v
    return at


def timed(at) -> float:
    t = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(f"page raised: {at.exception[0].value}")
    if at.error:
        raise RuntimeError(f"page shows an error: {at.error[0].value}")
    return dt


# Each case: (name, page, session state preset, upload (uploader key, photo) or None)
def cases(data: Path, first_face: int) -> list[tuple]:
    up = data / "photos" / UPLOAD
    cl = data / "photos" / CLASSIFY
    return [
        ("Search (album face)", "Search", {"search_source": "Pick a face from the album",
                                          "search_face": first_face}, None),
        ("Search (upload)", "Search", {}, ("search_upload", up)),
        ("Classify (upload)", "Classify", {}, ("classify_upload", cl)),
        ("Explore (t-SNE map)", "Explore", {}, None),
        ("Sub-classes", "Sub-classes", {}, None),
        ("Summary (12 faces)", "Summary", {}, None),
        ("Face dialog (on Summary)", "Summary", {"face_open": first_face}, None),
        ("People", "People", {}, None),
    ]


def visit(index: Path, case: tuple) -> tuple[float, float | None]:
    """(first run, upload run or None) of one fresh session."""
    _, page, state, upload = case
    at = session(index, page, **state)
    first = timed(at)
    if upload is None:
        return first, None
    key, path = upload
    files = (path.name, path.read_bytes(), "image/jpeg")
    at.file_uploader(key=key).set_value([files] if key == "classify_upload" else files)
    second = timed(at)
    if not at.image:
        raise RuntimeError(f"{case[0]}: no face shown after the upload")
    return first, second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=5000)
    ap.add_argument("--work", type=Path, default=None,
                    help="Folder for the album and index (reused when it exists).")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from ferindex.config import data_dir
    from ferindex.store.catalog import Catalog

    work = args.work or Path(tempfile.mkdtemp(prefix="ferindex-bench-ui-"))
    index = make_index(work, args.faces)
    people = cluster_people(index)
    with Catalog.open(index) as cat:
        n = cat.counts()["faces"]
        first_face = int(cat.con.execute("SELECT MIN(id) FROM faces").fetchone()[0])
    print(f"index {index}: {n} faces, {people} people")
    todo = cases(data_dir(), first_face)

    cold = {}
    for case in todo:  # warm-up; Explore's map needs its button on a large album
        name, page = case[0], case[1]
        at = session(index, page, **case[2])
        t = time.perf_counter()
        at.run()
        if page == "Explore" and at.button:
            at.button(key="explore_compute").click().run()
        if case[3] is not None:
            key, path = case[3]
            files = (path.name, path.read_bytes(), "image/jpeg")
            at.file_uploader(key=key).set_value([files] if key == "classify_upload" else files)
            at.run()
        cold[name] = time.perf_counter() - t
        if at.exception or at.error:
            raise RuntimeError(f"{name}: {(at.exception or at.error)[0].value}")

    print(f"\nfirst render per fresh session after warm-up, {n} faces, {args.repeats} sessions"
          " each (AppTest script run, seconds)")
    print(f"{'page':<26}{'cold (warm-up)':>16}{'first run med':>15}{'max':>7}"
          f"{'upload run med':>16}{'max':>7}")
    for case in todo:
        runs = [visit(index, case) for _ in range(args.repeats)]
        first = [r[0] for r in runs]
        line = (f"{case[0]:<26}{cold[case[0]]:>16.2f}{statistics.median(first):>15.2f}"
                f"{max(first):>7.2f}")
        if runs[0][1] is not None:
            ups = [r[1] for r in runs]
            line += f"{statistics.median(ups):>16.2f}{max(ups):>7.2f}"
        print(line)


if __name__ == "__main__":
    main()
