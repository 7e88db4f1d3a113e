"""The wait for each client's close, off the gunicorn worker's thread
(sentiment/lingering.py)."""
import json
import socket
import time

import pytest
from gunicorn import util

from conftest import AUTH, PASSWORD, USERNAME
from helpers import Gunicorn, raw_predict_request, read_answer
from sentiment import lingering
from sentiment.lingering import Lingering

# A client that asks the server to end the connection after the answer.
REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def test_a_client_keeping_its_connection_open_does_not_hold_the_only_worker(
        shipped_model, database_url, tmp_path):
    """gunicorn's own close waits up to 2 s for the client to close, and the
    sync worker serves nobody meanwhile."""
    env = {"MODEL_PATH": str(shipped_model), "DATABASE_URL": database_url,
           "BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": PASSWORD, "SECRET_KEY": "t"}
    server = Gunicorn(env, tmp_path / "gunicorn.log", workers=1).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as first:
            first.sendall(REQUEST)
            assert read_answer(first)[0].startswith(b"HTTP/1.1 200")
            # `first` stays open while the second client asks.
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as second:
                second.sendall(REQUEST)
                assert read_answer(second)[0].startswith(b"HTTP/1.1 200")
            waited = time.monotonic() - started
            # The server did end the first connection: its FIN came.
            assert first.recv(1) == b""
        assert waited < 1.0, f"the second client waited {waited:.2f} s"
    finally:
        server.stop()


@pytest.fixture
def pair():
    """(server side, client side) of a loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=10)
        served, _ = listener.accept()
    yield served, client
    served.close()
    client.close()


def wait_until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def refuse(*args):
    raise AssertionError("closed in the caller's thread")


def test_the_answer_arrives_whole_although_the_client_sends_on_after_it(pair):
    """A closed socket answers bytes that arrive later with a reset, which
    can destroy the answer before the client reads it (an upload the service
    refused before reading it all, say). The socket waits for the client's
    close and reads what it sends meanwhile."""
    served, client = pair
    client.sendall(b"POST / HTTP/1.1\r\n\r\n" + b"x" * 10_000)
    served.recv(10)  # the rest is never read
    answer = b"y" * 200_000
    served.sendall(answer)
    closer = Lingering(refuse)
    closer.close(served)
    client.sendall(b"x" * 20_000)  # the rest of the upload, after the answer
    time.sleep(0.2)  # a reset would have come by now
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    assert received == answer
    client.close()
    wait_until(lambda: (closer.tend(), closer.waiting())[1] == 0)
    assert served.fileno() == -1


def test_the_socket_is_closed_once_the_client_closes_even_while_no_request_comes(pair):
    served, client = pair
    closer = Lingering(refuse)
    closer.close(served)
    assert closer.waiting() == 1 and served.fileno() != -1
    assert client.recv(10) == b""  # the server's FIN
    client.close()
    # No more close() calls: the thread tends it.
    wait_until(lambda: served.fileno() == -1)
    assert closer.waiting() == 0


def test_a_client_that_never_closes_is_cut_off_at_the_deadline(pair):
    served, client = pair
    closer = Lingering(refuse)
    closer.close(served, timeout=0.3)
    time.sleep(0.35)
    closer.tend()
    assert served.fileno() == -1 and closer.waiting() == 0


def test_past_the_limit_the_caller_waits_as_gunicorn_does(pair):
    served, client = pair
    given = []
    closer = Lingering(lambda sock, timeout, max_drain: given.append(sock), limit=1)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        other_client = socket.create_connection(listener.getsockname(), timeout=10)
        other, _ = listener.accept()
    try:
        closer.close(served)
        closer.close(other)
        assert closer.waiting() == 1 and given == [other]
    finally:
        other.close()
        other_client.close()


def test_closing_the_same_socket_twice_is_harmless(pair):
    """gunicorn's error path closes a socket, then closes it again."""
    served, client = pair
    closer = Lingering(refuse)
    closer.close(served)
    closer.close(served)
    assert closer.waiting() == 1
    client.close()
    wait_until(lambda: (closer.tend(), closer.waiting())[1] == 0)


def test_a_second_close_leaves_a_waiting_socket_to_the_first(pair, monkeypatch):
    """The second close of gunicorn's error path, with the client's close
    arriving just after that call looked at the waiting sockets: it closed
    the socket but left its entry behind, which then made the next socket
    given that number skip the wait, and failed at the deadline (a helper's
    review)."""
    served, client = pair
    closer = Lingering(refuse)
    closer.close(served)
    client.close()
    time.sleep(0.05)
    with monkeypatch.context() as m:
        m.setattr(closer, "tend", lambda: None)  # the client's close comes after it
        closer.close(served)
    assert closer.waiting() == 1 and served.fileno() != -1  # still the first close's
    closer.tend()
    assert closer.waiting() == 0 and served.fileno() == -1


def test_install_puts_it_in_place_of_gunicorns_close(monkeypatch):
    monkeypatch.setattr(util, "close_graceful", util.close_graceful)
    original = util.close_graceful
    installed = lingering.install()
    assert util.close_graceful == installed.close
    assert installed.blocking_close is original


def test_a_worker_that_stops_lets_its_last_clients_read_their_answers(
        shipped_model, database_url, tmp_path):
    """A worker that exits (here after its one request, as with max_requests;
    a HUP or a TERM alike) while a socket still waits for its client would
    reset it, and a reset can destroy an answer not read yet."""
    env = {"MODEL_PATH": str(shipped_model), "DATABASE_URL": database_url,
           "BASIC_AUTH_USERNAME": USERNAME, "BASIC_AUTH_PASSWORD": PASSWORD, "SECRET_KEY": "t",
           "GUNICORN_CMD_ARGS": "--max-requests 1"}
    server = Gunicorn(env, tmp_path / "gunicorn.log", workers=1).start()
    try:
        # /health was the worker's one request: this one goes to the next.
        time.sleep(1)
        body = json.dumps({"texts": [f"texto número {i} " + "muy bueno " * 300
                                     for i in range(100)]}).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as client:
            client.sendall(raw_predict_request(body, AUTH["Authorization"]))
            time.sleep(1)  # answered; the worker is on its way out
            client.sendall(b"x" * 20_000)  # bytes the server never reads
            time.sleep(0.5)
            received = b""
            while chunk := client.recv(65536):
                received += chunk
        head, _, answer = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert len(json.loads(answer)["predictions"]) == 100
    finally:
        server.stop()
