"""End to end in headless Chromium against a live gunicorn: what a person
does on the page, with JavaScript on and off. A screenshot of each page, at
desktop and phone width, goes to artifacts/screenshots/.

Needs Debian's chromium and chromium-driver (.ci/run installs them); without
them these tests skip, except under CI (CI=true), where they fail.
"""
import csv
import io
import os
import shutil
import urllib.request

import pytest

from conftest import AUTH, PASSWORD, USERNAME
from helpers import ROOT, Gunicorn, missing

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = os.path.join(ROOT, "artifacts", "screenshots")
SPANISH = "La comida estaba buenísima y el camarero fue muy amable"


def _need_browser():
    """Skip (fail under CI) unless Chromium, its driver and selenium exist."""
    absent = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        absent.append("the selenium package")
    if absent:
        missing(f"browser tests need {', '.join(absent)} (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def live_server(shipped_model, tmp_path_factory):
    """gunicorn on a free loopback port over a fresh SQLite file."""
    _need_browser()
    tmp = tmp_path_factory.mktemp("live")
    model = tmp / "model.pkl"
    shutil.copy(shipped_model, model)
    env = {"MODEL_PATH": str(model), "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite'}",
           "BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": PASSWORD, "SECRET_KEY": "test"}
    server = Gunicorn(env, tmp / "gunicorn.log", workers=1).start()
    yield server.base
    server.stop()


def _driver(language, javascript=True):
    """Headless Chromium that asks for `language` and sends our credentials
    with every request, fetch() included."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--lang={language}", "--window-size=1280,900", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    prefs = {"intl.accept_languages": language}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {
        "Authorization": AUTH["Authorization"], "Accept-Language": language}})
    driver.implicitly_wait(0)
    return driver


@pytest.fixture(scope="module")
def browser(live_server):
    """A Spanish-speaking browser with JavaScript on."""
    driver = _driver("es-ES,es")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def plain_browser(live_server):
    """An English-speaking browser with JavaScript off."""
    driver = _driver("en-GB,en", javascript=False)
    yield driver
    driver.quit()


def wait_for(driver, css, timeout=10, visible=True):
    """The first element matching `css`, once it is there (and visible)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    condition = EC.visibility_of_element_located if visible else EC.presence_of_element_located
    return WebDriverWait(driver, timeout).until(condition((By.CSS_SELECTOR, css)))


def find(driver, css):
    """The first element matching `css`, now."""
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css)


def find_all(driver, css):
    """Every element matching `css`, now."""
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, css)


# Every visible element with text of its own, and its contrast ratio
# (WCAG 2) against the first opaque background behind it.
CONTRAST_JS = """
function channels(css) { return css.match(/[\\d.]+/g).map(Number); }
function background(el) {
  for (; el; el = el.parentElement) {
    var c = channels(getComputedStyle(el).backgroundColor);
    if (c.length < 4 || c[3] > 0) { return c; }
  }
  return [255, 255, 255];
}
function luminance(c) {
  var v = c.slice(0, 3).map(function (x) {
    x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
var out = [];
document.querySelectorAll("body *").forEach(function (el) {
  if (el.closest("svg") || !el.getClientRects().length) { return; }
  var own = Array.from(el.childNodes).some(function (n) {
    return n.nodeType === 3 && n.textContent.trim();
  });
  if (!own || getComputedStyle(el).visibility === "hidden") { return; }
  var f = luminance(channels(getComputedStyle(el).color)), b = luminance(background(el));
  out.push([el.tagName + " " + el.textContent.trim().slice(0, 30),
            (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05)]);
});
return out;
"""


def screenshot(driver, name):
    """The whole page at desktop width and at phone width (390 CSS px)."""
    import base64

    os.makedirs(SCREENSHOTS, exist_ok=True)
    low = [(text, round(ratio, 2)) for text, ratio in driver.execute_script(CONTRAST_JS)
           if ratio < 4.5]
    assert not low, f"{name}: text below 4.5:1 contrast: {low}"
    for width, height, mobile, suffix in ((1280, 900, False, "desktop"), (390, 844, True, "phone")):
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        # The page must fit the width: nothing scrolls sideways.
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} scrolls sideways at {width}px"
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}})
        with open(os.path.join(SCREENSHOTS, f"{name}-{suffix}.png"), "wb") as fh:
            fh.write(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_spanish_sentence_answer_feedback_history_without_reloads(browser, live_server):
    from selenium.webdriver.common.keys import Keys

    browser.get(live_server + "/")
    assert browser.find_element("tag name", "html").get_attribute("lang") == "es"
    assert "¿Qué sentimiento expresa este texto?" in find(browser, "h1").text
    screenshot(browser, "01-form-es")
    # A mark that a full page load would wipe out.
    browser.execute_script("window.notReloaded = true")
    box = find(browser, "#text")
    box.send_keys(SPANISH)
    box.send_keys(Keys.CONTROL, Keys.ENTER)

    label = wait_for(browser, "#label")
    assert label.text == "positivo"
    assert "badge-positive" in label.get_attribute("class")
    assert browser.execute_script("return window.notReloaded === true")
    assert browser.current_url.rsplit("/", 2)[-2] == "p"
    assert float(find(browser, "#score").text) > 0.5
    assert [row.text.split()[0] for row in find_all(browser, "table.probs th")] == \
        ["negativo", "neutral", "positivo"]
    screenshot(browser, "02-answer-es")

    # One click corrects the answer; the page says it was saved, still no reload.
    find(browser, "button[value='neutral']").click()
    notice = wait_for(browser, ".notice")
    assert "se guardó «neutral»" in notice.text
    assert browser.execute_script("return window.notReloaded === true")
    assert find(browser, "button[value='neutral']").get_attribute("aria-pressed") == "true"
    assert "Tu respuesta: neutral" in find(browser, "#feedback-status").text
    screenshot(browser, "03-feedback-saved-es")

    # The history lists it, with the feedback, and the feedback is editable there.
    find(browser, "nav a[href='/history']").click()
    first = wait_for(browser, "ol.history li")
    assert SPANISH in first.text and "Tu respuesta: neutral" in first.text
    browser.execute_script("window.notReloaded = true")
    first.find_element("css selector", "button[value='positive']").click()
    saved = wait_for(browser, "ol.history li .saved")
    assert browser.execute_script("return window.notReloaded === true")
    item = find(browser, "ol.history li")
    assert "Tu respuesta: positivo" in item.text and "Guardado" in saved.text
    screenshot(browser, "04-history-saved-es")
    # Filtered by "no feedback yet", it is gone; by "feedback given", it is there.
    browser.get(live_server + "/history?feedback=none")
    assert SPANISH not in find(browser, "main").text
    browser.get(live_server + "/history?feedback=given&label=positive")
    assert SPANISH in find(browser, "ol.history").text
    screenshot(browser, "04-history-filtered-es")


def test_language_switch_is_remembered(browser, live_server):
    browser.get(live_server + "/history")
    find(browser, "a.lang-switch[hreflang='en']").click()
    wait_for(browser, "html[lang='en']", visible=False)
    assert "Your history" in find(browser, "h1").text
    assert browser.current_url.endswith("/history")
    # The choice outlives the page: the next page is English though the
    # browser still asks for Spanish.
    browser.get(live_server + "/")
    assert "How does this text feel?" in find(browser, "h1").text
    screenshot(browser, "05-form-en")
    find(browser, "a.lang-switch[hreflang='es']").click()
    wait_for(browser, "html[lang='es']", visible=False)


def test_batch_upload_shows_progress_and_offers_the_csv(browser, live_server, tmp_path):
    path = tmp_path / "reseñas.csv"
    path.write_text('id,text\n1,"Me encanta, de verdad"\n2,Horrible servicio\n3,El tren sale a las 8\n',
                    encoding="utf-8")
    browser.get(live_server + "/batch")
    find(browser, "#file").send_keys(str(path))
    find(browser, "form.batch button").click()
    done = wait_for(browser, "#batch-done")
    assert "3" in done.text
    assert find(browser, "#progress").get_attribute("value") == "3"
    link = wait_for(browser, "#download-link")
    assert link.get_attribute("download") == "reseas-sentiment.csv"
    content = browser.execute_script(
        "var x = new XMLHttpRequest(); x.open('GET', arguments[0], false); x.send(); "
        "return x.responseText;", link.get_attribute("href"))
    rows = list(csv.DictReader(io.StringIO(content)))
    assert [r["text"] for r in rows] == ["Me encanta, de verdad", "Horrible servicio", "El tren sale a las 8"]
    assert [r["label"] for r in rows][:2] == ["positive", "negative"]
    assert all(abs(sum(float(r[k]) for k in ("p_negative", "p_neutral", "p_positive")) - 1) < 0.01
               for r in rows)
    screenshot(browser, "06-batch-done-es")
    # The texts are in the history.
    browser.get(live_server + "/history")
    assert "Horrible servicio" in find(browser, "ol.history").text

    empty = tmp_path / "vacío.txt"
    empty.write_text("\n\n", encoding="utf-8")
    browser.get(live_server + "/batch")
    find(browser, "#file").send_keys(str(empty))
    find(browser, "form.batch button").click()
    assert "El archivo está vacío." in wait_for(browser, "#batch-status .error").text
    screenshot(browser, "07-batch-error-es")


def _api(base, path, body):
    """POST JSON to the live server as the test user."""
    import json
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={
        **AUTH, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_insight_draws_its_charts(browser, live_server):
    made = _api(live_server, "/predict", {"texts": ["qué asco de día", "me encanta", "son las tres"]})
    _api(live_server, "/feedback", {"prediction_id": made["predictions"][0]["id"], "label": "negative"})
    browser.get(live_server + "/insight")
    charts = find_all(browser, "svg.chart")
    assert len(charts) == 3
    # Bars were drawn: the day's predictions, the label mix, the agreement.
    assert find_all(browser, "svg.chart rect.fill-count")
    assert find_all(browser, "svg.chart rect.fill-positive")
    assert find_all(browser, "svg.chart rect.fill-agree")
    screenshot(browser, "08-insight-es")


def test_everything_works_with_javascript_off(plain_browser, live_server):
    browser = plain_browser
    browser.get(live_server + "/")
    assert browser.find_element("tag name", "html").get_attribute("lang") == "en"
    find(browser, "#text").send_keys("What a wonderful surprise, thank you so much!")
    find(browser, "form.ask button").click()
    assert wait_for(browser, "#label").text == "positive"
    find(browser, "button[value='positive']").click()
    assert "saved “positive”" in wait_for(browser, ".notice").text
    screenshot(browser, "09-answer-saved-nojs-en")
    browser.get(live_server + "/history")
    long_item = "This is a long review. " * 12
    # Shortened with a way to see it all, in the page without scripts.
    browser.get(live_server + "/")
    find(browser, "#text").send_keys(long_item)
    find(browser, "form.ask button").click()
    wait_for(browser, "#label")
    browser.get(live_server + "/history")
    summary = wait_for(browser, "ol.history li details summary")
    full = find(browser, "ol.history li details .full")
    assert not full.is_displayed()
    summary.click()
    assert full.is_displayed() and long_item.strip() in full.text
    screenshot(browser, "10-history-nojs-en")
    browser.get(live_server + "/p/424242")
    assert "no prediction with id 424242" in find(browser, "p.error").text
    screenshot(browser, "11-not-found-nojs-en")


def test_keyboard_only_reaches_every_control_with_a_visible_focus(browser, live_server):
    from selenium.webdriver.common.keys import Keys

    browser.get(live_server + "/")
    body = find(browser, "body")
    seen = []
    for _ in range(12):
        body.send_keys(Keys.TAB) if not seen else browser.switch_to.active_element.send_keys(Keys.TAB)
        element = browser.switch_to.active_element
        outline = browser.execute_script(
            "var s = getComputedStyle(arguments[0]); return s.outlineStyle + ' ' + s.outlineWidth;", element)
        seen.append((element.tag_name, element.get_attribute("id") or element.text, outline))
        if element.get_attribute("id") == "text":
            break
    assert seen[-1][1] == "text", seen
    assert all(outline.startswith("solid") for _, _, outline in seen), seen
