"""The real thing: gunicorn with several workers, over HTTP."""
import base64
import os
import shutil
import signal
import threading
import time

import pytest

from conftest import PASSWORD, USERNAME
from helpers import Gunicorn, KeptConnection, run_train, write_tiny_corpus
from helpers import call as http_call
from sentiment.model import read_header

TOKEN = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


def call(base, path, body=None, timeout=10):
    return http_call(base, path, body, auth=f"Basic {TOKEN}", timeout=timeout)


@pytest.fixture
def server(shipped_model, database_url, tmp_path):
    """gunicorn with two workers on a free loopback port."""
    model = tmp_path / "served.pkl"
    shutil.copy(shipped_model, model)
    env = {"MODEL_PATH": str(model), "DATABASE_URL": database_url,
           "BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": PASSWORD, "SECRET_KEY": "test"}
    server = Gunicorn(env, tmp_path / "gunicorn.log", workers=2).start()
    yield server.base, model, server.env, server.process
    server.stop()


def test_every_worker_serves_a_retrained_model_within_five_seconds(server, tmp_path):
    base, model, env, _ = server
    status, first = call(base, "/predict", {"text": "qué buena noticia"})
    assert status == 200
    old = first["model_version"]

    corpus = write_tiny_corpus(tmp_path / "tiny.csv")
    result = run_train("--no-corpora", "--no-feedback", "--data", corpus, "--output", str(model))
    assert result.returncode == 0, result.stderr
    new = read_header(str(model))["version"]
    assert new != old

    finished = time.monotonic()
    made = 1
    while True:
        versions = [call(base, "/predict", {"text": "hola"})[1]["model_version"] for _ in range(10)]
        made += len(versions)
        if set(versions) == {new}:
            break
        assert time.monotonic() - finished < 5, f"still serving {set(versions)} after 5 s"
        time.sleep(0.25)
    # Every prediction, from either worker, was stored.
    status, listed = call(base, "/predictions?per_page=1")
    assert status == 200 and listed["total"] == made


def test_hup_and_a_new_model_under_load_lose_no_request(server, tmp_path):
    """Clients keep predicting while the master gets `kill -HUP` (new workers,
    the old ones finish what they started) and while a retrained model
    replaces the file: every request is answered 200 and every answer was
    stored."""
    base, model, env, process = server
    corpus = write_tiny_corpus(tmp_path / "tiny.csv")
    retrained = tmp_path / "retrained.pkl"
    result = run_train("--no-corpora", "--no-feedback", "--data", corpus, "--output", str(retrained))
    assert result.returncode == 0, result.stderr
    old_version = call(base, "/health")[1]["model_version"]
    new_version = read_header(str(retrained))["version"]

    stop = threading.Event()
    answers, failures = [], []

    def client(n):
        # Half the clients keep their connection alive between requests: a
        # worker told to stop must answer what comes on it, not close it.
        kept = KeptConnection(base, f"Basic {TOKEN}") if n % 2 else None
        i = 0
        while not stop.is_set():
            i += 1
            text = {"text": f"cliente {n} pedido {i} me encanta"}
            try:
                if kept is None:
                    status, body = call(base, "/predict", text, timeout=30)
                else:
                    status, body = kept.call("/predict", text)
            except Exception as exc:  # a refused or dropped connection is a lost request
                failures.append(repr(exc))
                continue
            if status == 200:
                answers.append(body)
            else:
                failures.append((status, body))
        if kept is not None:
            kept.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        process.send_signal(signal.SIGHUP)        # graceful reload of the workers
        time.sleep(2.0)
        os.replace(retrained, model)              # what train.py does: rename over it
        time.sleep(2.5)
        process.send_signal(signal.SIGHUP)        # and once more, with the new model
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if answers and answers[-1]["model_version"] == new_version and len(answers) > 40:
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=40)

    assert failures == []
    versions = [a["model_version"] for a in answers]
    assert old_version in versions and new_version in versions
    assert process.poll() is None
    # Every acknowledged prediction is in the database, once.
    status, listed = call(base, "/predictions?per_page=1")
    assert status == 200 and listed["total"] == len(answers)
    assert len({a["id"] for a in answers}) == len(answers)
