"""pixflow-web in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium) against a real stack after a small run: the overview shows HGETALL pixflow:stats, a
replay clicked on the page re-queues a dead letter and a worker stores it, the search finds a
stored, an aliased, a dead and an invalid URL, the gallery shows the thumbnails, the console
with a token refuses a browser without it, and catalog text shows as text. Every page is saved
as a screenshot under build/screenshots/."""
import shutil
import time
import urllib.parse

import pytest

from conftest import BUILD_DIR
from web_helpers import (ALIASED, DEAD, HOSTILE, INVALID, REPLAYABLE, STORED, TOKEN, Console,
                         pipeline, run_worker)  # noqa: F401 (pipeline: a fixture)

# scripts/setup.sh installs selenium, chromium and chromium-driver: missing, the test fails.
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = BUILD_DIR / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def console(pipeline, tmp_path_factory):
    c = Console(pipeline.env, log_dir=tmp_path_factory.mktemp("console"))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--lang=en-US"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout=15):
    return WebDriverWait(driver, timeout).until(condition)


def shot(driver, name):
    """A screenshot of the whole page, as tall as its content."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(600, min(height + 120, 4000)))
    driver.save_screenshot(str(SHOTS / f"web-{name}.png"))
    driver.set_window_size(width, 1000)


def no_alert(driver):
    """A hostile catalog line that ran as script would have opened an alert."""
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    pytest.fail(f"catalog text ran as script: alert({text!r})")


def text_of(driver, element_id, needle):
    """The text of element_id once it holds needle; found again at each try, since a page
    redraws its view (the old element goes stale)."""
    def ready(d):
        found = d.find_elements(By.ID, element_id)
        try:
            return found and needle in found[0].text and found[0].text
        except Exception:  # replaced while being read
            return False
    return wait(driver, ready)


def open_search(driver, console, url):
    driver.get(console.url + "/#search")
    # The empty form page: no result of a previous search left.
    wait(driver, lambda d: d.find_elements(By.ID, "search-url")
         and not d.find_elements(By.ID, "search-status"))
    box = driver.find_element(By.ID, "search-url")
    box.clear()
    box.send_keys(url)
    driver.find_element(By.ID, "search-go").click()
    status = wait(driver, ec.presence_of_element_located((By.ID, "search-status")))
    return status.text


def test_overview_shows_the_counters_of_hgetall(browser, console, pipeline):
    browser.get(console.url + "/")
    wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#counters td.counter-value")))
    # Read in one script: the page redraws itself every 2 s.
    shown, stored, chart = browser.execute_script(
        "const c = {}; for (const td of document.querySelectorAll('#counters td.counter-value'))"
        " c[td.dataset.counter] = Number(td.textContent);"
        " return [c, document.getElementById('card-stored').textContent,"
        " document.getElementById('chart').getBoundingClientRect().height];")
    assert shown == pipeline.stats()
    assert stored == str(pipeline.stats()["stored"]) and chart > 100
    first = text_of(browser, "updated", "as of ")
    wait(browser, lambda d: text_of(d, "updated", "as of ") != first)  # polled, no reload
    shot(browser, "overview")
    browser.set_window_size(390, 844)  # a phone
    time.sleep(0.3)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1")
    browser.save_screenshot(str(SHOTS / "web-overview-phone.png"))
    browser.set_window_size(1280, 1000)
    no_alert(browser)


def test_search_finds_stored_aliased_dead_and_invalid(browser, console):
    assert open_search(browser, console, STORED) == "stored"
    assert browser.find_element(By.ID, "search-role").text == "source"
    shot(browser, "search-stored")
    assert open_search(browser, console, ALIASED) == "aliased"
    assert browser.find_element(By.ID, "search-role").text == "alias"
    assert open_search(browser, console, DEAD) == "dead"
    assert "http_404" in browser.find_element(By.ID, "search-dead").text
    shot(browser, "search-dead")
    assert open_search(browser, console, INVALID) == "invalid"
    assert "bad_scheme" in browser.find_element(By.ID, "search-invalid").text
    assert open_search(browser, console, "https://picsum.photos/4321/1") == "not seen"
    no_alert(browser)


def test_dead_letters_show_catalog_text_as_text(browser, console):
    browser.get(console.url + "/#dead")
    table = wait(browser, ec.presence_of_element_located((By.ID, "letters")))
    assert HOSTILE in table.text  # the characters, shown
    assert table.find_elements(By.TAG_NAME, "img") == []  # not an element
    shot(browser, "dead")
    no_alert(browser)


def test_replay_from_the_page_requeues_and_stores(browser, console, pipeline, tmp_path):
    letter = [l for l in pipeline.keys.dead() if l["url"] == REPLAYABLE][0]
    browser.get(console.url + "/#dead?reason=http_404")
    button = f"#letters tr[data-id='{letter['_id']}'] button.replay"

    def click(d):  # found again at each try: the list redraws itself (the old row goes stale)
        try:
            d.find_element(By.CSS_SELECTOR, button).click()
            return True
        except Exception:
            return False
    wait(browser, click)
    confirm = wait(browser, ec.alert_is_present())
    assert letter["_id"] in confirm.text
    confirm.accept()
    text_of(browser, "notice", "replayed 1")
    shot(browser, "dead-replayed")
    assert letter["_id"] not in [l["_id"] for l in pipeline.keys.dead()]
    run_worker(pipeline.env, tmp_path, "w-browser-replay")
    pipeline.refresh()
    assert open_search(browser, console, REPLAYABLE) == "stored"
    assert "a replayed dead letter" in browser.find_element(By.ID, "timeline").text
    shot(browser, "search-replayed")


def test_gallery_shows_the_stored_thumbnails(browser, console, pipeline):
    browser.get(console.url + "/#gallery")
    wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#gallery a.thumb")))
    ids = {d["_id"] for d in pipeline.db.images.find({}, {"_id": 1})}
    wait(browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#gallery img')].every(i => i.complete)"))
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#gallery a.thumb")
    assert {t.get_attribute("data-id") for t in thumbs} == ids
    for img in browser.find_elements(By.CSS_SELECTOR, "#gallery img"):
        assert browser.execute_script("return arguments[0].naturalWidth", img) > 0
    shot(browser, "gallery")
    thumbs[0].click()
    wait(browser, ec.presence_of_element_located((By.ID, "sources")))
    full = browser.find_element(By.CSS_SELECTOR, "#full img")
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", full) > 0)
    assert "grayscale" in browser.find_element(By.ID, "transforms").text
    assert browser.find_element(By.ID, "meta-encoder").text == "png:level=0"
    assert "libjpeg-turbo" in browser.find_element(By.ID, "meta-decoder").text
    kept = browser.find_element(By.ID, "original")
    assert "image/jpeg" in kept.text and "s3://" in kept.text, kept.text
    assert browser.find_element(By.ID, "original-link").get_attribute("href").startswith(
        console.url + "/api/originals/")
    shot(browser, "image")


def test_image_page_lists_every_url_of_the_picture(browser, console, pipeline):
    image = pipeline.db.sources.find_one({"_id": STORED})["image"]
    hostile = "https://picsum.photos/1/1?<img src=x onerror=alert(4)>"
    pipeline.db.sources.insert_one({"_id": hostile, "image": image, "role": "alias"})
    try:
        browser.get(console.url + "/#gallery")
        browser.get(console.url + "/#image/" + image)
        text = text_of(browser, "sources", hostile)
        assert STORED in text and ALIASED in text
        assert browser.find_element(By.ID, "sources").find_elements(By.TAG_NAME, "img") == []
        no_alert(browser)
    finally:
        pipeline.db.sources.delete_one({"_id": hostile})


def test_a_browser_without_the_token_is_refused(browser, pipeline, tmp_path):
    c = Console(pipeline.env, token=TOKEN, log_dir=tmp_path)
    try:
        browser.delete_all_cookies()
        browser.get(c.url + "/#overview")
        wait(browser, ec.presence_of_element_located((By.ID, "login")))
        assert browser.current_url.startswith(c.url + "/login")
        shot(browser, "login")
        browser.get(c.url + "/api/overview")
        assert "needs its token" in browser.find_element(By.TAG_NAME, "body").text
        browser.get(c.url + "/login")
        browser.find_element(By.ID, "token").send_keys("not the token")
        browser.find_element(By.ID, "login-submit").click()
        wait(browser, lambda d: "failed=1" in d.current_url)
        assert wait(browser, ec.visibility_of_element_located((By.ID, "login-failed")))
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "login-submit").click()
        wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#counters td")))
        assert browser.find_element(By.ID, "logout")
        # The session cookie is HttpOnly: no script on the page can read it.
        assert browser.execute_script("return document.cookie") == ""
    finally:
        c.close()


def test_overview_tables_keep_long_names_in_line(browser, console, pipeline):
    """A counter name longer than a phone's column: it wraps only between its parts, never
    inside one, and every number stays on one line in its column."""
    name = "failed:a_reason_name_much_longer_than_a_phone_column_allows"
    stats = pipeline.env["PIXFLOW_PREFIX"] + "stats"
    pipeline.redis.hset(stats, name, 1)
    try:
        for width in (1280, 390):
            browser.set_window_size(width, 900)
            browser.get(console.url + "/")
            wait(browser, lambda d: d.find_elements(
                By.CSS_SELECTOR, f'#counters td.counter-value[data-counter="{name}"]'))
            # Per row: the client rectangles of each text node of the name (one: not cut inside
            # a part), of the number (one: on one line), and the number cell's right edge.
            rows = browser.execute_script("""
                const lines = (node) => { const r = document.createRange(); r.selectNodeContents(node);
                                          return r.getClientRects().length; };
                return [...document.querySelectorAll('#counters tbody tr')].map((tr) => {
                  const parts = [...tr.cells[0].childNodes].filter((n) => n.nodeType === 3);
                  return [tr.cells[0].textContent, parts.map(lines), lines(tr.cells[1].firstChild),
                          Math.round(tr.cells[1].getBoundingClientRect().right)];
                });""")
            assert name in [r[0] for r in rows], rows
            for text, parts, number, _ in rows:
                assert set(parts) == {1} and number == 1, (width, text, parts, number)
            assert len({r[3] for r in rows}) == 1, (width, rows)
            if width == 390:
                wrapped = [r for r in rows if r[0] == name][0]
                assert len(wrapped[1]) > 1  # made of parts that could wrap
                assert browser.execute_script(
                    "return document.documentElement.scrollWidth <= window.innerWidth + 1")
                browser.save_screenshot(str(SHOTS / "web-overview-long-names-phone.png"))
    finally:
        pipeline.redis.hdel(stats, name)
        browser.set_window_size(1280, 1000)
