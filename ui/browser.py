"""Driving the app in a real browser: `streamlit run` on a free localhost port and headless
Debian Chromium, kept off the network by its flags. Used by tests/test_ui_browser.py and
scripts/ui_screenshots.py (docs/ui/*.png), so both see the app the same way.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages `chromium` and
`chromium-driver`, installed by scripts/install_browser.sh) and the `selenium` package.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[1]
SIZE = (1400, 1000)  # the window every check and screenshot uses
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")
START_TIMEOUT = 120  # s for streamlit to answer its health check (slow on a busy 2-core machine)
IDLE_TIMEOUT = 180  # s for one script run to finish, on the same busy machine


class BrowserError(RuntimeError):
    """The app or the browser did not come up; the message holds the server's log tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(index: Path, log: Path) -> Iterator[str]:
    """`streamlit run ui/app.py -- --index INDEX` until the block ends; yields its URL."""
    port = free_port()
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "ui" / "app.py"),
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--", "--index", str(index)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrowserError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise BrowserError(f"streamlit did not answer within {START_TIMEOUT} s:\n"
                       f"{log.read_text()[-3000:]}")


def chromium(profile: Path):
    """A headless Chromium window of SIZE (the viewport, not counting browser chrome)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--window-size={SIZE[0]},{SIZE[1]}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * SIZE[0] - inner[0], 2 * SIZE[1] - inner[1])  # the viewport: SIZE
    return driver


def wait_idle(driver, timeout: float = IDLE_TIMEOUT) -> None:
    """Until the script run a click started has finished: while it runs, Streamlit marks the
    elements of the previous run stale (data-stale="true")."""
    from selenium.webdriver.common.by import By

    time.sleep(0.5)  # a click's rerun starts a moment later
    wait_until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-stale=true]"),
               timeout, "the app was still running")
    time.sleep(0.3)


def wait_until(driver, condition, timeout: float = 60, what: str = "condition not met"):
    """Poll `condition(driver)` until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition(driver)
        if result:
            return result
        time.sleep(0.2)
    raise BrowserError(f"{what} after {timeout} s")


def wait_text(driver, text: str, timeout: float = 60) -> None:
    """Until `text` shows anywhere on the page (markdown splits text over several elements)."""
    from selenium.webdriver.common.by import By

    wait_until(driver, lambda d: text in d.find_element(By.TAG_NAME, "body").text, timeout,
               f"no {text!r} on the page")


def goto_page(driver, page: str) -> None:
    """Pick a page in the sidebar."""
    from selenium.webdriver.common.by import By

    wait_until(driver, lambda d: d.find_elements(
        By.XPATH, f"//section[@data-testid='stSidebar']//label[.//p[text()={page!r}]]"),
        IDLE_TIMEOUT, f"no page {page!r} in the sidebar")[0].click()
    wait_idle(driver)


def click_key(driver, key: str) -> None:
    """Click the button whose widget key is `key` (Streamlit marks its container st-key-KEY)."""
    from selenium.webdriver.common.by import By

    button = driver.find_element(By.CSS_SELECTOR, f".st-key-{key} button")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    wait_idle(driver)


def similar_keys(driver, prefix: str) -> list[str]:
    """Keys of the "Similar" buttons under the faces of a gallery (`similar_<prefix>_<id>`)."""
    from selenium.webdriver.common.by import By

    keys = []
    for el in driver.find_elements(By.CSS_SELECTOR, f"[class*='st-key-similar_{prefix}_']"):
        keys += [c[len("st-key-"):] for c in el.get_attribute("class").split()
                 if c.startswith(f"st-key-similar_{prefix}_")]
    return keys


def images_loaded(driver) -> int:
    """How many images on the page have finished loading."""
    from selenium.webdriver.common.by import By

    return sum(bool(driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", i))
        for i in driver.find_elements(By.CSS_SELECTOR, "[data-testid=stImage] img"))


def pick_explore_faces(driver, n: int) -> None:
    """Pick the first `n` faces in Explore's by-id picker, then close it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, ".st-key-explore_pick input")
    for _ in range(n):
        box.click()
        box.send_keys(Keys.ENTER)
        wait_idle(driver)
        box = driver.find_element(By.CSS_SELECTOR, ".st-key-explore_pick input")
    box.send_keys(Keys.ESCAPE)
