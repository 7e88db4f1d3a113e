"""The history, batch, insight pages and the two languages, through the
test client (tests/test_browser.py drives the same pages in Chromium)."""
import csv
import io
import os
import re

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from conftest import AUTH, ROOT, csrf_token
from sentiment.db import Prediction, db

ES = {**AUTH, "Accept-Language": "es-ES,es;q=0.9,en;q=0.5"}


def predict(client, *texts):
    """Store predictions through the API; their ids, oldest first."""
    body = client.post("/predict", json={"texts": list(texts)}, headers=AUTH).get_json()
    return [p["id"] for p in body["predictions"]]


def upload(client, name, content, path="/batch", headers=AUTH):
    """Post `content` as the file `name`, as the batch form does."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return client.post(path, data={"file": (io.BytesIO(data), name),
                                   "csrf_token": csrf_token(client)}, headers=headers,
                       content_type="multipart/form-data")


# --- languages ------------------------------------------------------------

def test_page_speaks_the_browsers_language(client):
    spanish = client.get("/", headers=ES).get_data(as_text=True)
    assert '<html lang="es">' in spanish and "¿Qué sentimiento expresa este texto?" in spanish
    english = client.get("/", headers={**AUTH, "Accept-Language": "en-US"}).get_data(as_text=True)
    assert '<html lang="en">' in english and "How does this text feel?" in english
    # A language the page does not have falls back to English.
    german = client.get("/", headers={**AUTH, "Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="en">' in german


def test_labels_are_shown_translated_but_the_api_stays_english(client):
    location = client.post("/", data={"text": "¡Me encanta este sitio!",
                                      "csrf_token": csrf_token(client)}, headers=ES).headers["Location"]
    page = client.get(location, headers=ES).get_data(as_text=True)
    assert 'id="label">positivo<' in page and "Sí, positivo" in page and "No, negativo" in page
    # The same page in English right after has no Spanish left in it.
    english = client.get(location, headers={**AUTH, "Accept-Language": "en"}).get_data(as_text=True)
    assert 'id="label">positive<' in english
    assert not re.search(r"negativo|positivo|Etiqueta|Sí,", english)
    api = client.post("/predict", json={"text": "¡Me encanta este sitio!"}, headers=ES).get_json()
    assert api["label"] == "positive"
    error = client.post("/predict", json={"text": ""}, headers=ES).get_json()
    assert error == {"error": "'text' is empty"}


def test_language_switch_is_remembered_and_only_goes_back_to_this_site(client):
    switched = client.get("/lang/es?next=/history%3Flabel%3Dpositive", headers=AUTH)
    assert switched.status_code == 303 and switched.headers["Location"] == "/history?label=positive"
    assert "lang=es" in switched.headers["Set-Cookie"]
    # The cookie now wins over the browser's English.
    page = client.get("/", headers={**AUTH, "Accept-Language": "en"}).get_data(as_text=True)
    assert "¿Qué sentimiento expresa este texto?" in page
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        assert client.get("/lang/en", query_string={"next": target}).headers["Location"] == "/"
    client.get("/lang/en")
    assert "How does this text feel?" in client.get("/", headers=ES).get_data(as_text=True)
    # An unknown language changes nothing.
    client.get("/lang/xx")
    assert "How does this text feel?" in client.get("/", headers=ES).get_data(as_text=True)


def test_the_compiled_spanish_catalogue_matches_its_source():
    folder = os.path.join(ROOT, "translations", "es", "LC_MESSAGES")
    def plain(value):  # plural forms come as lists or tuples
        return tuple(value) if isinstance(value, (list, tuple)) else value

    with open(os.path.join(folder, "messages.po"), "rb") as fh:
        source = {plain(m.id): plain(m.string) for m in read_po(fh) if m.id}
    with open(os.path.join(folder, "messages.mo"), "rb") as fh:
        compiled = {plain(m.id): plain(m.string) for m in read_mo(fh) if m.id}
    assert compiled == source, "run: pybabel compile -d translations"
    assert all(source.values()), "untranslated messages"


# --- history ----------------------------------------------------------------

def test_history_shows_only_my_predictions_newest_first(app, client):
    ids = predict(client, "primero", "segundo", "tercero")
    with app.app_context():
        db.session.add(Prediction(text="someone else's secret", label="neutral", score=0.5,
                                  p_negative=0.2, p_neutral=0.6, p_positive=0.2,
                                  model_version="x", username="someone-else"))
        db.session.commit()
    page = client.get("/history", headers=AUTH).get_data(as_text=True)
    assert "someone else&#39;s secret" not in page and "someone else's secret" not in page
    shown = re.findall(r'<li class="item" id="p(\d+)"', page)
    assert [int(i) for i in shown] == sorted(ids, reverse=True)
    assert "3 predictions" in page


def test_history_pages_and_filters(make_app):
    app = make_app(HISTORY_PER_PAGE=2)
    client = app.test_client()
    ids = predict(client, "Me encanta, es maravilloso", "Qué horror, lo odio", "El tren sale a las ocho",
                  "Es precioso, me encanta")
    client.post("/feedback", json={"prediction_id": ids[1], "label": "neutral"}, headers=AUTH)

    first = client.get("/history", headers=AUTH).get_data(as_text=True)
    assert re.findall(r'id="p(\d+)"', first) == [str(ids[3]), str(ids[2])]
    assert "page 1 of 2" in first and 'rel="next"' in first
    second = client.get("/history?page=2", headers=AUTH).get_data(as_text=True)
    assert re.findall(r'id="p(\d+)"', second) == [str(ids[1]), str(ids[0])]
    # A page past the end, or not a number, shows a real page, not an error.
    assert client.get("/history?page=99", headers=AUTH).status_code == 200
    assert client.get("/history?page=abc&label=furious&feedback=maybe", headers=AUTH).status_code == 200

    positive = client.get("/history?label=positive", headers=AUTH).get_data(as_text=True)
    assert sorted(re.findall(r'id="p(\d+)"', positive)) == sorted([str(ids[0]), str(ids[3])])
    given = client.get("/history?feedback=given", headers=AUTH).get_data(as_text=True)
    assert re.findall(r'id="p(\d+)"', given) == [str(ids[1])]
    assert "Your answer: <strong>neutral</strong>" in given
    none = client.get("/history?feedback=none&label=positive", headers=AUTH).get_data(as_text=True)
    assert str(ids[1]) not in re.findall(r'id="p(\d+)"', none)
    assert "Nothing matches" in client.get("/history?feedback=given&label=positive",
                                           headers=AUTH).get_data(as_text=True)


def test_feedback_from_the_history_goes_back_there_and_marks_the_row(client, count_rows):
    (pid,) = predict(client, "Me encanta")
    back = f"/history?label=positive#p{pid}"
    saved = client.post(f"/p/{pid}/feedback", data={"label": "neutral", "next": back,
                                                         "csrf_token": csrf_token(client)}, headers=AUTH)
    assert saved.status_code == 303 and saved.headers["Location"] == back
    page = client.get("/history?label=positive", headers=AUTH).get_data(as_text=True)
    item = page[page.index(f'id="p{pid}"'):]
    assert "Your answer: <strong>neutral</strong>" in item and "✓ Saved" in item
    assert count_rows() == (1, 1)
    # Somewhere off the site is never a way back.
    away = client.post(f"/p/{pid}/feedback", data={"label": "positive", "next": "https://evil.example/",
                                                        "csrf_token": csrf_token(client)},
                       headers=AUTH)
    assert away.headers["Location"] == f"/p/{pid}"


def test_long_texts_are_shortened_with_the_whole_text_one_click_away(client):
    long_text = "Una reseña muy larga. " * 20
    predict(client, long_text, "corto")
    page = client.get("/history", headers=AUTH).get_data(as_text=True)
    assert page.count("<details") == 1
    assert "show all" in page and long_text.strip() in page


# --- batch -------------------------------------------------------------------

def test_csv_upload_gives_back_a_csv_and_stores_every_text(client, count_rows):
    content = 'id,text,source\n1,"Me encanta, de verdad",web\n2,Horrible servicio,app\n\n3,El tren sale a las 8,web\n'
    response = upload(client, "reseñas.csv", content)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="reseas-sentiment.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0]) == ["text", "label", "score", "p_negative", "p_neutral", "p_positive"]
    assert [r["text"] for r in rows] == ["Me encanta, de verdad", "Horrible servicio", "El tren sale a las 8"]
    assert [r["label"] for r in rows[:2]] == ["positive", "negative"]
    for r in rows:
        probs = {k: float(r[f"p_{k}"]) for k in ("negative", "neutral", "positive")}
        assert sum(probs.values()) == pytest.approx(1, abs=1e-3)
        assert r["label"] == max(probs, key=probs.get)
    assert count_rows() == (3, 0)


def test_text_file_gives_one_text_per_line_and_csv_without_header_its_first_column(client):
    text = upload(client, "lines.txt", "\ufeffme encanta\n\nlo odio\r\n")
    assert [r["text"] for r in csv.DictReader(io.StringIO(text.get_data(as_text=True)))] == \
        ["me encanta", "lo odio"]
    plain = upload(client, "plain.csv", "me encanta,1\nlo odio,2\n")
    assert [r["text"] for r in csv.DictReader(io.StringIO(plain.get_data(as_text=True)))] == \
        ["me encanta", "lo odio"]


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", "", "The file is empty."),
    ("blank.txt", "\n  \n", "The file is empty."),
    ("header-only.csv", "text\n", "The file has no texts."),
    ("latin1.txt", "canción".encode("latin-1"), "The file is not UTF-8 text."),
    ("long.txt", "ok\n" + "x" * 5001 + "\n", "Row 2: &#39;text&#39; is longer than 5000 characters"),
])
def test_a_bad_file_gets_a_readable_message_and_nothing_is_stored(client, count_rows, name, content,
                                                                   message):
    response = upload(client, name, content)
    assert response.status_code == 400 and "text/html" in response.content_type
    assert message in response.get_data(as_text=True)
    assert count_rows() == (0, 0)


def test_too_many_rows_says_the_limit(make_app, count_rows):
    client = make_app(MAX_UPLOAD_ROWS=3).test_client()
    response = upload(client, "many.txt", "a\nb\nc\nd\n")
    assert response.status_code == 400
    assert "The file has 4 texts; at most 3 are allowed per file." in response.get_data(as_text=True)
    spanish = upload(client, "many.txt", "a\nb\nc\nd\n", headers=ES)
    assert "El archivo tiene 4 textos; se admiten como máximo 3 por archivo." in spanish.get_data(as_text=True)


def test_missing_file_is_a_readable_page(client):
    response = client.post("/batch", data={"csrf_token": csrf_token(client)}, headers=AUTH)
    assert response.status_code == 400 and "Choose a file to upload." in response.get_data(as_text=True)


def test_large_upload_is_labelled_in_api_sized_chunks(make_app, count_rows):
    client = make_app(MAX_BATCH_SIZE=2).test_client()
    response = upload(client, "five.txt", "uno\ndos\ntres\ncuatro\ncinco\n")
    assert response.status_code == 200
    assert len(response.get_data(as_text=True).strip().splitlines()) == 6
    assert count_rows() == (5, 0)


def test_texts_endpoint_reads_the_file_for_the_page_and_stores_nothing(client, count_rows):
    ok = upload(client, "lines.txt", "me encanta\nlo odio\n", path="/batch/texts")
    assert ok.status_code == 200
    assert ok.get_json() == {"texts": ["me encanta", "lo odio"], "chunk": 1000}
    bad = upload(client, "empty.txt", "", path="/batch/texts")
    assert bad.status_code == 400 and bad.get_json() == {"error": "The file is empty."}
    assert count_rows() == (0, 0)


def test_a_file_over_the_size_limit_is_refused_readably(make_app, count_rows):
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    page = upload(client, "big.txt", "me encanta\n" * 200)
    assert page.status_code == 413 and "text/html" in page.content_type
    assert "request body too large (limit 1000 bytes)" in page.get_data(as_text=True)
    # The page's script asks for JSON and gets its error as JSON.
    script = upload(client, "big.txt", "me encanta\n" * 200, path="/batch/texts",
                    headers={**AUTH, "Accept": "application/json"})
    assert script.status_code == 413
    assert script.get_json() == {"error": "request body too large (limit 1000 bytes)"}
    assert count_rows() == (0, 0)


# --- insight -----------------------------------------------------------------

def test_insight_without_data_says_so(client):
    page = client.get("/insight", headers=AUTH).get_data(as_text=True)
    assert page.count("No predictions yet.") == 2 and "No feedback yet." in page


def test_insight_charts_count_predictions_and_agreement(client):
    ids = predict(client, "Me encanta", "Lo odio", "Son las tres", "Qué maravilla")
    client.post("/feedback", json={"prediction_id": ids[0], "label": "positive"}, headers=AUTH)
    client.post("/feedback", json={"prediction_id": ids[1], "label": "neutral"}, headers=AUTH)
    page = client.get("/insight", headers=AUTH).get_data(as_text=True)
    assert page.count('<svg class="chart"') == 3
    # Today's bar says 4; the label mix has a bar piece per label present.
    assert re.search(r'class="fill-count"[^>]*><title>\d{4}-\d\d-\d\d: 4</title>', page)
    assert len(re.findall(r'<rect class="fill-(?:negative|neutral|positive)"', page)) == 3
    # One of the two feedbacks agreed with the model.
    assert "50% (1/2)" in page


# --- what every page promises ------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/history", "/batch", "/insight", "/p/1"])
def test_pages_have_no_inline_script_style_or_event_handlers(client, path):
    """Ready for a Content-Security-Policy without 'unsafe-inline'."""
    predict(client, "Me encanta")
    html = client.get(path, headers=AUTH).get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert "<style" not in html
