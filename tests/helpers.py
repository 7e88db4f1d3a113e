"""Small tools the tests share."""
import csv
import glob
import itertools
import os
import subprocess
import sys

import pytest
import sqlalchemy

from sentiment.db import db

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus_texts(limit_per_file=400):
    """The corpora's texts, the first `limit_per_file` of each file (None:
    all of them); the lexicon files hold no texts."""
    texts = []
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "*", "*.csv"))):
        if os.sep + "lexicon" + os.sep in path:
            continue
        with open(path, encoding="utf-8") as fh:
            texts += [row["text"] for row in itertools.islice(csv.DictReader(fh), limit_per_file)]
    return texts


def missing(message):
    """Skip the test for want of something the machine lacks (PostgreSQL,
    Chromium, the compiled arithmetic), or fail it under CI (CI=true),
    where nothing may be missing."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)

# A corpus small enough to train in a second, for tests that need a model
# other than the shipped one (the shipped one is trained on everything).
TINY_CORPUS = """text,label,lang
me encanta este lugar,positive,es
qué maravilla de atención,positive,es
lo recomiendo muchísimo,positive,es
una experiencia genial,positive,es
odio esperar tanto,negative,es
un desastre total,negative,es
no vuelvo nunca más,negative,es
pésimo servicio,negative,es
abre a las nueve,neutral,es
el paquete llegó el martes,neutral,es
la reunión es mañana,neutral,es
queda en la calle mayor,neutral,es
fue un día feliz,positive,es
qué rabia me dio,negative,es
son las cinco,neutral,es
i love it,positive,en
absolutely wonderful,positive,en
great value for money,positive,en
best day ever,positive,en
terrible service,negative,en
i hate this,negative,en
worst purchase ever,negative,en
broken on arrival,negative,en
the store opens at nine,neutral,en
the meeting is on monday,neutral,en
it ships from madrid,neutral,en
the box is blue,neutral,en
what a lovely surprise,positive,en
awful and rude staff,negative,en
the bus leaves at noon,neutral,en
"""


def write_tiny_corpus(path):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(TINY_CORPUS)
    return str(path)


def run_train(*args, env=None):
    """Run `python train.py ARGS` as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args],
                          cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)


def call(base, path, body=None, auth=None, method=None, timeout=30):
    """(status, JSON body) of one HTTP request to a live server."""
    import json
    import urllib.error
    import urllib.request
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if auth:
        headers["Authorization"] = auth
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def read_answers(sock, count):
    """[(head, body)] of the next `count` HTTP answers on a socket, each read
    up to the end of its body (Content-Length); answers that arrive together
    are split. More than `count` answers arriving at once fails: a test
    reading answers sent ahead asks for all of them in one call."""
    answers, data = [], b""
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed before answer {len(answers) + 1}'s head: {data!r}"
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(data) < length:
            chunk = sock.recv(length - len(data))
            assert chunk, "closed before the answer's end"
            data += chunk
        answers.append((head, data[:length]))
        data = data[length:]
    assert data == b"", "more arrived than was asked for"
    return answers


def read_answer(sock):
    """(head, body) of one HTTP answer read from a socket, up to the end of
    its body (Content-Length), leaving the connection as it is."""
    return read_answers(sock, 1)[0]


class KeptConnection:
    """(status, JSON body) of requests over one kept-alive connection, as a
    requests.Session or a browser sends them: http.client opens a new one
    only where the server said "Connection: close"."""

    def __init__(self, base, auth, timeout=30):
        import http.client
        import urllib.parse
        address = urllib.parse.urlsplit(base)
        self.connection = http.client.HTTPConnection(address.hostname, address.port,
                                                     timeout=timeout)
        self.auth = auth

    def call(self, path, body=None):
        import json
        headers = {"Authorization": self.auth, "Content-Type": "application/json"}
        self.connection.request("GET" if body is None else "POST", path,
                                None if body is None else json.dumps(body), headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def close(self):
        self.connection.close()


class Gunicorn:
    """`gunicorn app:app` on a free loopback port, in its own process group
    so a test can SIGKILL master and workers at once."""

    def __init__(self, env, log_path, workers=3):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, GUNICORN_BIND=f"127.0.0.1:{self.port}",
                        WEB_CONCURRENCY=str(workers), **env)
        self.log_path = log_path
        self.process = None

    def start(self, timeout=60):
        import time
        import urllib.request
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:app"], cwd=ROOT,
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError("gunicorn did not start: " + open(self.log_path).read()[-3000:])
            time.sleep(0.2)

    def kill(self, sig=None):
        import signal
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig or signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.process = None
        self.log.close()

    def stop(self):
        import signal
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            finally:
                self.kill()


def feedback_with_a_write_between(app, client, before, sql, parameters, body, headers):
    """POST /feedback while another connection (another worker, say)
    commits `sql` just before the request's first statement that starts
    with `before`; the answer. Fails the test if no such statement ran."""
    other = sqlalchemy.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    fired = []

    def write_first(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith(before) and not fired:
            fired.append(statement)
            with other.begin() as connection:
                connection.execute(sqlalchemy.text(sql), parameters)

    with app.app_context():
        engine = db.engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", write_first)
    try:
        answer = client.post("/feedback", json=body, headers=headers)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", write_first)
        other.dispose()
    assert fired, f"no statement starting with {before} ran"
    return answer


def raw_predict_request(body, authorization, length=None):
    """The bytes of POST /predict with a JSON `body` (bytes), as a client
    writes them on a socket; `length` the Content-Length it claims."""
    return (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: {authorization}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body) if length is None else length}\r\n\r\n".encode()
            + body)
