"""Nothing lost under concurrency: real gunicorn, several workers, many
clients, SQLite and PostgreSQL; then a SIGKILL in the middle of the load.
Traffic goes only to 127.0.0.1, bounded in count and time."""
import base64
import http.client
import json
import shutil
import threading
import time

import pytest
import sqlalchemy

from conftest import PASSWORD, USERNAME
from helpers import Gunicorn
from helpers import call as http_call

CLIENTS = 8
PER_CLIENT = 200
LABELS = ("negative", "neutral", "positive")


def header(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


ADMIN = header(USERNAME, PASSWORD)


def call(base, path, body=None, auth=ADMIN, method=None, timeout=30):
    return http_call(base, path, body, auth=auth, method=method, timeout=timeout)


@pytest.fixture
def server_env(shipped_model, database_url, tmp_path):
    model = tmp_path / "served.pkl"
    shutil.copy(shipped_model, model)
    return {"MODEL_PATH": str(model), "DATABASE_URL": database_url,
            "BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": PASSWORD,
            "SECRET_KEY": "test"}


@pytest.fixture
def server(server_env, tmp_path):
    gunicorn = Gunicorn(server_env, tmp_path / "gunicorn.log", workers=3).start()
    yield gunicorn
    gunicorn.stop()


def stored(database_url):
    """(predictions {id: (text, username)}, feedback {prediction_id: [labels]}),
    read straight from the database, not through the service."""
    from sentiment.config import database_url as resolve
    engine = sqlalchemy.create_engine(resolve(database_url, "/nonexistent"))
    try:
        with engine.connect() as conn:
            predictions = {row.id: (row.text, row.username) for row in conn.execute(
                sqlalchemy.text("SELECT id, text, username FROM prediction"))}
            feedback = {}
            for row in conn.execute(sqlalchemy.text("SELECT prediction_id, label FROM feedback")):
                feedback.setdefault(row.prediction_id, []).append(row.label)
    finally:
        engine.dispose()
    return predictions, feedback


def make_users(base):
    users = []
    for i in range(CLIENTS):
        name, password = f"client{i}", f"client-password-{i}"
        status, _ = call(base, "/users", {"username": name, "password": password})
        assert status == 201
        users.append((name, header(name, password)))
    return users


def client_loop(base, name, auth, count, acked, errors, stop):
    """Predict a unique text, then correct it; remember what was acknowledged."""
    for i in range(count):
        if stop.is_set():
            return
        text = f"{name} mensaje {i}: me gusta bastante"
        try:
            status, body = call(base, "/predict", {"text": text}, auth=auth)
            if status != 200:
                errors.append((status, body))
                continue
            acked["predictions"].append((body["id"], text, name))
            label = LABELS[i % 3]
            status, body = call(base, "/feedback", {"prediction_id": body["id"], "label": label},
                                auth=auth)
            if status != 201:
                errors.append((status, body))
                continue
            acked["feedback"].append((body["prediction_id"], label))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # A kill mid-response cuts the connection or the body (no answer,
            # so nothing acknowledged).
            errors.append(("connection", repr(exc)))
            if stop.is_set():
                return


def run_clients(base, users, count, stop):
    acked = {"predictions": [], "feedback": []}
    errors = []
    threads = [threading.Thread(target=client_loop, args=(base, name, auth, count, acked, errors, stop))
               for name, auth in users]
    for thread in threads:
        thread.start()
    return threads, acked, errors


def test_concurrent_clients_lose_and_duplicate_nothing(server, database_url):
    users = make_users(server.base)
    started = time.monotonic()
    threads, acked, errors = run_clients(server.base, users, PER_CLIENT, threading.Event())
    for thread in threads:
        thread.join(timeout=600)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []  # no "database is locked", no 5xx, no refused connection
    assert len(acked["predictions"]) == len(acked["feedback"]) == CLIENTS * PER_CLIENT
    print(f"\n{database_url.split(':')[0]}: {CLIENTS} clients x {PER_CLIENT} predictions + feedback "
          f"= {2 * CLIENTS * PER_CLIENT} requests in {elapsed:.1f}s "
          f"({2 * CLIENTS * PER_CLIENT / elapsed:.0f} requests/s)")

    predictions, feedback = stored(database_url)
    assert len(predictions) == CLIENTS * PER_CLIENT
    for pid, text, name in acked["predictions"]:
        assert predictions[pid] == (text, name)
    assert len({text for text, _ in predictions.values()}) == len(predictions)  # each once
    for pid, label in acked["feedback"]:
        assert feedback[pid] == [label]
    assert sum(len(labels) for labels in feedback.values()) == CLIENTS * PER_CLIENT


def test_batches_stored_at_once_by_several_workers_answer_their_own_ids(server, database_url):
    """Every id in a batch's answer is the stored row of that very text,
    while other workers store batches and single texts at the same time."""
    users = make_users(server.base)
    answered, errors = [], []

    def batches(name, auth):
        for b in range(6):
            texts = [f"{name} lote {b} texto {i}: {'genial' if i % 2 else 'un desastre'}"
                     for i in range(60)]
            status, body = call(server.base, "/predict", {"texts": texts}, auth=auth)
            if status != 200 or [p["text"] for p in body["predictions"]] != texts:
                errors.append((status, body))
                continue
            answered.extend((p["id"], p["text"], name) for p in body["predictions"])
            status, body = call(server.base, "/predict", {"text": f"{name} suelto {b}"}, auth=auth)
            if status != 200:
                errors.append((status, body))
                continue
            answered.append((body["id"], f"{name} suelto {b}", name))

    threads = [threading.Thread(target=batches, args=user) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert len(answered) == CLIENTS * 6 * 61
    predictions, _ = stored(database_url)
    assert len(predictions) == len(answered)
    for pid, text, name in answered:
        assert predictions[pid] == (text, name)


def test_sigkill_mid_load_loses_no_acknowledged_write(server_env, database_url, tmp_path):
    gunicorn = Gunicorn(server_env, tmp_path / "gunicorn.log", workers=3).start()
    try:
        users = make_users(gunicorn.base)
        stop = threading.Event()
        threads, acked, errors = run_clients(gunicorn.base, users, 10**6, stop)
        deadline = time.monotonic() + 120
        while len(acked["feedback"]) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        gunicorn.kill()  # SIGKILL to master and every worker, mid-request
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert len(acked["feedback"]) >= 300

        gunicorn.start()
        status, listed = call(gunicorn.base, "/predictions?per_page=1")
        assert status == 200
    finally:
        gunicorn.stop()

    predictions, feedback = stored(database_url)
    assert listed["total"] == len(predictions)
    for pid, text, name in acked["predictions"]:
        assert predictions[pid] == (text, name)
    for pid, label in acked["feedback"]:
        assert feedback[pid] == [label]
    # A request cut off by the kill may have been stored without an answer,
    # but nothing is stored twice.
    assert len({text for text, _ in predictions.values()}) == len(predictions)
    assert len(predictions) - len(acked["predictions"]) <= len(users)
    if database_url.startswith("sqlite"):
        engine = sqlalchemy.create_engine(database_url)
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("PRAGMA integrity_check")).scalar() == "ok"
        engine.dispose()


@pytest.fixture
def small_limit_server(server_env, tmp_path):
    gunicorn = Gunicorn(dict(server_env, MAX_CONTENT_LENGTH="100000",
                             LOGIN_MAX_FAILURES_PER_USER="4", LOGIN_FAILURE_WINDOW="3"),
                        tmp_path / "gunicorn.log", workers=3).start()
    yield gunicorn
    gunicorn.stop()


def raw_request(port, headers, chunks, read_timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=read_timeout)
    conn.putrequest("POST", "/predict", skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    try:
        for chunk in chunks:
            conn.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before taking everything
    response = conn.getresponse()
    status, body = response.status, json.loads(response.read())
    conn.close()
    return status, body


def test_over_the_limit_is_413_before_the_body_is_read_whole(small_limit_server, database_url):
    port = small_limit_server.port
    base = {"Authorization": ADMIN, "Content-Type": "application/json"}
    # Announced as a gigabyte, only 1 KB ever sent: the answer cannot wait for the rest.
    started = time.monotonic()
    status, body = raw_request(port, dict(base, **{"Content-Length": str(10**9)}), [b"x" * 1024])
    assert status == 413 and "too large" in body["error"]
    assert time.monotonic() - started < 5
    # Chunked, no length announced: 300 KB sent against a 100 KB limit, the
    # last chunk never sent, and still an answer.
    piece = b"x" * 10000
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 30
    status, body = raw_request(port, dict(base, **{"Transfer-Encoding": "chunked"}), chunks)
    assert status == 413 and "too large" in body["error"]
    # A small chunked body is fine.
    payload = json.dumps({"text": "me encanta"}).encode()
    status, body = raw_request(port, dict(base, **{"Transfer-Encoding": "chunked"}),
                               [b"%x\r\n%s\r\n" % (len(payload), payload), b"0\r\n\r\n"])
    assert status == 200 and body["text"] == "me encanta"
    assert len(stored(database_url)[0]) == 1


def test_failed_sign_ins_are_throttled_across_workers(small_limit_server):
    """Each request is a new connection, spread over 3 worker processes: the
    limit holds for all of them together, and lifts when the window passes."""
    base = small_limit_server.base
    wrong = header(USERNAME, "wrong password")
    statuses = [call(base, "/predictions", auth=wrong)[0] for _ in range(4)]
    assert statuses == [401] * 4
    started = time.monotonic()
    for _ in range(6):  # whichever worker answers, the right password is refused for now
        status, body = call(base, "/predictions")
        assert status == 429 and "too many failed sign-ins" in body["error"]
    time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
    deadline = time.monotonic() + 5
    while call(base, "/predictions")[0] != 200:
        assert time.monotonic() < deadline, "still refused after the window"
        time.sleep(0.2)
