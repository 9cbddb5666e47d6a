"""`zdg ui` in a real browser (Debian's Chromium + chromium-driver, Selenium) over a real store filled by the
main job on friends_poker.mp4: the live feed, search by photo, the annotated video, and corrections that last.

ZDG_SCREENSHOTS=DIR saves a screenshot of each main page there (docs/ holds the README's)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from nodes.matching.truth import load_truth
from nodes.store.evaluation import people_by_cluster, visit_rows
from tests.conftest import REPO, free_port, fresh_database, shared_path, wait_until_serving
from zdg.config import load_graph
from zdg.wiring import Transport, compile_plan

pytestmark = pytest.mark.browser
GRAPH = REPO / "graphs" / "video_reid.yaml"
TRUTH = REPO / "tests" / "data" / "friends_poker_truth.json"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def dsn(pg_server):
    with fresh_database(pg_server) as found:
        yield found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workbench")


@pytest.fixture(scope="module")
def env(dsn) -> dict:
    return {**os.environ, "ZDG_DSN": dsn, "ZDG_MODEL_ROOT": os.environ.get("ZDG_MODEL_ROOT") or str(shared_path("models"))}


def zdg(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "zdg", *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def run_clip(env: dict, workdir: Path, video_id: str) -> None:
    clip = shared_path("data", "videos", "friends_poker.mp4")
    zdg(env, "run", str(GRAPH), "--no-progress", "--run-dir", str(workdir / "run"), "--set", f"source.path={clip}",
        "--set", f"source.video_id={video_id}", "--set", f"gallery.out_dir={workdir / 'videos'}")


@pytest.fixture(scope="module")
def ui(env, workdir):
    """`zdg ui` on the module's store; its base URL."""
    link = next(link for link in compile_plan(load_graph(GRAPH)).external_topics() if link.topic == "reid")
    feed = Transport("ipc", workdir / "run").bind_address(link)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "zdg", "ui", "--port", str(port), "--feed", feed, "--videos",
                             str(workdir / "videos"), "--graph", str(GRAPH)], env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base, proc)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def screenshot(browser, name: str) -> None:
    folder = os.environ.get("ZDG_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / f"{name}.png"))


@pytest.fixture(scope="module")
def filled(ui, browser, env, workdir) -> int:
    """The clip run through the main job while the live page is open; the decisions the page showed."""
    from selenium.webdriver.common.by import By

    browser.get(f"{ui}/live")
    deadline = time.monotonic() + 10  # the page's EventSource is open (subscribed) before the graph publishes
    while not browser.execute_script("return document.querySelector('[data-feed=open]') !== null"):
        assert time.monotonic() < deadline, "the live feed never opened"
        time.sleep(0.1)
    run_clip(env, workdir, "friends_poker")
    deadline = time.monotonic() + 20
    while len(browser.find_elements(By.CSS_SELECTOR, "tr.decision")) < 16 and time.monotonic() < deadline:
        time.sleep(0.5)
    screenshot(browser, "live")
    return len(browser.find_elements(By.CSS_SELECTOR, "tr.decision"))


def click_and_load(browser, element_id: str) -> None:
    """Click a button that submits a form, and wait for the page it leads to."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, element_id).click()
    # mid-navigation Chromium may answer "node does not belong to the document" instead of "stale": ask again
    WebDriverWait(browser, 60, ignored_exceptions=(WebDriverException,)).until(expected_conditions.staleness_of(old))


def clusters_of_people(dsn: str, video: str) -> dict[str, int]:
    """Each truth person's cluster in a visit."""
    with psycopg.connect(dsn) as conn:
        found = people_by_cluster(visit_rows(conn, video, load_truth(TRUTH)))
    return {name: cluster for cluster, names in found.items() for name in names}


def test_the_live_feed_shows_every_decision_of_a_running_graph(filled):
    assert filled == 16, "13 people's sequences and 3 junk, each published once"


def test_identities_page_lists_the_six_people_with_their_appearances(ui, browser, filled, dsn):
    from selenium.webdriver.common.by import By

    browser.get(ui)
    cards = browser.find_elements(By.CSS_SELECTOR, ".identity")
    assert len(cards) == 6
    assert sum(int(c.text.split(" sequence")[0].split("\n")[-1]) for c in cards) == 13
    screenshot(browser, "identities")
    ross = clusters_of_people(dsn, "friends_poker")["Ross"]
    browser.get(f"{ui}/identity/{ross}")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.sequence")
    assert len(rows) >= 2 and all("friends_poker" in r.text for r in rows)
    assert all(img.get_property("naturalWidth") > 0 for img in browser.find_elements(By.CSS_SELECTOR, "tr.sequence img"))
    screenshot(browser, "identity")


def test_searching_with_photos_of_ross_ranks_ross_first_and_a_stranger_joins_nobody(ui, browser, filled, dsn):
    from selenium.webdriver.common.by import By

    ross = clusters_of_people(dsn, "friends_poker")["Ross"]
    photos = sorted(str(p) for p in shared_path("data", "faces", "friends_ref", "Ross").iterdir())
    browser.get(f"{ui}/search")
    browser.find_element(By.ID, "photos").send_keys("\n".join(photos))
    click_and_load(browser, "search")
    matches = browser.find_elements(By.CSS_SELECTOR, "tr.match")
    assert int(matches[0].get_attribute("data-id")) == ross
    assert "seen before" in matches[0].text
    screenshot(browser, "search")
    stranger = sorted(shared_path("data", "faces", "ageitgey_knn").rglob("*.jpg"))[0]
    browser.get(f"{ui}/search")
    browser.find_element(By.ID, "photos").send_keys(str(stranger))
    click_and_load(browser, "search")
    assert not any("seen before" in m.text for m in browser.find_elements(By.CSS_SELECTOR, "tr.match")), \
        "someone not in the clip is in no identity"


def test_the_annotated_video_plays_in_the_browser(ui, browser, filled):
    browser.get(f"{ui}/watch/friends_poker?t=2")
    state = "const v = document.getElementById('video'); return [v.readyState, v.error && v.error.message, v.currentTime]"
    deadline = time.monotonic() + 15
    while (found := browser.execute_script(state))[0] < 2 and found[1] is None and time.monotonic() < deadline:
        time.sleep(0.3)
    assert found[1] is None and found[0] >= 2, f"the player refused the video: {found}"
    assert browser.execute_async_script("const done = arguments[0]; document.getElementById('video').play()"
                                        ".then(() => done('playing'), e => done(String(e)))") == "playing"
    deadline = time.monotonic() + 10
    while browser.execute_script(state)[2] <= 2.5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert browser.execute_script(state)[2] > 2.5, "playback started at the sequence's time and moves on"


def test_a_split_and_a_cannot_link_survive_a_new_visit_and_maintenance(ui, browser, filled, dsn, env, workdir):
    from selenium.webdriver.common.by import By

    people = clusters_of_people(dsn, "friends_poker")
    ross, joey = people["Ross"], people["Joey"]
    with psycopg.connect(dsn) as conn:
        rosses = [r[0] for r in conn.execute("SELECT id FROM sequences WHERE cluster_id = %s", (ross,))]
    browser.get(f"{ui}/identity/{ross}")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.sequence")
    moved = int(rows[-1].get_attribute("data-sequence"))
    rows[-1].find_element(By.NAME, "sequence").click()
    click_and_load(browser, "split")
    assert "split from identity" in browser.find_element(By.ID, "message").text
    split_off = int(browser.current_url.split("/identity/")[1].split("?")[0])
    browser.find_element(By.CSS_SELECTOR, f"form[action$='/different'] option[value='{joey}']").click()
    click_and_load(browser, "different")
    assert "different person" in browser.find_element(By.ID, "message").text
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT cluster_id FROM sequences WHERE id = %s", (moved,)).fetchone()[0] == split_off
        assert set(conn.execute("SELECT a, b FROM cannot_links").fetchall()) == {
            tuple(sorted((ross, split_off))), tuple(sorted((split_off, joey)))}
        assert conn.execute("SELECT actor FROM cluster_events WHERE kind = 'split'").fetchone()[0] == "ui:127.0.0.1"
    run_clip(env, workdir, "friends_again")
    zdg(env, "maintain", "--graph", str(GRAPH))
    with psycopg.connect(dsn) as conn:
        now = dict(conn.execute("SELECT id, cluster_id FROM sequences WHERE id = ANY(%s)", (rosses,)).fetchall())
        clusters = {conn.execute("SELECT new_id FROM cluster_aliases WHERE old_id = %s", (c,)).fetchone() or (c,)
                    for c in (split_off, joey, ross)}
    stayed = {c for s, c in now.items() if s != moved}
    assert len(stayed) == 1 and now[moved] not in stayed, "the split stays split; the rest of Ross stays together"
    assert len(clusters) == 3, "split-off, Ross and Joey are three identities after the new visit and maintenance"
