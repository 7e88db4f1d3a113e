"""Loading, refusing and hot-reloading the model file."""
import os
import pickle
import shutil
import time

import pytest

from conftest import AUTH
from helpers import run_train, write_tiny_corpus
from sentiment.model import read_header, write_artifact


def test_model_from_another_sklearn_is_refused_with_503(make_app, shipped_model, tmp_path, caplog):
    path = tmp_path / "old.pkl"
    with open(shipped_model, "rb") as src:
        header = pickle.load(src)
        body = pickle.load(src)
    header["sklearn_version"] = "0.24.2"
    write_artifact(str(path), header, body)
    client = make_app(MODEL_PATH=str(path)).test_client()
    health = client.get("/health")
    assert health.status_code == 503
    assert "retrain" in health.get_json()["error"] and "0.24.2" in health.get_json()["error"]
    response = client.post("/predict", json={"text": "hola"}, headers=AUTH)
    assert response.status_code == 503
    assert "python train.py" in response.get_json()["error"]
    assert "0.24.2" in caplog.text


@pytest.mark.parametrize("content", [b"", b"not a pickle", pickle.dumps({"format": 99})])
def test_unreadable_model_file_is_503_not_a_crash(make_app, tmp_path, content):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    client = make_app(MODEL_PATH=str(path)).test_client()
    assert client.get("/health").status_code == 503
    assert client.post("/predict", json={"text": "hola"}, headers=AUTH).status_code == 503


def test_missing_model_file_is_503(make_app, tmp_path):
    client = make_app(MODEL_PATH=str(tmp_path / "none.pkl")).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["model_version"] is None


def test_retrained_model_is_served_without_restart(make_app, shipped_model, tmp_path):
    path = tmp_path / "live.pkl"
    shutil.copy(shipped_model, path)
    client = make_app(MODEL_PATH=str(path)).test_client()
    before = client.post("/predict", json={"text": "hola"}, headers=AUTH).get_json()["model_version"]

    corpus = write_tiny_corpus(tmp_path / "tiny.csv")
    result = run_train("--no-corpora", "--no-feedback", "--data", corpus, "--output", str(path))
    assert result.returncode == 0, result.stderr
    new_version = read_header(str(path))["version"]
    assert new_version != before

    deadline = time.monotonic() + 5
    seen = before
    while seen != new_version and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = client.post("/predict", json={"text": "hola"}, headers=AUTH).get_json()["model_version"]
    assert seen == new_version
    assert client.get("/health").get_json()["model_version"] == new_version


def test_a_broken_new_file_keeps_the_running_model(make_app, shipped_model, tmp_path):
    path = tmp_path / "live.pkl"
    shutil.copy(shipped_model, path)
    app = make_app(MODEL_PATH=str(path), MODEL_CHECK_INTERVAL=0)
    client = app.test_client()
    version = client.get("/health").get_json()["model_version"]
    path.write_bytes(b"garbage")
    response = client.post("/predict", json={"text": "hola"}, headers=AUTH)
    assert response.status_code == 200
    assert response.get_json()["model_version"] == version


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "m.pkl"
    write_artifact(str(target), {"format": 1, "version": "x"}, {"pipeline": None})
    assert os.listdir(tmp_path) == ["m.pkl"]
    assert read_header(str(target))["version"] == "x"
