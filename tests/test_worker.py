"""gunicorn's sync worker with idle connections set aside and each read of
a request bounded (sentiment/worker.py), on a real gunicorn."""
import contextlib
import json
import os
import signal
import socket
import threading
import time
import urllib.request

import pytest
from gunicorn import http as gunicorn_http
from gunicorn.config import Config
from gunicorn.http import wsgi

from conftest import AUTH, PASSWORD, USERNAME
from helpers import Gunicorn, raw_predict_request, read_answer, read_answers
from sentiment import worker
from sentiment.worker import IdleConnections


def start_one_worker(model, database_url, log_path, **env):
    """gunicorn with one worker, which gives up on a quiet client after 1 s."""
    env = {"MODEL_PATH": str(model), "DATABASE_URL": database_url,
           "BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": PASSWORD, "SECRET_KEY": "t",
           "GUNICORN_CLIENT_TIMEOUT": "1", **env}
    return Gunicorn(env, log_path, workers=1).start()


@pytest.fixture
def one_worker(shipped_model, database_url, tmp_path):
    server = start_one_worker(shipped_model, database_url, tmp_path / "gunicorn.log")
    yield server
    server.stop()


def start_on_sqlite(model, tmp_path, **env):
    """start_one_worker for what does not depend on the database."""
    return start_one_worker(model, f"sqlite:///{tmp_path / 'db.sqlite'}",
                            tmp_path / "gunicorn.log", **env)


@pytest.fixture
def one_worker_patient(shipped_model, tmp_path):
    """one_worker_on_sqlite, but waiting 5 s on a quiet client: a test of
    what should happen at once then has 5 s of room against a wait."""
    server = start_on_sqlite(shipped_model, tmp_path, GUNICORN_CLIENT_TIMEOUT="5")
    yield server
    server.stop()


@pytest.fixture
def one_worker_on_sqlite(shipped_model, tmp_path):
    """one_worker for what does not depend on the database."""
    server = start_on_sqlite(shipped_model, tmp_path)
    yield server
    server.stop()


def health(server, timeout=5):
    with urllib.request.urlopen(server.base + "/health", timeout=timeout) as response:
        return response.status


def read_to_end(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_connection_that_sends_nothing_does_not_hold_the_only_worker(one_worker):
    """gunicorn's sync worker waited for its request until the worker
    timeout (30 s) killed it."""
    with socket.create_connection(("127.0.0.1", one_worker.port)) as idle:
        time.sleep(0.2)  # accepted by now
        started = time.monotonic()
        assert health(one_worker) == 200
        assert time.monotonic() - started < 1.0
        # It is still served once it sends its request.
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_to_end(idle).startswith(b"HTTP/1.1 200")


def test_a_request_body_that_stops_coming_gets_a_408_and_frees_the_worker(one_worker):
    body = json.dumps({"text": "me encanta"}).encode()
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=10) as client:
        client.sendall(raw_predict_request(body[:5], AUTH["Authorization"], len(body)))
        answer = read_to_end(client)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert "stopped arriving" in json.loads(payload)["error"]
    assert health(one_worker) == 200


def test_a_request_head_that_stops_coming_is_closed_and_frees_the_worker(one_worker):
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=10) as client:
        client.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert read_to_end(client) == b""
        assert time.monotonic() - started < 5
    assert health(one_worker) == 200
    # One line in the log, not gunicorn's traceback of a failed worker.
    with open(one_worker.log_path) as log:
        logged = log.read()
    assert "closed a connection whose client sent or read nothing for 1.0 s" in logged
    assert "Traceback" not in logged


def ask_for_a_large_answer(server):
    """A socket with a small receive buffer that has asked `server` for a
    5 MB answer: 1,000 texts of 5,000 characters, each sent back."""
    texts = [("muy bueno, " * 500)[:5000] for _ in range(1000)]
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.settimeout(30)
    client.connect(("127.0.0.1", server.port))
    client.sendall(raw_predict_request(json.dumps({"texts": texts}).encode(),
                                       AUTH["Authorization"]))
    return client


def test_a_large_answer_read_slowly_but_steadily_arrives_whole(one_worker_on_sqlite):
    """socket.sendall's timeout bounds the whole call: a client reading a
    5 MB answer for longer than the timeout lost its end (past the 4 MB
    that the kernel's send buffer takes at once)."""
    with ask_for_a_large_answer(one_worker_on_sqlite) as client:
        received, started = b"", time.monotonic()
        while chunk := client.recv(65536):
            received += chunk
            time.sleep(0.1)  # at most 0.64 MB/s, never a pause near the 1 s timeout
        took = time.monotonic() - started
    head, _, answer = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert len(json.loads(answer)["predictions"]) == 1000
    assert took > 3  # the answer took longer than the timeout to read


def test_a_client_that_stops_reading_its_answer_frees_the_worker(one_worker_on_sqlite):
    with ask_for_a_large_answer(one_worker_on_sqlite):
        # Reads nothing: the answer fills the buffers, then the worker gives up.
        assert health(one_worker_on_sqlite, timeout=15) == 200


def test_a_connection_waiting_for_its_request_is_served_by_a_worker_told_to_stop(one_worker):
    """The worker accepted it, so no other worker will serve it; the exit
    after a HUP closed it (a helper's review)."""
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=10) as idle:
        time.sleep(0.3)  # accepted and set aside
        os.kill(one_worker.process.pid, signal.SIGHUP)
        time.sleep(0.5)  # the old worker has been told to stop
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_to_end(idle).startswith(b"HTTP/1.1 200")


HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# Credentials of no user: a 401, answered before the request's body is read.
NOBODY = "Basic bm9ib2R5Om5vdGhpbmc="


def header(head, name):
    """One header's value in an answer's head (bytes), or None."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip().lower()
    return None


def test_a_connection_serves_request_after_request_and_waits_without_holding_the_worker(
        one_worker_on_sqlite):
    """gunicorn's sync worker closed every connection after its answer."""
    server = one_worker_on_sqlite
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as kept:
        kept.sendall(HEALTH)
        head, _ = read_answer(kept)
        assert head.startswith(b"HTTP/1.1 200") and header(head, b"connection") != b"close"
        # Between its requests it holds nothing: the only worker serves others.
        started = time.monotonic()
        assert health(server) == 200
        assert time.monotonic() - started < 1.0
        body = json.dumps({"text": "me encanta, funciona de diez"}).encode()
        kept.sendall(raw_predict_request(body, AUTH["Authorization"]))
        head, answer = read_answer(kept)
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(answer)["label"] == "positive"


def test_requests_sent_ahead_on_a_connection_are_answered_in_order(one_worker_on_sqlite):
    """The second request arrives with the first, in the parser's buffer,
    where epoll cannot see it."""
    body = json.dumps({"text": "no me gustó nada"}).encode()
    with socket.create_connection(("127.0.0.1", one_worker_on_sqlite.port), timeout=3) as client:
        client.sendall(HEALTH + raw_predict_request(body, AUTH["Authorization"]))
        (first, health_answer), (second, answer) = read_answers(client, 2)
    assert first.startswith(b"HTTP/1.1 200") and b'"status"' in health_answer
    assert second.startswith(b"HTTP/1.1 200") and json.loads(answer)["label"] == "negative"


@contextlib.contextmanager
def a_connection_answered_once(model, tmp_path, keepalive):
    """(the connection, the head of its first answer) on one worker with
    gunicorn's keepalive set to `keepalive` seconds."""
    server = start_on_sqlite(model, tmp_path, GUNICORN_CMD_ARGS=f"--keep-alive {keepalive}")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(HEALTH)
            head, _ = read_answer(client)
            assert head.startswith(b"HTTP/1.1 200")
            yield client, head
    finally:
        server.stop()


def test_a_kept_connection_is_closed_after_the_keepalive_time(shipped_model, tmp_path):
    with a_connection_answered_once(shipped_model, tmp_path, 1) as (kept, _):
        started = time.monotonic()
        assert kept.recv(1) == b""
        assert 0.8 < time.monotonic() - started < 3


def test_keepalive_0_closes_each_connection_after_its_answer(shipped_model, tmp_path):
    with a_connection_answered_once(shipped_model, tmp_path, 0) as (client, head):
        assert header(head, b"connection") == b"close"
        assert read_to_end(client) == b""


def test_a_body_left_unread_ends_the_connection_after_the_answer(one_worker_patient):
    """An answer given before the body was read (here a 401: no credentials)
    leaves the body on the connection; read as the next request it would be
    garbage. Up to 64 KiB is read and dropped, more closes the connection."""
    body = json.dumps({"text": "x" * 100_000}).encode()
    request = raw_predict_request(body, NOBODY)
    with socket.create_connection(("127.0.0.1", one_worker_patient.port), timeout=10) as client:
        client.sendall(request)
        head, _ = read_answer(client)
        assert head.startswith(b"HTTP/1.1 401")
        started = time.monotonic()
        assert read_to_end(client) == b""  # no second answer, no 400
        # At once: not after reading it all and waiting for a next request
        # until the client timeout (5 s here).
        assert time.monotonic() - started < 2.5
    with socket.create_connection(("127.0.0.1", one_worker_patient.port), timeout=10) as client:
        small = json.dumps({"text": "bien"}).encode()
        client.sendall(raw_predict_request(small, NOBODY) + HEALTH)
        (first, _), (second, _) = read_answers(client, 2)
        assert first.startswith(b"HTTP/1.1 401")
        assert second.startswith(b"HTTP/1.1 200")  # the small body was dropped


def wait_for_a_new_worker(server, timeout=10):
    """Until gunicorn has logged the boot of one more worker than at the start."""
    def booted():
        with open(server.log_path) as log:
            return log.read().count("Booting worker with pid")
    before, deadline = booted(), time.monotonic() + timeout
    while booted() == before:
        assert time.monotonic() < deadline, "no new worker"
        time.sleep(0.05)


def test_a_body_that_trickles_in_after_the_answer_closes_the_connection(one_worker_patient):
    """What is left of the body is dropped only if it comes within 0.1 s in
    all: a byte every 50 ms held the worker for as long as it kept coming."""
    request = raw_predict_request(b'{"text": "', NOBODY, 10_000)
    with socket.create_connection(("127.0.0.1", one_worker_patient.port), timeout=10) as client:
        client.sendall(request)
        assert read_answer(client)[0].startswith(b"HTTP/1.1 401")
        stop = threading.Event()

        def trickle():
            while not stop.wait(0.05):
                try:
                    client.send(b"x")
                except OSError:
                    return
        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            started = time.monotonic()
            assert read_to_end(client) == b""
            assert time.monotonic() - started < 2.5
        finally:
            stop.set()
            sender.join()


def test_a_malformed_rest_of_a_body_gets_no_second_answer(one_worker_on_sqlite):
    """A chunk size that cannot be read, after the answer (a 401 before the
    body): gunicorn's error answer, written after it, would be read as the
    answer to the client's next request."""
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: {NOBODY}\r\n".encode() + b"Content-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    with socket.create_connection(("127.0.0.1", one_worker_on_sqlite.port), timeout=10) as client:
        client.sendall(head + b"5\r\nhello\r\nZZ\r\n")
        assert read_answer(client)[0].startswith(b"HTTP/1.1 401")
        assert read_to_end(client) == b""


def test_one_turn_serves_at_most_16_requests_sent_ahead(one_worker_on_sqlite):
    with socket.create_connection(("127.0.0.1", one_worker_on_sqlite.port), timeout=10) as client:
        client.sendall(HEALTH * 20)
        answers = read_to_end(client)
    assert answers.count(b"HTTP/1.1 200") == 17
    assert answers.count(b"Connection: keep-alive") == 17


def test_a_kept_connection_of_a_worker_told_to_stop_gets_its_answer_then_a_close(one_worker):
    """After a HUP the old worker answers a request that comes within
    STOP_SECONDS on a connection it kept, saying "Connection: close": a
    close instead would have lost a request already on its way."""
    with socket.create_connection(("127.0.0.1", one_worker.port), timeout=10) as kept:
        kept.sendall(HEALTH)
        assert read_answer(kept)[0].startswith(b"HTTP/1.1 200")
        os.kill(one_worker.process.pid, signal.SIGHUP)
        wait_for_a_new_worker(one_worker)
        time.sleep(0.2)  # the old worker has been told to stop
        kept.sendall(HEALTH)
        head, _ = read_answer(kept)
        assert head.startswith(b"HTTP/1.1 200") and header(head, b"connection") == b"close"
        assert read_to_end(kept) == b""


def connections_per_worker(server):
    """{worker pid: connections to the server's port it holds}, from /proc:
    the established sockets of that port, by inode, and whose descriptors
    name them."""
    workers = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == server.process.pid:
                    workers.append(entry)
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == server.port:
                    established.add(f"socket:[{fields[9]}]")
    counts = {}
    for pid in workers:
        counts[pid] = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    counts[pid] += os.readlink(f"/proc/{pid}/fd/{fd}") in established
    return counts


def test_kept_connections_are_shared_out_when_a_worker_joins(one_worker_on_sqlite):
    """Six kept connections, all accepted by the only worker. When a second
    worker starts (TTIN), the first lets them go one at a time, each answer
    saying "Connection: close", until the two hold three each; the clients
    connect again, and no request fails on the way. Then the split holds,
    and no answer says "Connection: close". Each round sends all six
    requests before reading an answer, so a worker finds several ready at
    once, as under load."""
    server = one_worker_on_sqlite
    address = ("127.0.0.1", server.port)
    clients = [socket.create_connection(address, timeout=10) for _ in range(6)]

    def a_request_on_each():
        """How many answers said "Connection: close"."""
        closed = 0
        for client in clients:
            client.sendall(HEALTH)
        for index, client in enumerate(clients):
            head, _ = read_answer(client)
            assert head.startswith(b"HTTP/1.1 200")
            if header(head, b"connection") == b"close":
                closed += 1
                client.close()
                clients[index] = socket.create_connection(address, timeout=10)
        return closed

    try:
        a_request_on_each()
        assert sorted(connections_per_worker(server).values()) == [6]
        os.kill(server.process.pid, signal.SIGTTIN)
        wait_for_a_new_worker(server)
        deadline = time.monotonic() + 20
        while sorted(connections_per_worker(server).values()) != [3, 3]:
            assert time.monotonic() < deadline, connections_per_worker(server)
            a_request_on_each()
            time.sleep(0.01)
        # Longer than a worker waits before it looks again at who else is there.
        settled = time.monotonic() + 1.5
        while time.monotonic() < settled:
            assert a_request_on_each() == 0
            time.sleep(0.01)
        assert sorted(connections_per_worker(server).values()) == [3, 3]
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def connections():
    """Accepted server sides and their clients, closed at the end."""
    made = []
    listener = socket.create_server(("127.0.0.1", 0))

    def connect():
        client = socket.create_connection(listener.getsockname(), timeout=10)
        served, addr = listener.accept()
        made.extend([client, served])
        return served, addr, client

    yield listener, connect
    for sock in made:
        sock.close()
    listener.close()


def test_idle_connections_come_out_when_their_request_begins(connections):
    listener, connect = connections
    idle = IdleConnections(seconds=30)
    quiet, quiet_addr, _ = connect()
    talking, talking_addr, talking_client = connect()
    idle.add(listener, quiet, quiet_addr)
    idle.add(listener, talking, talking_addr)
    assert idle.ready() == [] and len(idle) == 2
    talking_client.sendall(b"GET / HTTP/1.1\r\n")
    time.sleep(0.05)
    assert idle.ready() == [(listener, talking, talking_addr, None)]
    assert len(idle) == 1 and talking.fileno() != -1


def test_idle_connections_are_closed_at_their_deadline_and_past_the_limit(connections):
    listener, connect = connections
    idle = IdleConnections(seconds=0.2, limit=2)
    first, second, third = connect(), connect(), connect()
    for served, addr, _ in (first, second, third):
        idle.add(listener, served, addr)
    assert first[0].fileno() == -1 and len(idle) == 2  # the oldest made room
    assert 0 < idle.seconds_left() <= 0.2
    time.sleep(0.25)
    assert idle.ready() == []
    assert second[0].fileno() == -1 and third[0].fileno() == -1 and len(idle) == 0
    assert idle.seconds_left() is None


def test_a_connection_watched_again_keeps_only_its_new_deadline(connections):
    """A kept-alive connection waits again after each answer: the deadline
    of its first wait closed it in the middle of a later one."""
    listener, connect = connections
    idle = IdleConnections(seconds=0.2)
    served, addr, _ = connect()
    idle.add(listener, served, addr)
    assert idle.ready() == [] and idle.seconds_left() <= 0.2
    idle.take(served)  # served, then kept for its next request
    idle.add(listener, served, addr, "parser", seconds=30)
    time.sleep(0.25)
    assert idle.ready() == []
    assert served.fileno() != -1 and len(idle) == 1
    assert idle.seconds_left() > 29


class _CountingClient(worker._Client):
    """The worker's connection, counting its send() calls."""

    def send(self, data, flags=0):
        self.sends.append(bytes(data))
        return super().send(data, flags)


def serve_one(app, request=b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", failing=None, sends=None):
    """One request through gunicorn's parser and answer on the worker's kind
    of connection, as handle_request serves it; (the bytes of each send(),
    all the bytes the client received). `failing`: the exception the app's
    answer raises, after which the connection is closed, as gunicorn's
    handle_request closes it. `sends`: a list to record the sends in."""
    ours, theirs = socket.socketpair()
    client = _CountingClient(ours.family, ours.type, ours.proto, fileno=ours.detach())
    client.sends = [] if sends is None else sends
    received = []

    def read_all():  # as the client does meanwhile: a large answer fills the buffers
        while chunk := theirs.recv(1 << 20):
            received.append(chunk)
    reader = threading.Thread(target=read_all)
    with theirs:
        theirs.sendall(request)
        reader.start()
        config = Config()
        request = next(gunicorn_http.get_parser(config, client, ("127.0.0.1", 1)))
        answer, environ = wsgi.create(request, client, ("127.0.0.1", 1), ("127.0.0.1", 2), config)
        worker.send_head_with_body(answer)
        body = app(environ, answer.start_response)
        try:
            if isinstance(body, environ["wsgi.file_wrapper"]):
                answer.write_file(body)
            else:
                for chunk in body:
                    answer.write(chunk)
            answer.close()
        except Exception as exc:
            if failing is None or not isinstance(exc, failing):
                raise
        else:
            assert failing is None, f"{failing} not raised"
        if hasattr(body, "close"):
            body.close()
        client.close()
        reader.join(10)
    return client.sends, b"".join(received)


def app_answering(*chunks, length=None):
    def app(environ, start_response):
        size = sum(len(c) for c in chunks) if length is None else length
        start_response("200 OK", [("Content-Length", str(size)), ("X-Test", "yes")])
        return list(chunks)
    return app


def test_an_answers_head_goes_out_in_the_same_send_as_its_body():
    sends, received = serve_one(app_answering(b'{"label": "positive"}'))
    assert len(sends) == 1
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"X-Test: yes" in head
    assert body == b'{"label": "positive"}'


def test_the_chunks_after_the_first_and_a_large_body_go_out_after_the_head():
    sends, received = serve_one(app_answering(b"one,", b"two,", b"three"))
    assert len(sends) == 3 and sends[0].endswith(b"\r\n\r\none,")
    assert received.partition(b"\r\n\r\n")[2] == b"one,two,three"
    large = bytes(range(256)) * (worker.ONE_SEND_UP_TO // 256 + 1)
    sends, received = serve_one(app_answering(large))
    assert sends[0].endswith(b"\r\n\r\n") and b"".join(sends[1:]) == large
    assert received.partition(b"\r\n\r\n")[2] == large


def test_an_answer_without_a_body_still_sends_its_head():
    sends, received = serve_one(app_answering(b"not sent", length=8),
                                request=b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"\r\n\r\n")
    assert b"not sent" not in received
    sends, received = serve_one(app_answering())
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 0" in received


def test_a_file_sent_with_sendfile_comes_after_its_head(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"id,label\n1,positive\n")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(path.stat().st_size))])
        return environ["wsgi.file_wrapper"](open(path, "rb"))
    sends, received = serve_one(app)
    assert len(sends) == 1 and sends[0].endswith(b"\r\n\r\n")  # the file: sendfile()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b"id,label\n1,positive\n"


def test_a_head_whose_body_fails_after_it_still_goes_out_as_gunicorn_sends_it():
    """The head is held only within one call of gunicorn's answer: one that
    no bytes follow (a HEAD's, an app that fails after it, a body that is
    not bytes) reaches the client before the connection closes."""
    def failing_after_the_head(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        yield b"body"
        raise RuntimeError("the app failed after its first chunk")
    _, received = serve_one(failing_after_the_head, failing=RuntimeError,
                            request=b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"\r\n\r\n")

    def answering_text(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        return ["text"]
    _, received = serve_one(answering_text, failing=TypeError)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"\r\n\r\n")


def test_a_streamed_answers_head_goes_out_with_its_first_empty_chunk():
    """An app that yields b"" first to send its head at once (no
    Content-Length: chunked) gets it sent then, not with the next chunk."""
    sends, seen = [], []

    def streaming(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        seen.extend(sends)  # what had gone out before the next chunk
        yield b"later"
    _, received = serve_one(streaming, sends=sends)
    assert len(seen) == 1 and seen[0].endswith(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in received and b"later" in received
