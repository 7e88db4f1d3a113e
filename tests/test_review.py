"""Feedback you can trust: rejecting rows, exporting them, and restricting
training to some roles, users and dates."""
import csv
import io
import json
from datetime import datetime

import pytest

from conftest import AUTH, add_user
from helpers import feedback_with_a_write_between, run_train, write_tiny_corpus
from sentiment.db import Feedback, db
from sentiment.training import parse_when, read_feedback


@pytest.fixture
def corrected(app, client):
    """Three corrections: two by the user `ana`, one by the admin."""
    ana = add_user(app, "ana", "ana-password-1")
    made = {}
    for who, headers, text, label in [("ana", ana, "la sopa estaba fría", "negative"),
                                      ("ana", ana, "el museo abre a las diez de la mañana", "neutral"),
                                      ("admin", AUTH, "qué gran noticia", "positive")]:
        pid = client.post("/predict", json={"text": text}, headers=headers).get_json()["id"]
        fid = client.post("/feedback", json={"prediction_id": pid, "label": label},
                          headers=headers).get_json()["id"]
        made[text] = (pid, fid)
    return made, ana


def trained_texts(app, **narrowing):
    with app.app_context():
        return sorted(r.text for r in read_feedback(**narrowing))


def test_rejected_feedback_never_trains_and_can_be_taken_back(app, client, corrected):
    made, ana = corrected
    fid = made["la sopa estaba fría"][1]
    response = client.post(f"/feedback/{fid}/reject", headers=AUTH)
    assert response.status_code == 200 and response.get_json()["rejected"] is True
    assert trained_texts(app) == ["el museo abre a las diez de la mañana", "qué gran noticia"]
    assert client.get("/feedback?rejected=true", headers=AUTH).get_json()["total"] == 1
    client.post(f"/feedback/{fid}/reject", json={"rejected": False}, headers=AUTH)
    assert len(trained_texts(app)) == 3


def test_a_user_cannot_lift_a_rejection_by_sending_it_again(app, client, corrected):
    made, ana = corrected
    pid, fid = made["la sopa estaba fría"]
    client.post(f"/feedback/{fid}/reject", headers=AUTH)
    again = client.post("/feedback", json={"prediction_id": pid, "label": "positive"}, headers=ana)
    assert again.status_code == 200 and again.get_json()["rejected"] is True
    assert "la sopa estaba fría" not in trained_texts(app)
    assert client.post(f"/feedback/{fid}/reject", headers=ana).status_code == 403


def test_a_rejection_committed_while_a_user_resends_their_feedback_stands(app, client, corrected):
    """An admin (another worker) rejects the row between the moment a user's
    new feedback starts and its write: the user's write must not put back
    the `rejected` it would have read before."""
    made, ana = corrected
    pid, fid = made["la sopa estaba fría"]
    again = feedback_with_a_write_between(
        app, client, "UPDATE FEEDBACK", "UPDATE feedback SET rejected = :yes WHERE id = :id",
        {"yes": True, "id": fid}, {"prediction_id": pid, "label": "positive"}, ana)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["rejected"] is True and again.get_json()["label"] == "positive"
    assert "la sopa estaba fría" not in trained_texts(app)


def test_reject_from_the_command_line(app, runner, corrected):
    made, _ = corrected
    fid = made["qué gran noticia"][1]
    result = runner.invoke(args=["feedback", "reject", str(fid)])
    assert result.exit_code == 0 and "rejected" in result.output
    assert "qué gran noticia" not in trained_texts(app)
    assert runner.invoke(args=["feedback", "reject", str(fid), "--undo"]).exit_code == 0
    assert "qué gran noticia" in trained_texts(app)
    missing = runner.invoke(args=["feedback", "reject", "999999"])
    assert missing.exit_code == 1 and "no feedback with id 999999" in missing.output


@pytest.mark.parametrize("path, status", [
    ("/feedback/999999/reject", 404), ("/feedback/0/reject", 404),
    ("/feedback/99999999999999999999999/reject", 404), ("/feedback/x/reject", 404),
])
def test_rejecting_an_unknown_row_is_404(client, path, status):
    assert client.post(path, headers=AUTH).status_code == status


def test_bad_rejected_value_is_400_and_changes_nothing(client, corrected):
    made, _ = corrected
    fid = made["el museo abre a las diez de la mañana"][1]
    response = client.post(f"/feedback/{fid}/reject", json={"rejected": "yes"}, headers=AUTH)
    assert response.status_code == 400
    assert client.get("/feedback?rejected=true", headers=AUTH).get_json()["total"] == 0


def test_training_can_keep_only_some_roles_users_and_dates(app, corrected):
    assert trained_texts(app, roles=["admin"]) == ["qué gran noticia"]
    assert trained_texts(app, roles=["user"]) == ["el museo abre a las diez de la mañana", "la sopa estaba fría"]
    assert trained_texts(app, users=["ana"], roles=["user", "admin"]) == [
        "el museo abre a las diez de la mañana", "la sopa estaba fría"]
    assert trained_texts(app, users=["nobody"]) == []
    with app.app_context():
        row = db.session.execute(db.select(Feedback).filter_by(label="neutral")).scalar_one()
        row.updated_at = datetime(2026, 1, 15, 12, 0)
        db.session.commit()
    assert trained_texts(app, since=parse_when("2026-02-01")) == [
        "la sopa estaba fría", "qué gran noticia"]
    assert trained_texts(app, until=parse_when("2026-01-15", end=True)) == ["el museo abre a las diez de la mañana"]
    assert trained_texts(app, since=parse_when("2026-01-15T12:00"),
                         until=parse_when("2026-01-15T12:00:01")) == ["el museo abre a las diez de la mañana"]


def test_export_is_the_training_csv(client, corrected):
    made, ana = corrected
    client.post(f"/feedback/{made['qué gran noticia'][1]}/reject", headers=AUTH)
    response = client.get("/feedback/export", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted((r["text"], r["label"], r["lang"]) for r in rows) == [
        ("el museo abre a las diez de la mañana", "neutral", "es"), ("la sopa estaba fría", "negative", "es")]
    only_admin = client.get("/feedback/export?role=admin", headers=AUTH).get_data(as_text=True)
    assert only_admin.strip() == "text,label,lang"
    assert client.get("/feedback/export", headers=ana).status_code == 403


@pytest.mark.parametrize("query", ["role=root", "since=yesterday", "until=2026-13-01", "user="])
def test_bad_export_filters_are_400(client, query):
    response = client.get(f"/feedback/export?{query}", headers=AUTH)
    assert response.status_code == 400 and "error" in response.get_json()


def test_train_py_restricts_feedback_and_reports_how_many_rows_it_used(
        app, client, corrected, database_url, tmp_path):
    made, _ = corrected
    client.post(f"/feedback/{made['el museo abre a las diez de la mañana'][1]}/reject", headers=AUTH)
    corpus = write_tiny_corpus(tmp_path / "tiny.csv")
    output = tmp_path / "m.pkl"
    env = {"DATABASE_URL": database_url}
    result = run_train("--no-corpora", "--data", corpus, "--output", str(output),
                       "--feedback-role", "user", "--feedback-since", "2020-01-01", env=env)
    assert result.returncode == 0, result.stderr
    assert "feedback: 1 of 3 rows used (1 rejected, 1 outside the chosen roles/users/dates)" \
        in result.stdout
    assert json.loads((tmp_path / "m.json").read_text())["rows"]["feedback"] == 1

    result = run_train("--no-corpora", "--data", corpus, "--output", str(output),
                       "--feedback-until", "2020-01-01", env=env)
    assert "feedback: 0 of 3 rows used" in result.stdout, result.stdout

    bad = run_train("--no-corpora", "--data", corpus, "--output", str(output),
                    "--feedback-since", "last week", env=env)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error:") and "is not a date" in bad.stderr
    assert "Traceback" not in bad.stderr
