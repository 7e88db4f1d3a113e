"""Property-based tests: arbitrary JSON, unicode, control characters and huge
values at every endpoint. Never a 500, never a partial write."""
import base64
import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import AUTH, add_user, csrf_token
from sentiment.db import Feedback, Prediction, User, db

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# Every code point hypothesis can encode, control characters (NUL included)
# and astral ones among them.
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
HUGE_TEXT = st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(4990, 5010))
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80)
           | st.floats(allow_nan=True, allow_infinity=True) | TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
LABELISH = st.sampled_from(["positive", " Negative ", "NEUTRAL", "furious", ""]) | JSON
RAW = st.binary(max_size=200) | TEXT.map(str.encode) | JSON.map(lambda v: json.dumps(v).encode())
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data",
                                 "application/json; charset=latin-1", ""])


def counts(app):
    with app.app_context():
        return tuple(db.session.execute(db.select(db.func.count(model.id))).scalar_one()
                     for model in (Prediction, Feedback, User))


def snapshot(app):
    """Everything an endpoint could change, to compare before and after."""
    with app.app_context():
        feedback = sorted((f.id, f.label, f.rejected) for f in db.session.execute(
            db.select(Feedback)).scalars())
        users = sorted((u.username, u.role, u.active, u.password_hash)
                       for u in db.session.execute(db.select(User)).scalars())
        return counts(app), feedback, users


@pytest.fixture
def seeded(app, client):
    """One user `ben`, one prediction with feedback."""
    add_user(app, "ben", "ben-password-1")
    pid = client.post("/predict", json={"text": "vale"}, headers=AUTH).get_json()["id"]
    client.post("/feedback", json={"prediction_id": pid, "label": "neutral"}, headers=AUTH)
    return pid


def no_server_error(response):
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.mimetype == "application/json":
        body = response.get_json()
        if response.status_code >= 400:
            assert isinstance(body["error"], str) and body["error"]


@FUZZ
@given(body=JSON | st.fixed_dictionaries({"text": JSON | HUGE_TEXT})
       | st.fixed_dictionaries({"texts": st.lists(TEXT | HUGE_TEXT | JSON, max_size=5)}))
def test_predict_json(app, client, body):
    before = counts(app)
    response = client.post("/predict", json=body, headers=AUTH)
    no_server_error(response)
    added = counts(app)[0] - before[0]
    if response.status_code == 200:
        items = response.get_json().get("predictions", [response.get_json()])
        assert added == len(items) >= 1
    else:
        assert added == 0
    assert counts(app)[1:] == before[1:]


@FUZZ
@given(raw=RAW, content_type=CONTENT_TYPES, query=st.dictionaries(
    st.sampled_from(["text", "texts", "x"]), TEXT, max_size=2))
def test_predict_raw_bodies_and_query(app, client, raw, content_type, query):
    before = counts(app)
    response = client.post("/predict?" + urlencode(query), data=raw, headers=AUTH,
                           content_type=content_type)
    no_server_error(response)
    added = counts(app)[0] - before[0]
    assert added == (len(response.get_json().get("predictions", [1]))
                     if response.status_code == 200 else 0)


@FUZZ
@given(body=JSON | st.fixed_dictionaries({"prediction_id": JSON | st.integers()
                                          | st.integers(2**31 - 2, 2**63 + 2), "label": LABELISH}),
       use_real_id=st.booleans())
def test_feedback(app, client, seeded, body, use_real_id):
    if use_real_id and isinstance(body, dict) and "prediction_id" in body:
        body["prediction_id"] = seeded
    before = snapshot(app)
    response = client.post("/feedback", json=body, headers=AUTH)
    no_server_error(response)
    if response.status_code in (200, 201):
        assert body["label"].strip().lower() == response.get_json()["label"]
    else:
        assert snapshot(app) == before


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["page", "per_page", "username", "rejected",
                                               "role", "user", "since", "until"]),
                              TEXT | st.integers(-10**30, 10**30).map(str), max_size=4),
       path=st.sampled_from(["/predictions", "/feedback", "/feedback/export", "/users"]))
def test_listings_with_arbitrary_query(app, client, seeded, params, path):
    before = snapshot(app)
    response = client.get(path + "?" + urlencode(params), headers=AUTH)
    no_server_error(response)
    assert snapshot(app) == before


@FUZZ
@given(method=st.sampled_from(["post", "patch"]), body=JSON | st.fixed_dictionaries(
    {"username": TEXT | JSON, "password": TEXT | HUGE_TEXT | JSON, "role": LABELISH | st.just("admin"),
     "active": JSON}))
def test_user_management(app, client, seeded, method, body):
    before = snapshot(app)
    path = "/users" if method == "post" else "/users/ben"
    response = getattr(client, method)(path, json=body, headers=AUTH)
    no_server_error(response)
    if response.status_code not in (200, 201):
        assert snapshot(app) == before


@FUZZ
@given(body=JSON, feedback_id=st.integers(0, 2**70) | st.integers(2**31 - 2, 2**31 + 2))
def test_reject(app, client, seeded, body, feedback_id):
    before = snapshot(app)
    response = client.post(f"/feedback/{feedback_id}/reject", json=body, headers=AUTH)
    no_server_error(response)
    if response.status_code != 200:
        assert snapshot(app) == before


@FUZZ
@given(text=TEXT | HUGE_TEXT, label=TEXT, extra=st.dictionaries(TEXT, TEXT, max_size=3))
def test_page_forms(app, client, seeded, text, label, extra):
    token = csrf_token(client)
    before = snapshot(app)
    response = client.post("/", data=dict(extra, text=text, csrf_token=token), headers=AUTH)
    no_server_error(response)
    assert "text/html" in response.content_type
    assert counts(app)[0] - before[0][0] == (1 if response.status_code == 303 else 0)
    before = snapshot(app)
    response = client.post(f"/p/{seeded}/feedback", data={"label": label, "csrf_token": token},
                           headers=AUTH)
    no_server_error(response)
    if response.status_code != 303:
        assert snapshot(app) == before


@pytest.fixture
def unthrottled(make_app):
    return make_app(LOGIN_MAX_FAILURES_PER_CLIENT=10**6, LOGIN_MAX_FAILURES_PER_USER=10**6)


@FUZZ
@given(username=TEXT | HUGE_TEXT, password=TEXT | HUGE_TEXT)
def test_arbitrary_credentials(unthrottled, username, password):
    """Any user name and password, including control characters and huge
    ones: 401, never a 500, nothing stored but the failure."""
    token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode()
    response = unthrottled.test_client().post("/predict", json={"text": "hola"},
                                              headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 401
    assert counts(unthrottled)[0] == 0
