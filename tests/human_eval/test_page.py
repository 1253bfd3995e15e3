"""The rating page in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium).

One export of six pairs is rated end to end: a bad rater id is refused, pairs are rated with clicks and with
keys, one rating is undone, the page is reloaded mid-way and must resume where it was, both videos must play
in step, and the downloaded ``ratings.csv`` must hold exactly what was chosen.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from vqvideo.data.shards import write_shard
from vqvideo.human_eval.export import export_pairs, page_html

pytestmark = pytest.mark.browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

N_PAIRS = 6


def _sample_set(folder: Path, clips: list[int], moving: bool) -> None:
    """A tiny sample set: a bar that moves (``moving``) or stays (copy-last-like), 16 frames of 32x32."""
    videos = np.zeros((len(clips), 16, 32, 32, 3), np.uint8)
    for i, clip in enumerate(clips):
        for t in range(16):
            x = (4 + (t if moving else 0) + clip) % 24
            videos[i, t, 10:20, x:x + 6] = (220, 40 * (clip % 6), 60)
    write_shard(folder / "shard-00000.h5", {"videos": videos, "clip": np.asarray(clips, np.int64),
                                            "sample": np.zeros(len(clips), np.int64)})


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("he_page")
    _sample_set(root / "a", list(range(N_PAIRS)), moving=True)
    _sample_set(root / "b", list(range(N_PAIRS)), moving=False)
    export_pairs(root / "a", root / "b", root / "out", n_pairs=N_PAIRS, seed=3, resolution=None, upscale=4,
                 fps=10, progress=False)
    return root / "out"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900",
                f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    # headless Chromium takes its download folder from the DevTools protocol, not always from the prefs
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _wait(driver, cond, timeout=10, what="condition"):
    return WebDriverWait(driver, timeout).until(lambda d: cond(d), message=f"timed out waiting for {what}")


def _current_pair(driver) -> str:
    return driver.execute_script("return document.getElementById('rate-panel').dataset.pair")


def _progress(driver) -> str:
    # textContent, not .text: the progress line is hidden once every pair is rated
    return driver.execute_script("return document.getElementById('progress').textContent")


def _press(driver, key) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(key)


def test_rate_every_pair_reload_and_download(export, browser):
    url = (export / "page" / "index.html").resolve().as_uri()
    browser.get(url)
    assert browser.find_element(By.ID, "rate-panel").is_displayed() is False

    # a rater id with markup is refused, and the message is text
    box = browser.find_element(By.ID, "rater")
    box.send_keys("<b>x</b>", Keys.ENTER)
    assert "rater id" in browser.find_element(By.ID, "start-error").text
    assert browser.find_element(By.ID, "start-panel").is_displayed()
    box.clear()
    box.send_keys("r-07")
    browser.find_element(By.ID, "start").click()
    _wait(browser, lambda d: d.find_element(By.ID, "rate-panel").is_displayed(), what="rating panel")
    assert _progress(browser) == f"0 of {N_PAIRS} rated"
    assert browser.find_element(By.ID, "rater-label").text == "Rater r-07"

    # the MP4s play (H.264 in Debian's Chromium) and the two sides run in step
    _wait(browser, lambda d: d.execute_script(
        "const l = document.getElementById('left-video'), r = document.getElementById('right-video');"
        "return l.currentTime > 0.2 && r.currentTime > 0.2;"), what="both videos playing")
    drift = browser.execute_script(
        "return Math.abs(document.getElementById('left-video').currentTime"
        " - document.getElementById('right-video').currentTime)")
    assert drift < 0.15
    assert browser.execute_script("return document.getElementById('left-video').currentSrc").endswith(".mp4")

    expected = []  # (pair_id, choice) in the order rated

    def rate(action, choice):
        pid = _current_pair(browser)
        action()
        _wait(browser, lambda d: _progress(d).startswith(f"{len(expected) + 1} of"), what=f"rating of {pid}")
        expected.append((pid, choice))

    rate(lambda: browser.find_element(By.ID, "choose-left").click(), "left")
    rate(lambda: _press(browser, Keys.ARROW_RIGHT), "right")
    rate(lambda: _press(browser, "2"), "same")

    # undo with Z takes the last rating back, and that pair is shown again
    _press(browser, "z")
    _wait(browser, lambda d: _progress(d).startswith(f"{len(expected) - 1} of"), what="undo")
    undone = expected.pop()
    assert _current_pair(browser) == undone[0]
    rate(lambda: browser.find_element(By.ID, "choose-same").click(), "same")

    # reload mid-way: same rater, same progress, same next pair
    next_pair = _current_pair(browser)
    browser.refresh()
    _wait(browser, lambda d: d.find_element(By.ID, "rate-panel").is_displayed(), what="resumed panel")
    assert _progress(browser) == f"3 of {N_PAIRS} rated"
    assert browser.find_element(By.ID, "rater-label").text == "Rater r-07"
    assert _current_pair(browser) == next_pair

    rate(lambda: _press(browser, "1"), "left")
    rate(lambda: browser.find_element(By.ID, "choose-right").click(), "right")
    rate(lambda: _press(browser, Keys.ARROW_DOWN), "same")
    _wait(browser, lambda d: d.find_element(By.ID, "done-panel").is_displayed(), what="done panel")
    assert browser.find_element(By.ID, "rate-panel").is_displayed() is False

    # every pair exactly once, in this rater's own order
    pair_ids = [row["pair_id"] for row in csv.DictReader((export / "page" / "pairs.csv").open())]
    assert sorted(p for p, _ in expected) == sorted(pair_ids)

    browser.find_element(By.ID, "download").click()
    target = browser.downloads / "ratings.csv"
    deadline = time.time() + 10
    while not target.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert target.exists(), f"no download in {browser.downloads}: {list(browser.downloads.iterdir())}"
    rows = list(csv.reader(target.open(newline="")))
    assert rows[0] == ["rater_id", "pair_id", "choice"]
    assert rows[1:] == [["r-07", pid, choice] for pid, choice in expected]

    # another rater gets the pairs in a different (seeded) order, starting from nothing
    first_order = [p for p, _ in expected]
    browser.find_element(By.ID, "switch-rater").click()
    box = browser.find_element(By.ID, "rater")
    box.send_keys("r-08", Keys.ENTER)
    _wait(browser, lambda d: d.find_element(By.ID, "rate-panel").is_displayed(), what="second rater")
    assert _progress(browser) == f"0 of {N_PAIRS} rated"
    second = []
    for _ in range(N_PAIRS):
        second.append(_current_pair(browser))
        _press(browser, "3")
        _wait(browser, lambda d, n=len(second): _progress(d).startswith(f"{n} of"), what="second rater rating")
    assert sorted(second) == sorted(first_order) and second != first_order


def test_page_shows_data_as_text(tmp_path, browser):
    """A title full of markup is shown literally: nothing from the data is parsed as HTML or script."""
    src = Path(__file__).resolve().parents[2] / "src" / "vqvideo" / "human_eval" / "page"
    for name in ("app.js", "style.css"):
        shutil.copy(src / name, tmp_path / name)
    from vqvideo.human_eval.export import Pair

    evil = '</script><img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    pairs = [Pair("p001", 0, "a", "b", "00aa", "00bb")]
    (tmp_path / "index.html").write_text(page_html((src / "index.html").read_text(), pairs, title=evil))
    browser.get((tmp_path / "index.html").resolve().as_uri())
    assert browser.find_element(By.ID, "title").text == evil
    assert browser.title == evil
    assert browser.execute_script("return window.pwned === undefined")


def test_served_over_http_and_gif_fallback(export, browser):
    """The same page from a plain static server (python -m http.server); a browser without H.264 gets the GIFs."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(export / "page"))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
        "source": "HTMLMediaElement.prototype.canPlayType = function () { return ''; };"})
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        box = browser.find_element(By.ID, "rater")
        box.clear()
        box.send_keys("web-1", Keys.ENTER)
        _wait(browser, lambda d: d.find_element(By.ID, "rate-panel").is_displayed(), what="rating panel over http")
        assert browser.find_element(By.ID, "left-video").is_displayed() is False
        _wait(browser, lambda d: d.execute_script(
            "const l = document.getElementById('left-gif'), r = document.getElementById('right-gif');"
            "return l.complete && r.complete && l.naturalWidth > 0 && r.naturalWidth > 0;"), what="GIFs loaded")
        assert browser.find_element(By.ID, "left-gif").get_attribute("src").endswith(".gif")
        _press(browser, Keys.ARROW_LEFT)
        _wait(browser, lambda d: _progress(d) == f"1 of {N_PAIRS} rated", what="a rating over http")
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
        server.shutdown()
        server.server_close()
