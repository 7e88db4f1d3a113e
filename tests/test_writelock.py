"""The prediction writers' lock on a SQLite file (sentiment/writelock.py):
writers take turns through it, across threads and processes, and it never
stops a write that SQLite itself would allow."""
import ctypes
import fcntl
import logging
import multiprocessing
import os
import sys
import threading
import time

import pytest

from sentiment.writelock import WriteLock

from conftest import AUTH


def hold(path, seconds):
    """Another open file holding the flock for `seconds` (as another
    process would: an flock belongs to one open file)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def release():
        time.sleep(seconds)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    thread = threading.Thread(target=release)
    thread.start()
    return thread


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_prediction_waits_for_the_writer_holding_the_lock(make_app, database_url):
    app = make_app(AUTH_RECHECK_SECONDS=60)
    client = app.test_client()
    assert client.post("/predict", json={"text": "antes"}, headers=AUTH).status_code == 200
    lock_path = database_url.removeprefix("sqlite:///") + "-write.lock"
    assert os.path.exists(lock_path)
    for body in ({"text": "durante"}, {"texts": ["uno", "dos"]}):
        holder = hold(lock_path, 0.4)
        started = time.monotonic()
        response = client.post("/predict", json=body, headers=AUTH)
        waited = time.monotonic() - started
        holder.join()
        assert response.status_code == 200
        assert waited >= 0.35, f"{body}: did not wait for the lock ({waited:.3f} s)"
    listed = client.get("/predictions", headers=AUTH).get_json()
    assert [item["text"] for item in listed["items"]] == ["dos", "uno", "durante", "antes"]
    # Feedback writes through the ORM, between the same flock and commit.
    holder = hold(lock_path, 0.4)
    started = time.monotonic()
    response = client.post("/feedback", json={"prediction_id": listed["items"][0]["id"],
                                              "label": "neutral"}, headers=AUTH)
    waited = time.monotonic() - started
    holder.join()
    assert response.status_code == 201
    assert waited >= 0.35, f"feedback did not wait for the lock ({waited:.3f} s)"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_a_lock_file_predictions_are_still_stored(make_app, database_url, caplog):
    # A directory where the lock file should be: it cannot be opened.
    os.mkdir(database_url.removeprefix("sqlite:///") + "-write.lock")
    app = make_app()
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="sentiment.writelock"):
        assert client.post("/predict", json={"text": "hola"}, headers=AUTH).status_code == 200
        assert client.post("/predict", json={"texts": ["a", "b"]}, headers=AUTH).status_code == 200
    assert "writing without" in caplog.text
    assert len(client.get("/predictions", headers=AUTH).get_json()["items"]) == 3


def test_a_lock_held_past_the_timeout_is_passed_by(tmp_path):
    lock = WriteLock(str(tmp_path / "db-write.lock"), timeout=0.3)
    holder = hold(lock.path, 1.0)
    started = time.monotonic()
    with lock.held():
        waited = time.monotonic() - started
    holder.join()
    assert 0.25 <= waited < 0.9


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's per-thread timer slack")
def test_a_waiting_thread_sleeps_precisely(tmp_path):
    """A thread that had to wait for the lock asks Linux for a 1 us timer
    slack, so its pauses of tens of microseconds are not stretched by the
    default 50 us; a thread that never waited keeps the default."""
    libc = ctypes.CDLL(None)

    def slack():
        return libc.prctl(30, 0, 0, 0, 0)  # PR_GET_TIMERSLACK: this thread's

    lock = WriteLock(str(tmp_path / "w.lock"), timeout=5)
    seen = {}

    def write(name, wait):
        # Linux's default (a new thread has its creator's, which an earlier
        # wait in this thread may have set).
        libc.prctl(29, 50_000, 0, 0, 0)
        holder = hold(lock.path, 0.05) if wait else None
        with lock.held():
            seen[name] = slack()
        if holder:
            holder.join()

    for name, wait in (("free", False), ("waited", True)):
        thread = threading.Thread(target=write, args=(name, wait))
        thread.start()
        thread.join()
    assert seen == {"free": 50_000, "waited": 1000}


def test_threads_take_turns(tmp_path):
    lock = WriteLock(str(tmp_path / "db-write.lock"), timeout=10)
    inside, overlaps = [], []

    def write():
        for _ in range(200):
            with lock.held():
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.0001)
                inside.pop()
    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def _hold_in_child(lock, queue):
    with lock.held():
        queue.put("in")
        time.sleep(0.5)


def test_a_forked_worker_does_not_share_its_parents_lock(tmp_path):
    """gunicorn forks its workers: each must open the lock file itself, or
    parent and child would hold the same flock at once."""
    lock = WriteLock(str(tmp_path / "db-write.lock"), timeout=5)
    with lock.held():  # the parent's own open file, before the fork
        pass
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_hold_in_child, args=(lock, queue))
    child.start()
    assert queue.get(timeout=5) == "in"
    started = time.monotonic()
    with lock.held():
        waited = time.monotonic() - started
    child.join(5)
    assert waited >= 0.3, f"the parent took the lock its child holds ({waited:.3f} s)"


def test_an_error_inside_releases_the_lock(tmp_path):
    lock = WriteLock(str(tmp_path / "db-write.lock"), timeout=5)
    with pytest.raises(RuntimeError):
        with lock.held():
            raise RuntimeError("the INSERT failed")
    # Free for this process's threads and for another open file at once.
    assert lock._threads.acquire(blocking=False)
    lock._threads.release()
    fd = os.open(lock.path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def _write_in_child(lock, queue):
    started = time.monotonic()
    with lock.held():
        queue.put(time.monotonic() - started)


def test_a_fork_while_another_thread_holds_the_lock(tmp_path):
    """The child must not inherit a thread lock nobody will release."""
    lock = WriteLock(str(tmp_path / "db-write.lock"), timeout=2)
    inside, leave = threading.Event(), threading.Event()

    def writer():
        with lock.held():
            inside.set()
            leave.wait(5)
    thread = threading.Thread(target=writer)
    thread.start()
    inside.wait(5)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_write_in_child, args=(lock, queue))
    child.start()
    # The parent's thread still holds the flock: the child waits for it...
    time.sleep(0.3)
    leave.set()
    thread.join()
    waited = queue.get(timeout=5)
    child.join(5)
    # ...and gets it once the parent lets go, long before the timeout.
    assert 0.2 <= waited < 1.5


def test_only_sqlite_files_get_a_lock(make_app, database_url):
    app = make_app()
    from sentiment.db import db
    with app.app_context():
        lock = WriteLock.for_database(db.engine, 10)
    if database_url.startswith("sqlite"):
        assert lock.path == database_url.removeprefix("sqlite:///") + "-write.lock"
    else:
        assert lock is None
    import sqlalchemy
    assert WriteLock.for_database(sqlalchemy.create_engine("sqlite://"), 10) is None
    assert WriteLock.for_database(sqlalchemy.create_engine("sqlite:///:memory:"), 10) is None
