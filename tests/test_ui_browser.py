"""End to end in a real browser: `streamlit run ui/app.py -- --index DIR` served on localhost,
headless Debian Chromium (kept off the network by its flags) uploads a photo on the Search page
and the result gallery appears; a screenshot is saved.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages `chromium` and
`chromium-driver`) and the `selenium` package; skipped with the reason when one is missing.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_ui import QUERY, n_faces  # album_index: the session's small real index (conftest.py)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[1]
ARTIFACT = REPO / "artifacts" / "ui_search.png"  # git-ignored: it shows faces from the data
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1100")
START_TIMEOUT = 40  # s for streamlit to answer its health check
RESULT_TIMEOUT = 60  # s from upload to the gallery (cold model and detector included)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="no /usr/bin/chromium: install the Debian"
                       " packages chromium and chromium-driver (apt-get install -y chromium"
                       " chromium-driver)"),
    pytest.mark.skipif(not CHROMEDRIVER.is_file(), reason="no /usr/bin/chromedriver: install the"
                       " Debian package chromium-driver"),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not answer within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def served_app(album_index, tmp_path):
    """The app served by `streamlit run` on a free localhost port; stopped afterwards."""
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "ui" / "app.py"),
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--", "--index", str(album_index)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_upload_in_browser_shows_gallery(served_app, browser, album_index, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from ferindex.config import data_dir

    browser.get(served_app)
    file_input = WebDriverWait(browser, START_TIMEOUT).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
    file_input.send_keys(str(data_dir() / QUERY))
    heading = WebDriverWait(browser, RESULT_TIMEOUT).until(EC.presence_of_element_located(
        (By.XPATH, "//*[contains(text(), 'nearest faces')]")))
    expected = min(12, n_faces(album_index))
    assert heading.text.startswith(f"{expected} nearest faces")

    def gallery_loaded(driver) -> list | bool:
        imgs = driver.find_elements(By.CSS_SELECTOR, "[data-testid=stImage] img")
        loaded = [i for i in imgs if driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", i)]
        return loaded if len(loaded) >= 1 + 2 * expected else False  # query + faces + photos

    WebDriverWait(browser, RESULT_TIMEOUT).until(gallery_loaded)
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "obama-240p.jpg: " in page and "d=" in page
    shot = tmp_path / "ui_search.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
