"""End to end in a real browser: `streamlit run ui/app.py -- --index DIR` served on localhost
and headless Debian Chromium (ui/browser.py). On every page that shows album faces, pressing
"Similar" under a face opens the Search page with that face as the query and its nearest faces;
an upload on the Search and Classify pages shows its results. A screenshot of each page is
saved under artifacts/ (git-ignored: it shows faces from the research data; docs/ui/ holds
screenshots of the sample album, made by scripts/ui_screenshots.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_ui import QUERY, n_faces  # album_index: the session's small real index (conftest.py)
from ui import browser

ARTIFACTS = browser.REPO / "artifacts"
RESULT_TIMEOUT = 180  # s from a click to the results (cold model and detector, busy machine)

pytestmark = [
    pytest.mark.skipif(not browser.CHROMIUM.is_file(), reason="no /usr/bin/chromium: install the"
                       " Debian packages chromium and chromium-driver (scripts/install_browser.sh)"),
    pytest.mark.skipif(not browser.CHROMEDRIVER.is_file(), reason="no /usr/bin/chromedriver:"
                       " install the Debian package chromium-driver"),
]
pytest.importorskip("selenium.webdriver", reason="pip install selenium")


@pytest.fixture(scope="module")
def people_index(album_index, tmp_path_factory) -> Path:
    """A copy of the session's index with its people clustered (the People page has faces)."""
    from ferindex.analysis import people as ppl
    from ferindex.analysis.album import IDENTITY, load_faces
    from ferindex.store.catalog import Catalog

    dest = tmp_path_factory.mktemp("browser") / "index"
    shutil.copytree(album_index, dest)
    with Catalog.open(dest) as cat:
        faces = load_faces(cat, IDENTITY)
        ppl.store_clusters(cat, faces.ids.tolist(), ppl.PeopleClustering().fit(faces.X).labels_)
    return dest


@pytest.fixture(scope="module")
def served_app(people_index, tmp_path_factory):
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    try:
        with browser.served(people_index, log) as url:
            yield url
    except browser.BrowserError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = browser.chromium(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture
def page(served_app, driver):
    """A fresh session of the app (new page load: empty session state)."""
    driver.get(served_app)
    browser.wait_text(driver, "Search by expression", RESULT_TIMEOUT)
    browser.wait_idle(driver, RESULT_TIMEOUT)
    return driver


def screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / f"ui_{name}.png"))


def assert_searched_from(driver, face_id: int) -> None:
    """The Search page shows face_id as the query (its own card) and its nearest faces."""
    browser.wait_until(driver, lambda d: browser.similar_keys(d, "query") == [
        f"similar_query_{face_id}"] and browser.similar_keys(d, "hit"), RESULT_TIMEOUT,
        f"no search from face {face_id}")  # the query's own card, then the hits'
    browser.wait_idle(driver, RESULT_TIMEOUT)
    assert "% similar" in driver.find_element("tag name", "body").text


def prepare_explore(driver) -> None:
    """Pick the first three faces by id (a lasso is not needed to show faces)."""
    browser.pick_explore_faces(driver, 3)


PAGES = [("Summary", "summary", None), ("Sub-classes", "sub", None),
         ("Explore", "explore", prepare_explore), ("People", "person", None)]


@pytest.mark.parametrize("name,prefix,prepare", PAGES, ids=[p[0] for p in PAGES])
def test_similar_under_a_face_runs_that_search(page, name, prefix, prepare):
    browser.goto_page(page, name)
    if prepare:
        prepare(page)
    keys = browser.wait_until(page, lambda d: browser.similar_keys(d, prefix), RESULT_TIMEOUT,
                              f"no face with a Similar button on {name}")
    screenshot(page, name.lower().replace("-", ""))
    face_id = int(keys[0].rsplit("_", 1)[1])
    browser.click_key(page, keys[0])
    assert_searched_from(page, face_id)


def test_search_pick_then_similar_on_a_hit(page, album_index):
    from selenium.webdriver.common.by import By

    page.find_element(By.XPATH, "//label[.//p[text()='Pick a face from the album']]").click()
    browser.wait_idle(page)
    first = browser.wait_until(page, lambda d: d.find_elements(
        By.CSS_SELECTOR, "[class*='st-key-pick_']"), RESULT_TIMEOUT, "no face picker")[0]
    face = int(next(c for c in first.get_attribute("class").split()
                    if c.startswith("st-key-pick_")).rsplit("_", 1)[1])
    browser.click_key(page, f"pick_{face}")
    assert_searched_from(page, face)
    hit = browser.similar_keys(page, "hit")[0]
    browser.click_key(page, hit)
    assert_searched_from(page, int(hit.rsplit("_", 1)[1]))
    screenshot(page, "search")


def test_open_a_face_shows_its_photo_and_searches(page):
    browser.goto_page(page, "Summary")
    key = browser.wait_until(page, lambda d: browser.similar_keys(d, "summary"),
                             RESULT_TIMEOUT, "no Summary faces")[0]
    face = int(key.rsplit("_", 1)[1])
    browser.click_key(page, f"open_summary_{face}")
    browser.wait_text(page, f"(face id {face})", RESULT_TIMEOUT)
    screenshot(page, "face_dialog")
    browser.click_key(page, "face_search")
    assert_searched_from(page, face)


def test_upload_in_browser_shows_gallery(page, album_index):
    from selenium.webdriver.common.by import By

    from ferindex.config import data_dir

    page.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(data_dir() / QUERY))
    expected = min(12, n_faces(album_index))
    browser.wait_text(page, f"{expected} nearest faces", RESULT_TIMEOUT)
    browser.wait_idle(page, RESULT_TIMEOUT)
    assert "obama-240p.jpg: " in page.find_element(By.TAG_NAME, "body").text
    assert browser.images_loaded(page) >= 1 + 2 * expected  # query + faces + their photos


def test_classify_upload_shows_numbered_photo(page, data_dir):
    from selenium.webdriver.common.by import By

    browser.goto_page(page, "Classify")
    photo = data_dir / "photos" / "dlib_faces" / "2008_001009.jpg"
    page.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(photo))
    browser.wait_text(page, "numbered left to right", RESULT_TIMEOUT)
    browser.wait_idle(page, RESULT_TIMEOUT)
    body = page.find_element(By.TAG_NAME, "body").text
    assert "2 face(s), numbered left to right" in body and body.count("by KNN vote") == 2
    screenshot(page, "classify")
