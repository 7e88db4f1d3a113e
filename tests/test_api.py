"""The JSON API contract."""
import pytest

from conftest import AUTH, USERNAME
from helpers import feedback_with_a_write_between


def predict(client, text):
    response = client.post("/predict", json={"text": text}, headers=AUTH)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_predict_returns_label_score_probabilities_and_stores_it(client, count_rows):
    body = predict(client, "Me encantó la película, la volvería a ver mil veces")
    assert set(body) == {"id", "text", "label", "score", "probabilities", "model_version"}
    probs = body["probabilities"]
    assert set(probs) == {"negative", "neutral", "positive"}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
    assert body["label"] == max(probs, key=probs.get)
    assert body["score"] == pytest.approx(probs["positive"] + probs["neutral"] / 2)
    assert 0.0 <= body["score"] <= 1.0
    assert count_rows() == (1, 0)

    listed = client.get("/predictions", headers=AUTH).get_json()
    assert listed["items"][0]["id"] == body["id"]
    assert listed["items"][0]["username"] == USERNAME
    assert listed["items"][0]["label"] == body["label"]


@pytest.mark.parametrize("text, label", [
    ("Me encanta, es lo mejor que compré este año", "positive"),
    ("Qué desastre de servicio, no vuelvo nunca más", "negative"),
    ("I absolutely love this, best purchase ever", "positive"),
    ("This is the worst support I have ever dealt with", "negative"),
    ("El tren sale de la estación a las ocho y cuarto", "neutral"),
])
def test_shipped_model_gets_clear_cases_right(client, text, label):
    assert predict(client, text)["label"] == label


def test_text_as_query_or_form_parameter(client, count_rows):
    by_query = client.post("/predict?text=me%20encanta", headers=AUTH)
    by_form = client.post("/predict", data={"text": "me encanta"}, headers=AUTH)
    assert by_query.status_code == by_form.status_code == 200
    assert by_query.get_json()["text"] == by_form.get_json()["text"] == "me encanta"
    assert count_rows() == (2, 0)


def test_json_without_content_type_is_read_as_json(client):
    # What `curl -d '{"text": ...}'` sends when the header is forgotten.
    response = client.post("/predict", data='{"text": "hola"}', headers=AUTH,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert response.get_json()["text"] == "hola"


def test_batch_predicts_and_stores_every_text_in_order(client, count_rows):
    texts = ["genial", "horrible", "mañana es martes", "not bad at all"]
    response = client.post("/predict", json={"texts": texts}, headers=AUTH)
    assert response.status_code == 200
    body = response.get_json()
    assert [p["text"] for p in body["predictions"]] == texts
    assert len({p["id"] for p in body["predictions"]}) == 4
    assert all(p["model_version"] == body["model_version"] for p in body["predictions"])
    assert count_rows() == (4, 0)


def test_batch_of_a_thousand_is_accepted(client, count_rows):
    texts = [f"texto número {i}" for i in range(1000)]
    response = client.post("/predict", json={"texts": texts}, headers=AUTH)
    assert response.status_code == 200
    assert count_rows() == (1000, 0)


def test_feedback_is_stored_and_a_later_one_replaces_it(client, count_rows):
    pid = predict(client, "La comida llegó fría")["id"]
    first = client.post("/feedback", json={"prediction_id": pid, "label": "negative"}, headers=AUTH)
    assert first.status_code == 201
    assert first.get_json()["label"] == "negative"
    assert first.get_json()["prediction_id"] == pid
    second = client.post("/feedback", json={"prediction_id": pid, "label": "neutral"}, headers=AUTH)
    assert second.status_code == 200
    assert second.get_json()["label"] == "neutral"
    assert second.get_json()["id"] == first.get_json()["id"]
    assert count_rows() == (1, 1)
    item = client.get("/predictions", headers=AUTH).get_json()["items"][0]
    assert item["feedback"] == "neutral"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_first_feedback_stored_by_another_request_meanwhile_is_replaced(app, client,
                                                                          count_rows):
    """Two first feedbacks on one prediction at once: the other request's
    INSERT commits between this one's UPDATE (no row yet) and its INSERT.
    This one then replaces it, as a later feedback does: one row, this
    label, 200. (PostgreSQL: on SQLite the write lock keeps the other out.)"""
    pid = predict(client, "La comida llegó fría")["id"]
    answer = feedback_with_a_write_between(
        app, client, "INSERT INTO FEEDBACK",
        "INSERT INTO feedback (prediction_id, label, username, role, rejected, created_at, "
        "updated_at) VALUES (:pid, 'positive', :user, 'admin', false, now(), now())",
        {"pid": pid, "user": USERNAME}, {"prediction_id": pid, "label": "negative"}, AUTH)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["label"] == "negative"
    assert count_rows() == (1, 1)
    item = client.get("/predictions", headers=AUTH).get_json()["items"][0]
    assert item["feedback"] == "negative"


def test_predictions_are_paginated_newest_first(client):
    ids = [predict(client, f"frase {i}")["id"] for i in range(5)]
    page1 = client.get("/predictions?page=1&per_page=2", headers=AUTH).get_json()
    page3 = client.get("/predictions?page=3&per_page=2", headers=AUTH).get_json()
    assert page1["total"] == 5 and page1["page"] == 1 and page1["per_page"] == 2
    assert [i["id"] for i in page1["items"]] == ids[::-1][:2]
    assert [i["id"] for i in page3["items"]] == ids[:1]
    empty = client.get("/predictions?page=9&per_page=2", headers=AUTH).get_json()
    assert empty["items"] == [] and empty["total"] == 5


def test_health_needs_no_credentials(client, app):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["model_version"] == app.extensions["sentiment_model"].get().version
