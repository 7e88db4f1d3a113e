"""The form page through the test client (the browser tests drive Chromium)."""
import re

from conftest import AUTH, csrf_token


def test_form_page_has_a_labelled_text_area(client):
    page = client.get("/", headers=AUTH)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<label for="text"' in html and '<textarea id="text" name="text"' in html


def test_submit_shows_the_answer_and_feedback_is_saved(client, count_rows):
    token = csrf_token(client)
    response = client.post("/", data={"text": "¡Qué bien lo pasamos en el concierto!",
                                      "csrf_token": token}, headers=AUTH)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/p/\d+", location)
    page = client.get(location, headers=AUTH).get_data(as_text=True)
    assert "¡Qué bien lo pasamos en el concierto!" in page
    assert 'id="label">positive<' in page
    assert count_rows() == (1, 0)

    saved = client.post(location + "/feedback", data={"label": "neutral", "csrf_token": token}, headers=AUTH,
                        follow_redirects=True)
    assert saved.status_code == 200
    html = saved.get_data(as_text=True)
    assert "saved “neutral”" in html
    assert "Your answer: <strong>neutral</strong>" in html
    assert count_rows() == (1, 1)


def test_blank_text_shows_the_form_again_with_an_error(client, count_rows):
    response = client.post("/", data={"text": "   ", "csrf_token": csrf_token(client)}, headers=AUTH)
    assert response.status_code == 400
    assert "is empty" in response.get_data(as_text=True)
    assert count_rows() == (0, 0)


def test_unknown_prediction_and_bad_label_are_readable_pages(client):
    missing = client.get("/p/424242", headers=AUTH)
    assert missing.status_code == 404
    assert "text/html" in missing.content_type and "no prediction with id 424242" in missing.get_data(as_text=True)
    token = csrf_token(client)
    client.post("/", data={"text": "hola", "csrf_token": token}, headers=AUTH)
    bad = client.post("/p/1/feedback", data={"label": "furious", "csrf_token": token}, headers=AUTH)
    assert bad.status_code == 400 and "text/html" in bad.content_type


def test_stored_text_is_escaped(client):
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    location = client.post("/", data={"text": evil, "csrf_token": csrf_token(client)},
                           headers=AUTH).headers["Location"]
    html = client.get(location, headers=AUTH).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
