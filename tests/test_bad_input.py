"""Bad input gets a clear 4xx JSON answer, and nothing is stored."""
import pytest

from conftest import AUTH

LONG = "a" * 5001


@pytest.mark.parametrize("body, message", [
    ({}, "missing 'text'"),
    ({"text": ""}, "'text' is empty"),
    ({"text": "   \n\t "}, "'text' is empty"),
    ({"text": LONG}, "longer than 5000"),
    ({"text": 42}, "must be a string"),
    ({"text": None}, "missing 'text'"),
    ({"text": ["a"]}, "must be a string"),
    ({"text": "nul \x00 inside"}, "NUL"),
    ({"texts": []}, "'texts' is empty"),
    ({"texts": "hola"}, "must be a list"),
    ({"texts": ["ok", 3]}, "texts[1]"),
    ({"texts": ["ok", "  "]}, "texts[1]"),
    ({"texts": ["ok"] * 1001}, "at most 1000"),
    ({"texts": ["ok", LONG]}, "'texts[1]' is longer than 5000"),
    ({"texts": ["ok", "ñ", ""]}, "'texts[2]' is empty"),
    ({"texts": ["ok", None]}, "missing 'texts[1]'"),
    ({"texts": ["ok", "año\x00"]}, "'texts[1]' contains a NUL"),
    ({"texts": ["ok", "\u2003\n"]}, "'texts[1]' is empty"),
    ({"text": "a", "texts": ["b"]}, "not both"),
])
def test_bad_predict_bodies(client, count_rows, body, message):
    response = client.post("/predict", json=body, headers=AUTH)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert count_rows() == (0, 0)


@pytest.mark.parametrize("raw", ['{"text": ', "[1, 2", "not json at all", "{'text': 'x'}", "\xff"])
def test_malformed_json(client, count_rows, raw):
    response = client.post("/predict", data=raw, headers=AUTH, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("malformed JSON")
    assert count_rows() == (0, 0)


@pytest.mark.parametrize("raw", ['["a", "b"]', '"text"', "3", "null"])
def test_json_that_is_not_an_object(client, raw):
    response = client.post("/predict", data=raw, headers=AUTH, content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_unpaired_surrogate_is_refused(client, count_rows):
    response = client.post("/predict", data='{"text": "x\\ud800y"}', headers=AUTH,
                           content_type="application/json")
    assert response.status_code == 400
    assert "Unicode" in response.get_json()["error"]
    assert count_rows() == (0, 0)


def test_unpaired_surrogate_in_a_batch_is_refused_by_its_place(client, count_rows):
    response = client.post("/predict", data='{"texts": ["año", "x\\udc00y"]}', headers=AUTH,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "'texts[1]' is not valid Unicode (unpaired surrogate)"
    assert count_rows() == (0, 0)


def test_body_over_the_limit_is_413(make_app):
    app = make_app(MAX_CONTENT_LENGTH=1000)
    client = app.test_client()
    response = client.post("/predict", json={"text": "x" * 2000}, headers=AUTH)
    assert response.status_code == 413
    assert "too large" in response.get_json()["error"]
    with app.app_context():
        from sentiment.db import Prediction, db
        assert db.session.execute(db.select(db.func.count(Prediction.id))).scalar_one() == 0


@pytest.fixture
def prediction_id(client):
    return client.post("/predict", json={"text": "vale"}, headers=AUTH).get_json()["id"]


@pytest.mark.parametrize("body, status, message", [
    ({"label": "positive"}, 400, "missing 'prediction_id'"),
    ({"prediction_id": "PID"}, 400, "missing 'label'"),
    ({"prediction_id": "PID", "label": "happy"}, 400, "must be one of"),
    ({"prediction_id": "PID", "label": 1}, 400, "must be one of"),
    ({"prediction_id": "1", "label": "positive"}, 400, "must be an integer"),
    ({"prediction_id": True, "label": "positive"}, 400, "must be an integer"),
    ({"prediction_id": 1.5, "label": "positive"}, 400, "must be an integer"),
    ({"prediction_id": 987654, "label": "positive"}, 404, "no prediction"),
    ({"prediction_id": -1, "label": "positive"}, 404, "no prediction"),
    ({"prediction_id": 2**80, "label": "positive"}, 404, "no prediction"),
    ({"prediction_id": 2**31, "label": "positive"}, 404, "no prediction"),
    ({"prediction_id": 2**40, "label": "positive"}, 404, "no prediction"),
])
def test_bad_feedback(client, count_rows, prediction_id, body, status, message):
    body = {k: (prediction_id if v == "PID" else v) for k, v in body.items()}
    response = client.post("/feedback", json=body, headers=AUTH)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert count_rows() == (1, 0)


def test_feedback_needs_json(client, prediction_id):
    response = client.post("/feedback", data={"prediction_id": prediction_id, "label": "positive"},
                           headers=AUTH)
    assert response.status_code == 400
    assert "send JSON" in response.get_json()["error"]


def test_bad_feedback_keeps_the_earlier_feedback(client, prediction_id):
    client.post("/feedback", json={"prediction_id": prediction_id, "label": "positive"}, headers=AUTH)
    client.post("/feedback", json={"prediction_id": prediction_id, "label": "bogus"}, headers=AUTH)
    item = client.get("/predictions", headers=AUTH).get_json()["items"][0]
    assert item["feedback"] == "positive"


@pytest.mark.parametrize("query", ["page=0", "page=x", "per_page=0", "per_page=101", "per_page=-3"])
def test_bad_pagination(client, query):
    response = client.get(f"/predictions?{query}", headers=AUTH)
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_unknown_route_and_wrong_method_are_json(client):
    missing = client.get("/nothing-here", headers=AUTH)
    assert missing.status_code == 404 and missing.get_json() == {"error": "not found"}
    wrong = client.get("/predict", headers=AUTH)
    assert wrong.status_code == 405 and "error" in wrong.get_json()
