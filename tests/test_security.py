"""Hostile pages and inputs: CSRF, cross-site API writes, stored markup,
security headers, bodies over the limit."""
import re

import pytest
from markupsafe import escape

from conftest import AUTH, csrf_token

EVIL_TEXTS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "' onmouseover='alert(3)",
    "</textarea><script>alert(4)</script>",
    "</blockquote><svg/onload=alert(5)>",
    "{{ 7*7 }}{% raw %}",
]


def test_a_form_post_without_the_token_is_refused_and_stores_nothing(client, count_rows):
    response = client.post("/", data={"text": "hola"}, headers=AUTH)
    assert response.status_code == 400
    assert "text/html" in response.content_type
    assert "CSRF token is missing" in response.get_data(as_text=True)
    bad = client.post("/", data={"text": "hola", "csrf_token": "forged"}, headers=AUTH)
    assert bad.status_code == 400
    assert count_rows() == (0, 0)


def test_feedback_form_without_the_token_is_refused(client, count_rows):
    pid = client.post("/predict", json={"text": "hola"}, headers=AUTH).get_json()["id"]
    response = client.post(f"/p/{pid}/feedback", data={"label": "negative"}, headers=AUTH)
    assert response.status_code == 400
    assert count_rows() == (1, 0)


def test_a_token_from_another_session_does_not_work(app, count_rows):
    """An attacker's own token (their session) is useless in the victim's."""
    attacker, victim = app.test_client(), app.test_client()
    token = csrf_token(attacker)
    csrf_token(victim)  # the victim has a session of their own
    response = victim.post("/", data={"text": "hola", "csrf_token": token}, headers=AUTH)
    assert response.status_code == 400
    assert count_rows() == (0, 0)


def test_every_page_form_carries_a_token(client):
    pid = client.post("/predict", json={"text": "hola"}, headers=AUTH).get_json()["id"]
    for path in ("/", f"/p/{pid}"):
        html = client.get(path, headers=AUTH).get_data(as_text=True)
        forms = re.findall(r"<form\b.*?</form>", html, re.S)
        assert forms
        for form in forms:
            assert 'type="hidden" name="csrf_token" value="' in form


def test_the_session_cookie_is_not_sent_cross_site_or_readable_by_scripts(client):
    client.get("/", headers=AUTH)
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.same_site == "Lax" and cookie.http_only


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
], ids=["other-origin", "null-origin", "sec-fetch-cross-site", "sec-fetch-same-site"])
@pytest.mark.parametrize("kind", ["json", "text/plain", "form", "query"])
def test_cross_site_api_writes_are_refused(client, count_rows, headers, kind):
    """What a hostile page can make a browser send with the cached Basic
    credentials: a form post, a text/plain "simple" request, a query."""
    headers = dict(AUTH, **headers)
    if kind == "json":
        response = client.post("/predict", json={"text": "hola"}, headers=headers)
    elif kind == "text/plain":
        response = client.post("/predict", data='{"text": "hola"}', headers=headers,
                               content_type="text/plain")
    elif kind == "form":
        response = client.post("/predict", data={"text": "hola"}, headers=headers)
    else:
        response = client.post("/predict?text=hola", headers=headers)
    assert response.status_code == 403
    assert "cross-site request refused" in response.get_json()["error"]
    assert count_rows() == (0, 0)


def test_cross_site_feedback_and_admin_writes_are_refused(client, count_rows):
    pid = client.post("/predict", json={"text": "hola"}, headers=AUTH).get_json()["id"]
    evil = dict(AUTH, Origin="https://evil.example")
    response = client.post("/feedback", data=f'{{"prediction_id": {pid}, "label": "negative"}}',
                           headers=evil, content_type="text/plain")
    assert response.status_code == 403
    assert client.post("/users", json={"username": "mallory", "password": "long-enough"},
                       headers=evil).status_code == 403
    assert count_rows() == (1, 0)
    assert len(client.get("/users", headers=AUTH).get_json()["users"]) == 1


def test_same_origin_browsers_and_curl_keep_working(client, count_rows):
    same = dict(AUTH, Origin="http://localhost", **{"Sec-Fetch-Site": "same-origin"})
    assert client.post("/predict", json={"text": "hola"}, headers=same).status_code == 200
    # curl sends neither header, and may send JSON as a form (curl -d).
    assert client.post("/predict", data='{"text": "hola"}', headers=AUTH,
                       content_type="application/x-www-form-urlencoded").status_code == 200
    token = csrf_token(client)
    page = client.post("/", data={"text": "hola", "csrf_token": token},
                       headers=dict(same, **{"Sec-Fetch-Site": "same-origin"}))
    assert page.status_code == 303
    assert count_rows() == (3, 0)


@pytest.mark.parametrize("evil", EVIL_TEXTS)
def test_stored_markup_renders_inert_on_every_page(client, evil):
    token = csrf_token(client)
    location = client.post("/", data={"text": evil, "csrf_token": token},
                           headers=AUTH).headers["Location"]
    html = client.get(location, headers=AUTH).get_data(as_text=True)
    # Shown as the text it is: escaped, never evaluated as markup or template.
    assert str(escape(evil)) in html
    if "<" in evil or "'" in evil:
        assert evil not in html
    assert "<script>alert" not in html and "<img src=x" not in html and "<svg/onload" not in html
    assert "onerror=alert(2)>" not in html.replace("&gt;", ">").split("&lt;img")[0]
    assert "49" not in html.split("<blockquote")[1].split("</blockquote>")[0]
    # Shown back (escaped) in the error page and the refilled form too.
    refilled = client.post("/", data={"text": evil + "x" * 5000, "csrf_token": token},
                           headers=AUTH).get_data(as_text=True)
    assert "<script>alert" not in refilled and "<img src=x" not in refilled
    # And in JSON, served as JSON (never sniffed as HTML).
    listed = client.get("/predictions", headers=AUTH)
    assert listed.content_type == "application/json"
    assert listed.get_json()["items"][0]["text"] == evil


@pytest.mark.parametrize("method, path, auth", [
    ("get", "/", True), ("get", "/health", False), ("get", "/predictions", True),
    ("post", "/predict", True), ("get", "/nothing", True), ("get", "/", False),
    ("get", "/static/style.css", False),
])
def test_security_headers_on_every_response(client, method, path, auth):
    kwargs = {"headers": AUTH} if auth else {}
    if method == "post":
        kwargs["json"] = {"text": "hola"}
    response = getattr(client, method)(path, **kwargs)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    response.close()


def test_pages_have_no_inline_script_or_style(client):
    pid = client.post("/predict", json={"text": "hola"}, headers=AUTH).get_json()["id"]
    for path in ("/", f"/p/{pid}", "/p/999999"):
        html = client.get(path, headers=AUTH).get_data(as_text=True)
        # Scripts only from files (<script src=...>), which the CSP allows.
        assert not re.search(r"<script(?![^>]*\ssrc=)", html)
        assert "<style" not in html and " style=" not in html
        assert not re.search(r"\son[a-z]+=", html)


def test_body_over_the_limit_is_413_json_for_every_write(make_app, count_rows):
    app = make_app(MAX_CONTENT_LENGTH=1000)
    client = app.test_client()
    big = "x" * 2000
    for path, kwargs in [("/predict", {"json": {"text": big}}),
                         ("/feedback", {"json": {"prediction_id": 1, "label": big}}),
                         ("/users", {"json": {"username": big, "password": big}}),
                         ("/predict", {"data": {"text": big}})]:
        response = client.post(path, headers=AUTH, **kwargs)
        assert response.status_code == 413, path
        assert "too large" in response.get_json()["error"]
    assert count_rows() == (0, 0)
