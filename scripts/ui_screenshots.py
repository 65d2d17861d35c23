"""Screenshots of every UI page at 1400x1000 for the README (docs/ui/*.png).

    python scripts/ui_screenshots.py [--work DIR] [--out docs/ui]

They show the sample album (`ferindex sample-album`: public-domain photos that ship inside the
scikit-image and matplotlib wheels), never the research data: the repository holds no copy of
those images. Steps: write and index the sample album, cluster and name its two people, serve
the app (ui/browser.py), then visit each page in headless Chromium and press what a user
would (pick a face, upload a photo, open a face).
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAMES = {"astronaut": "Eileen Collins", "hopper": "Grace Hopper"}


def make_index(work: Path) -> Path:
    """The sample album, indexed, with its people found and named after their photos."""
    from ferindex.analysis import people as ppl
    from ferindex.analysis.album import IDENTITY, load_faces
    from ferindex.pipeline.build import build_album
    from ferindex.pipeline.sample_album import write_sample_album
    from ferindex.store.catalog import Catalog

    album = work / "album"
    write_sample_album(album)
    build_album(album, album / ".ferindex")
    with Catalog.open(album / ".ferindex") as cat:
        faces = load_faces(cat, IDENTITY)
        ppl.store_clusters(cat, faces.ids.tolist(),
                           ppl.PeopleClustering(min_cluster_size=2).fit(faces.X).labels_)
        for p in ppl.list_people(cat):
            path = cat.face_details([p["sample_face"]])[p["sample_face"]]["path"]
            name = next((n for key, n in NAMES.items() if key in path), None)
            if name:
                ppl.name_person(cat, p["id"], name)
    return album / ".ferindex"


def save(driver, path: Path) -> None:
    """The window as an optimised PNG (palette colours keep the files small)."""
    from PIL import Image

    img = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    img.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} {img.size[0]}x{img.size[1]}")


def shoot(index: Path, out: Path, work: Path) -> None:
    from selenium.webdriver.common.by import By

    from ui import browser

    out.mkdir(parents=True, exist_ok=True)
    album = index.parent
    with browser.served(index, work / "streamlit.log") as url:
        d = browser.chromium(work / "profile")
        try:
            d.get(url)
            browser.wait_text(d, "Search by expression", 180)
            browser.wait_idle(d, 180)
            d.find_element(By.XPATH, "//label[.//p[text()='Pick a face from the album']]").click()
            browser.wait_idle(d)
            first = d.find_elements(By.CSS_SELECTOR, "[class*='st-key-pick_']")[0]
            key = next(c for c in first.get_attribute("class").split() if c.startswith("st-key-"))
            browser.click_key(d, key[len("st-key-"):])
            browser.wait_text(d, "nearest faces", 180)
            browser.wait_idle(d, 180)
            save(d, out / "search.png")

            browser.goto_page(d, "Classify")
            d.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(
                str(album / "astronaut.jpg"))
            browser.wait_text(d, "numbered left to right", 180)
            browser.wait_idle(d, 180)
            save(d, out / "classify.png")

            browser.goto_page(d, "Explore")
            browser.pick_explore_faces(d, 3)
            browser.wait_idle(d)
            save(d, out / "explore.png")

            for page, name in (("Sub-classes", "subclasses"), ("Summary", "summary"),
                               ("People", "people")):
                browser.goto_page(d, page)
                browser.wait_idle(d, 180)
                d.execute_script("window.scrollTo(0, 0)")
                save(d, out / f"{name}.png")

            browser.goto_page(d, "Summary")
            face = browser.similar_keys(d, "summary")[0].rsplit("_", 1)[1]
            browser.click_key(d, f"open_summary_{face}")
            browser.wait_text(d, f"(face id {face})", 180)
            browser.wait_idle(d)
            save(d, out / "face_dialog.png")
        finally:
            d.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="Scratch folder (album, index).")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "ui")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ferindex-shots-"))
    shoot(make_index(work), args.out, work)


if __name__ == "__main__":
    main()
