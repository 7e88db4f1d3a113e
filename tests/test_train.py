"""python train.py: bad data is refused cleanly; feedback changes the next model."""
import json
import shutil

import pytest

from conftest import AUTH
from helpers import run_train, write_tiny_corpus
from sentiment.model import read_header


@pytest.fixture
def existing_model(shipped_model, tmp_path):
    path = tmp_path / "model.pkl"
    shutil.copy(shipped_model, path)
    return path


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("make_args, reason", [
    (lambda d: ["--data", str(d / "missing.csv")], "no such file"),
    (lambda d: ["--data", write(d / "cols.csv", "sentence,label\nhola,positive\n")], "missing column(s) text"),
    (lambda d: ["--data", write(d / "lab.csv", "text,label\nhola,happy\n")], "unknown label 'happy'"),
    (lambda d: ["--no-corpora", "--data", write(d / "empty.csv", "text,label\n")], "nothing to train on"),
    (lambda d: ["--no-corpora", "--data", write(d / "one.csv", "text,label\nhola,positive\nchau,positive\n")],
     "at least two different labels"),
])
def test_bad_data_ends_with_one_line_and_leaves_the_model(existing_model, tmp_path, make_args, reason):
    before = existing_model.read_bytes()
    result = run_train("--no-feedback", "--output", str(existing_model), *make_args(tmp_path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and reason in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert existing_model.read_bytes() == before


def test_training_writes_model_and_card(tmp_path):
    output = tmp_path / "m.pkl"
    corpus = write_tiny_corpus(tmp_path / "tiny.csv")
    result = run_train("--no-corpora", "--no-feedback", "--data", corpus, "--output", str(output),
                       "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "fitting" in result.stdout and "held-out report" in result.stdout
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["version"] == read_header(str(output))["version"]
    assert card["seed"] == 3
    assert set(card["held_out_metrics"]) == {"es", "en"}
    for metrics in card["held_out_metrics"].values():
        assert {"accuracy", "macro_f1", "confusion_matrix"} <= set(metrics)
    assert card["rows"]["by_language_and_label"]["es"] == {"negative": 5, "neutral": 5, "positive": 5}
    assert card["versions"]["scikit-learn"]


def test_feedback_loop_changes_the_next_answer(make_app, database_url, existing_model, tmp_path):
    """Predict, correct, retrain with `python train.py`, and the running
    server answers with the correction; the latest of two corrections wins."""
    app = make_app(MODEL_PATH=str(existing_model), MODEL_CHECK_INTERVAL=0)
    client = app.test_client()
    text = "Me encanta esta película, es maravillosa"
    first = client.post("/predict", json={"text": text}, headers=AUTH).get_json()
    assert first["label"] == "positive"
    # The same text corrected twice: first neutral, later negative.
    second = client.post("/predict", json={"text": text}, headers=AUTH).get_json()
    other = client.post("/predict", json={"text": "El museo cierra los lunes"}, headers=AUTH).get_json()
    assert client.post("/feedback", json={"prediction_id": first["id"], "label": "neutral"},
                       headers=AUTH).status_code == 201
    assert client.post("/feedback", json={"prediction_id": second["id"], "label": "negative"},
                       headers=AUTH).status_code == 201
    assert client.post("/feedback", json={"prediction_id": other["id"], "label": "positive"},
                       headers=AUTH).status_code == 201

    result = run_train("--output", str(existing_model),
                       env={"DATABASE_URL": database_url, "MODEL_PATH": str(existing_model)})
    assert result.returncode == 0, result.stderr
    assert "2 corrected texts" in result.stdout
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["rows"]["feedback"] == 2

    after = client.post("/predict", json={"text": text}, headers=AUTH).get_json()
    assert after["model_version"] != first["model_version"]
    assert after["label"] == "negative"
    assert client.post("/predict", json={"text": "El museo cierra los lunes"},
                       headers=AUTH).get_json()["label"] == "positive"

    # --no-feedback trains without them: the corrections are gone.
    result = run_train("--no-feedback", "--output", str(existing_model),
                       env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert client.post("/predict", json={"text": text}, headers=AUTH).get_json()["label"] == "positive"
