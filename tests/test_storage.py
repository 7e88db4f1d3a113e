"""How predictions are stored: batches in one statement, SQLite settings,
tables created by several workers at once."""
import base64
import math
import multiprocessing
import os
import runpy
import shutil
import sqlite3
import threading
import time
from unittest import mock

import psycopg
import pytest
import sqlalchemy
from gunicorn.util import load_class
from gunicorn.workers.sync import SyncWorker

from conftest import AUTH, ROOT
from sentiment import walcheckpoint
from sentiment.db import Prediction, db, utcnow


def test_batch_answer_is_what_was_stored(client):
    """The answer is built from the inserted values and the returned ids:
    the same JSON as the rows read back, in the order of the texts."""
    texts = [f"texto {i}: {'me encanta' if i % 3 else 'qué horror'} 😀" for i in range(120)]
    texts[7] = "not bad at all"
    body = client.post("/predict", json={"texts": texts}, headers=AUTH).get_json()
    answered = body["predictions"]
    assert [p["text"] for p in answered] == texts
    ids = [p["id"] for p in answered]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    listed = client.get("/predictions?per_page=100", headers=AUTH).get_json()["items"]
    listed += client.get("/predictions?page=2&per_page=100", headers=AUTH).get_json()["items"]
    stored = {item["id"]: item for item in listed}
    for prediction in answered:
        row = stored[prediction["id"]]
        assert {k: row[k] for k in prediction} == prediction


def test_a_batch_of_texts_with_quotes_braces_and_blanks_is_stored_as_sent(client):
    """What an array's text form must quote or escape (PostgreSQL's batch
    INSERT sends each column as one array) comes back as it was sent."""
    texts = ['Dijo "genial", pero {no}', "C:\\temp\\ y \\\"", "NULL", "null", " espacios ",
             "a,b;c", "tab\tand\nnewline", "\u3000ideográfico\u2028", "{}", '"', "\\",
             "ünïcødé 😀 \U0001F600", "x" * 5000]
    body = client.post("/predict", json={"texts": texts}, headers=AUTH).get_json()
    assert [p["text"] for p in body["predictions"]] == texts
    listed = client.get(f"/predictions?per_page={len(texts)}", headers=AUTH).get_json()["items"]
    assert sorted(item["text"] for item in listed) == sorted(texts)


def test_a_batch_is_stored_in_one_insert_statement(app, client, monkeypatch):
    """A 100-text batch is one INSERT sent to the database (100 rows of
    VALUES on SQLite, one array INSERT on PostgreSQL), not one statement per
    text."""
    inserts = []

    def record(statement, rows):
        if str(statement).lstrip().upper().startswith("INSERT INTO PREDICTION"):
            inserts.append(rows)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            # The INSERT goes to sqlite3's connection without a SQLAlchemy
            # Connection: SQLite itself reports each statement it runs.
            db.engine.dispose()
            sqlalchemy.event.listen(
                db.engine, "connect", lambda driver, record_: driver.set_trace_callback(
                    lambda statement: record(statement, None)))
        else:
            # PostgreSQL's INSERT goes to psycopg's cursor without a
            # SQLAlchemy Connection (no statement events): watch the driver.
            execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

            def watched_execute(cursor, query, params=None, **kwargs):
                record(query, 1)
                return execute(cursor, query, params, **kwargs)

            def watched_executemany(cursor, query, params_seq, **kwargs):
                params_seq = list(params_seq)
                record(query, len(params_seq))
                return executemany(cursor, query, params_seq, **kwargs)

            monkeypatch.setattr(psycopg.Cursor, "execute", watched_execute)
            monkeypatch.setattr(psycopg.Cursor, "executemany", watched_executemany)
    texts = [f"opinión número {i}: {'genial' if i % 2 else 'malísimo'}" for i in range(100)]
    response = client.post("/predict", json={"texts": texts}, headers=AUTH)
    assert response.status_code == 200
    assert len(inserts) == 1
    assert len(response.get_json()["predictions"]) == 100
    with app.app_context():
        # Whatever ran in autocommit gave its connection back as the pool
        # expects it: a transaction rolled back there leaves nothing behind.
        raw = db.engine.raw_connection()
        try:
            if db.engine.dialect.name == "postgresql":
                assert raw.driver_connection.autocommit is False
            cursor = raw.cursor()
            cursor.execute("DELETE FROM prediction")
            raw.rollback()
            cursor.execute("SELECT count(*) FROM prediction")
            assert cursor.fetchone()[0] == 100
            cursor.close()
        finally:
            raw.close()


def test_a_batch_that_fails_halfway_stores_none_of_its_rows(app, monkeypatch):
    """A batch is all its rows or none: when part of it fails (a text the
    database refuses; on SQLite, in the third of its INSERTs), the rows
    before it are rolled back too, and the next batch goes in."""
    from datetime import datetime

    from sqlalchemy.exc import IntegrityError

    from sentiment import service

    monkeypatch.setattr(service, "_SQLITE_ROWS_PER_INSERT", 2)
    now = datetime(2026, 1, 2, 3, 4, 5)
    rows = [(f"row {i}", "neutral", 0.5, 0.2, 0.6, 0.2, "v1", "user", now) for i in range(6)]
    rows[4] = (None,) + rows[4][1:]
    with app.app_context():
        inserts = service._inserts(db.engine)
        before = db.session.execute(db.select(db.func.count(Prediction.id))).scalar_one()
        with pytest.raises(IntegrityError):
            inserts.store(rows)
        ids = inserts.store([row for row in rows if row[0] is not None])
        texts = db.session.execute(
            db.select(Prediction.text).order_by(Prediction.id)).scalars().all()
    assert len(ids) == 5 and len(texts) == before + 5
    assert texts[-5:] == ["row 0", "row 1", "row 2", "row 3", "row 5"]


def test_rows_with_differing_values_are_stored_each_with_its_own(app):
    """A batch's rows share their timestamp, so it is converted for the
    driver once; rows that differ in a converted column keep their own."""
    from datetime import datetime, timedelta

    from sentiment.db import Prediction
    from sentiment.service import _inserts

    start = datetime(2026, 1, 2, 3, 4, 5, 678000)
    rows = [(f"row {i}", "neutral", 0.5, 0.2, 0.6, 0.2, "v1", f"user{i % 2}",
             start + timedelta(minutes=i)) for i in range(5)]
    shared = [row[:8] + (start,) for row in rows]
    with app.app_context():
        ids = _inserts(db.engine).store(rows) + _inserts(db.engine).store(shared)
        stored = {p.id: p for p in db.session.execute(db.select(Prediction)).scalars()}
    assert [(stored[i].text, stored[i].username, stored[i].created_at) for i in ids] == [
        (row[0], row[7], row[8]) for row in rows + shared]
    # Equal is not enough to convert once: these two are equal datetimes
    # that SQLAlchemy turns into different parameters.
    from datetime import timezone
    noon = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    one_pm = datetime(2026, 1, 1, 13, tzinfo=timezone(timedelta(hours=1)))
    assert noon == one_pm
    equal = [row[:8] + (moment,) for row, moment in zip(rows, (noon, one_pm))]
    with app.app_context():
        inserts = _inserts(db.engine)
        assert inserts.many_parameters(equal) == [inserts.parameters(row) for row in equal]


def test_single_answer_is_what_was_stored(client):
    body = client.post("/predict", json={"text": "No está nada mal, lo recomiendo"},
                       headers=AUTH).get_json()
    row = client.get("/predictions?per_page=1", headers=AUTH).get_json()["items"][0]
    assert {k: row[k] for k in body} == body


def test_a_database_error_is_a_503_that_stores_nothing_and_the_next_request_works(app, client):
    """The INSERT failing (here: its table is gone) answers 503 JSON, for one
    text and for a batch, and leaves no connection in a broken state."""
    assert client.post("/predict", json={"text": "antes"}, headers=AUTH).status_code == 200
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(sqlalchemy.text("DROP TABLE feedback"))
            conn.execute(sqlalchemy.text("DROP TABLE prediction"))
    for body in ({"text": "me encanta"}, {"texts": ["uno", "dos", "tres"]}):
        for _ in range(3):  # every pooled connection, not only the first
            response = client.post("/predict", json=body, headers=AUTH)
            assert response.status_code == 503
            assert "nothing was stored" in response.get_json()["error"]
    with app.app_context():
        db.create_all()
    for body in ({"text": "me encanta"}, {"texts": ["uno", "dos"]}):
        assert client.post("/predict", json=body, headers=AUTH).status_code == 200
    listed = client.get("/predictions", headers=AUTH).get_json()
    assert [item["text"] for item in listed["items"]] == ["dos", "uno", "me encanta"]
    assert listed["total"] == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_that_cannot_be_opened_is_a_503(make_app, tmp_path):
    """A new connection failing (the database's folder gone) answers 503 for
    one text and for a batch, and the service works again once it is back."""
    folder = tmp_path / "data"
    folder.mkdir()
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'db.sqlite'}",
                   AUTH_RECHECK_SECONDS=60)
    client = app.test_client()
    assert client.post("/predict", json={"text": "antes"}, headers=AUTH).status_code == 200
    with app.app_context():
        db.session.remove()
        db.engine.dispose()  # the next request opens a new connection
    folder.rename(tmp_path / "elsewhere")
    for body in ({"text": "me encanta"}, {"texts": ["uno", "dos"]}):
        response = client.post("/predict", json=body, headers=AUTH)
        assert response.status_code == 503
        assert "nothing was stored" in response.get_json()["error"]
    (tmp_path / "elsewhere").rename(folder)
    assert client.post("/predict", json={"text": "después"}, headers=AUTH).status_code == 200
    listed = client.get("/predictions", headers=AUTH).get_json()
    assert [item["text"] for item in listed["items"]] == ["después", "antes"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_locked_past_the_busy_timeout_is_a_503_and_then_works(make_app, database_url):
    """Another program holding SQLite's write lock past the busy timeout
    (10 s): the prediction answers 503, and once the lock is gone the same
    pooled connection stores the next one (no transaction left open)."""
    import sqlite3

    app = make_app(AUTH_RECHECK_SECONDS=60)
    client = app.test_client()
    assert client.post("/predict", json={"text": "antes"}, headers=AUTH).status_code == 200
    other = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        response = client.post("/predict", json={"text": "durante"}, headers=AUTH)
        assert response.status_code == 503
        assert "nothing was stored" in response.get_json()["error"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert client.post("/predict", json={"text": "después"}, headers=AUTH).status_code == 200
    listed = client.get("/predictions", headers=AUTH).get_json()
    assert [item["text"] for item in listed["items"]] == ["después", "antes"]


def pragma(app, name):
    with app.app_context():
        return db.session.execute(sqlalchemy.text(f"PRAGMA {name}")).scalar_one()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_runs_in_wal_with_synchronous_normal_by_default(make_app):
    app = make_app()
    assert pragma(app, "journal_mode") == "wal"
    assert pragma(app, "synchronous") == 1  # NORMAL
    assert pragma(app, "busy_timeout") == 10000


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_synchronous_full_can_be_chosen(make_app):
    assert pragma(make_app(SQLITE_SYNCHRONOUS="full"), "synchronous") == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unknown_sqlite_synchronous_is_refused(make_app):
    with pytest.raises(SystemExit, match="SQLITE_SYNCHRONOUS"):
        make_app(SQLITE_SYNCHRONOUS="sometimes")


def rows_in_the_database_file_alone(path, tmp_path, table="prediction"):
    """How many rows a table of the SQLite file holds without its -wal log
    (what a checkpoint has copied into it), read from a copy of the file;
    None while it has no such table yet or the copy caught a write half
    done."""
    copy = tmp_path / "file-alone.sqlite"
    shutil.copyfile(path, copy)
    connection = sqlite3.connect(copy)
    try:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError:
        return None
    finally:
        connection.close()
        copy.unlink()


def wait_for_rows_in_the_file(path, tmp_path, count, table="prediction", seconds=10):
    deadline = time.monotonic() + seconds
    while rows_in_the_database_file_alone(path, tmp_path, table) != count:
        assert time.monotonic() < deadline, f"{table} never reached {count} rows in the file"
        time.sleep(0.02)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_predictions_reach_the_database_file_soon_after_they_are_stored(
        make_app, database_url, tmp_path):
    """A thread checkpoints the log shortly after writes, so no request
    pays for it and stored rows do not wait in the log for SQLite's 1,000
    pages (with synchronous=NORMAL: until they are on the disk). The
    request's own connections checkpoint only far past that."""
    path = database_url[len("sqlite:///"):]
    client = make_app(SQLITE_CHECKPOINT_SECONDS=0.05).test_client()
    for text in ("me encanta", "qué horror", "meh"):
        assert client.post("/predict", json={"text": text}, headers=AUTH).status_code == 200
    assert client.post("/predict", json={"texts": ["uno", "dos"]},
                       headers=AUTH).status_code == 200
    wait_for_rows_in_the_file(path, tmp_path, 5)
    assert pragma(client.application, "wal_autocheckpoint") == walcheckpoint.BACKSTOP_PAGES


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_checkpoints_wait_for_a_long_read_then_copy_everything(
        make_app, database_url, tmp_path):
    """A reader still on an older snapshot keeps the checkpoint from copying
    what came after it; once the reader is done, the rest is copied too."""
    path = database_url[len("sqlite:///"):]
    client = make_app(SQLITE_CHECKPOINT_SECONDS=0.05).test_client()
    assert client.post("/predict", json={"text": "primero"}, headers=AUTH).status_code == 200
    wait_for_rows_in_the_file(path, tmp_path, 1)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM prediction").fetchone()[0] == 1
        for text in ("segundo", "tercero"):
            assert client.post("/predict", json={"text": text}, headers=AUTH).status_code == 200
        time.sleep(0.3)
        assert rows_in_the_database_file_alone(path, tmp_path) == 1
        reader.execute("COMMIT")
    finally:
        reader.close()
    wait_for_rows_in_the_file(path, tmp_path, 3)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_writes_outside_predictions_are_checkpointed_too(make_app, database_url, tmp_path):
    """Users and failed sign-ins commit through the ORM, not the write lock."""
    path = database_url[len("sqlite:///"):]
    client = make_app(SQLITE_CHECKPOINT_SECONDS=0.05).test_client()
    created = client.post("/users", json={"username": "ana", "password": "una clave larga 123"},
                          headers=AUTH)
    assert created.status_code == 201, created.get_json()
    wait_for_rows_in_the_file(path, tmp_path, 1, table='"user"')
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ana:not it").decode()}
    assert client.get("/predictions", headers=wrong).status_code == 401
    wait_for_rows_in_the_file(path, tmp_path, 2, table="login_failure")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_checkpoint_thread_ends_when_idle_and_a_later_write_starts_another(
        make_app, database_url, tmp_path, monkeypatch):
    monkeypatch.setattr(walcheckpoint, "IDLE_EXIT", 0.2)
    path = database_url[len("sqlite:///"):]
    name = f"sqlite-checkpoint {os.path.abspath(path)}"
    client = make_app(SQLITE_CHECKPOINT_SECONDS=0.05).test_client()
    assert client.post("/predict", json={"text": "antes"}, headers=AUTH).status_code == 200
    wait_for_rows_in_the_file(path, tmp_path, 1)
    deadline = time.monotonic() + 10
    while any(thread.name == name for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "the idle checkpoint thread never ended"
        time.sleep(0.05)
    assert client.post("/predict", json={"text": "después"}, headers=AUTH).status_code == 200
    wait_for_rows_in_the_file(path, tmp_path, 2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_checkpoint_thread_can_be_turned_off(make_app, database_url, tmp_path):
    """SQLITE_CHECKPOINT_SECONDS=0: SQLite's own checkpoints, in the commit
    that takes the log past 1,000 pages; a few rows stay in the log."""
    path = database_url[len("sqlite:///"):]
    app = make_app(SQLITE_CHECKPOINT_SECONDS=0)
    client = app.test_client()
    assert client.post("/predict", json={"text": "me encanta"}, headers=AUTH).status_code == 200
    time.sleep(0.3)
    assert rows_in_the_database_file_alone(path, tmp_path) in (None, 0)
    assert pragma(app, "wal_autocheckpoint") == 1000
    assert client.get("/predictions", headers=AUTH).get_json()["items"][0]["text"] == "me encanta"


@pytest.mark.parametrize("seconds", [-1, 0.001, 61, float("nan"), "soon"])
def test_sqlite_checkpoint_seconds_out_of_range_are_refused(make_app, seconds):
    with pytest.raises(SystemExit, match="SQLITE_CHECKPOINT_SECONDS"):
        make_app(SQLITE_CHECKPOINT_SECONDS=seconds)


def test_workers_racing_to_create_the_tables_retry(make_app, monkeypatch):
    """A worker whose CREATE TABLE lost the race looks again instead of dying."""
    original = db.create_all
    calls = []

    def lose_the_race_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("CREATE TABLE feedback", {},
                                                  Exception("table feedback already exists"))
        return original(*args, **kwargs)

    monkeypatch.setattr(db, "create_all", lose_the_race_once)
    make_app()
    assert len(calls) == 2


def terminate_backends(database_url, pids):
    """End these PostgreSQL backends as an administrator would, and wait
    until they are gone; how many were there to end."""
    # Autocommit: a transaction would see pg_stat_activity as of its start.
    killer = sqlalchemy.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as conn:
            killed = sum(conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar_one()
                         for pid in pids)
            # Terminating only signals a backend: wait until they are gone,
            # so no request races a connection that is still dying.
            ended = ", ".join(map(str, pids))
            deadline = time.monotonic() + 10
            while conn.exec_driver_sql(f"SELECT count(*) FROM pg_stat_activity "
                                       f"WHERE pid IN ({ended})").scalar_one():
                assert time.monotonic() < deadline, "PostgreSQL did not end the connections"
                time.sleep(0.01)
    finally:
        killer.dispose()
    return killed


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_connections_dropped_by_the_server_are_replaced(make_app, database_url):
    """PostgreSQL ends the service's connections (a restart, an idle
    timeout, an administrator): a prediction on such a pooled connection
    answers 503 having stored nothing, the dead connection is thrown away
    rather than pooled again, and later requests are stored as usual."""
    app = make_app(AUTH_RECHECK_SECONDS=60)
    client = app.test_client()
    pids = set()
    with app.app_context():
        sqlalchemy.event.listen(db.engine, "checkout",
                                lambda dbapi, record, proxy: pids.add(dbapi.info.backend_pid))
    for body in ({"text": "antes"}, {"texts": ["uno", "dos"]}, {"text": "otra vez"}):
        assert client.post("/predict", json=body, headers=AUTH).status_code == 200
    with app.app_context():
        db.session.remove()
    killed = terminate_backends(database_url, pids)
    assert killed >= 1
    answers = [(text, client.post("/predict", json={"text": text}, headers=AUTH))
               for text in [f"después {i}" for i in range(killed + 2)]]
    codes = [response.status_code for _, response in answers]
    assert set(codes) <= {200, 503} and codes[-2:] == [200, 200]
    assert codes.count(503) <= killed
    for _, response in answers:
        if response.status_code == 503:
            assert "nothing was stored" in response.get_json()["error"]
    listed = client.get("/predictions?per_page=100", headers=AUTH).get_json()["items"]
    stored = [text for text, response in reversed(answers) if response.status_code == 200]
    assert [item["text"] for item in listed] == stored + ["otra vez", "dos", "uno", "antes"]


def synchronous_commit(app):
    """What PostgreSQL's synchronous_commit is on a pooled connection of the
    app, read twice: a setting lost when the pool rolls back a returned
    connection would show on the second reading."""
    seen = []
    with app.app_context():
        for _ in range(2):
            with db.engine.connect() as connection:
                seen.append(connection.execute(sqlalchemy.text("SHOW synchronous_commit")).scalar_one())
    return seen


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_keeps_the_servers_synchronous_commit_by_default(make_app, database_url):
    """Without the setting the app sends no SET: its connections have what
    a connection of its own gets from the server (and the role)."""
    other = sqlalchemy.create_engine(database_url)
    try:
        with other.connect() as connection:
            servers = connection.execute(sqlalchemy.text("SHOW synchronous_commit")).scalar_one()
    finally:
        other.dispose()
    assert synchronous_commit(make_app()) == [servers, servers]
    level = "off" if servers != "off" else "on"
    assert synchronous_commit(make_app(POSTGRES_SYNCHRONOUS_COMMIT=level)) == [level, level]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_synchronous_commit_off_can_be_chosen_and_rows_are_still_stored(make_app):
    app = make_app(POSTGRES_SYNCHRONOUS_COMMIT="OFF")
    assert synchronous_commit(app) == ["off", "off"]
    client = app.test_client()
    one = client.post("/predict", json={"text": "me encanta"}, headers=AUTH)
    batch = client.post("/predict", json={"texts": ["genial", "horrible"]}, headers=AUTH)
    assert one.status_code == batch.status_code == 200
    ids = [one.get_json()["id"]] + [p["id"] for p in batch.get_json()["predictions"]]
    with app.app_context():
        stored = db.session.execute(db.select(Prediction.id, Prediction.text)).all()
    assert sorted(stored) == sorted(zip(ids, ["me encanta", "genial", "horrible"]))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unknown_postgres_synchronous_commit_is_refused(make_app):
    with pytest.raises(SystemExit, match="POSTGRES_SYNCHRONOUS_COMMIT"):
        make_app(POSTGRES_SYNCHRONOUS_COMMIT="sometimes")


def gunicorn_settings(environ):
    """gunicorn.conf.py's module globals as gunicorn reads them under this
    environment."""
    with mock.patch.dict(os.environ, environ, clear=True):
        return runpy.run_path(os.path.join(ROOT, "gunicorn.conf.py"))


@pytest.mark.parametrize("environ, per_cpu", [
    ({}, 1),
    ({"DATABASE_URL": "sqlite:////srv/sentiment.sqlite"}, 1),
    ({"DATABASE_URL": "postgresql://app@db/sentiment"}, 2),
    ({"DATABASE_URL": "postgres://app@db/sentiment"}, 2),
    ({"DATABASE_URL": "postgresql+psycopg://app@db/sentiment"}, 2),
    ({"DATABASE_URL": "postgresql://app@db/sentiment", "POSTGRES_SYNCHRONOUS_COMMIT": "off"}, 1),
])
def test_gunicorn_workers_follow_the_database(environ, per_cpu):
    settings = gunicorn_settings(environ)
    assert settings["workers"] == per_cpu * multiprocessing.cpu_count()
    # Synchronous workers (sentiment/worker.py: gunicorn's, idle connections aside).
    assert issubclass(load_class(settings["worker_class"]), SyncWorker)


def test_web_concurrency_sets_the_gunicorn_workers_on_any_database():
    settings = gunicorn_settings({"WEB_CONCURRENCY": "3",
                                  "DATABASE_URL": "postgresql://app@db/sentiment"})
    assert settings["workers"] == 3


def prepared_statements(app):
    """The names of the statements prepared on the pool's connection."""
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT name FROM pg_prepared_statements")
            names = {row[0] for row in cursor.fetchall()}
            cursor.close()
            return names
        finally:
            raw.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_row_on_postgresql_is_stored_exactly_as_given(app):
    """One row goes to PostgreSQL as text through a prepared statement:
    every character, every bit of each float and each microsecond come back
    as they were given."""
    from datetime import datetime

    from sentiment import service

    texts = ["ñandú 😀 'comillas' \"dobles\" \\ barra\ny línea", "x" * 5000, "  espacios  ",
             "\u00a0\u2028 raros \U0010fffd"]
    floats = [0.1, 5e-324, 0.30000000000000004, -0.0, 1.0, 1 / 3, 2.2250738585072014e-308]
    moments = [datetime(2026, 12, 5, 3, 4, 5, 678901), datetime(2026, 12, 5, 3, 4, 5),
               datetime(1999, 1, 1, 0, 0, 0, 1)]
    rows = [(text, "neutral", floats[i % 7], floats[(i + 1) % 7], floats[(i + 2) % 7],
             floats[(i + 3) % 7], "v1 ñ", "usuaria ü", moments[i % 3])
            for i, text in enumerate(texts * 2)]
    with app.app_context():
        inserts = service._inserts(db.engine)
        ids = [inserts.store([row])[0] for row in rows]
        stored = {p.id: p for p in db.session.execute(db.select(Prediction)).scalars()}
    assert service._STATEMENT.decode() in prepared_statements(app)
    for id_, row in zip(ids, rows):
        p = stored[id_]
        back = (p.text, p.label, p.score, p.p_negative, p.p_neutral, p.p_positive,
                p.model_version, p.username, p.created_at)
        assert back == row
        assert [math.copysign(1, v) for v in back[2:6]] == [math.copysign(1, v) for v in row[2:6]]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_row_on_postgresql_after_its_statement_was_deallocated(app):
    """psycopg may DEALLOCATE ALL on a connection (after a failed
    transaction): the next one-row INSERT prepares its statement again and
    stores the row, once."""
    from sentiment import service

    with app.app_context():
        inserts = service._inserts(db.engine)
        first = inserts.store([("antes", "neutral", 0.5, 0.2, 0.6, 0.2, "v1", "u", utcnow())])
        raw = db.engine.raw_connection()
        try:
            raw.driver_connection.execute("DEALLOCATE ALL")
        finally:
            raw.close()
        second = inserts.store([("después", "neutral", 0.5, 0.2, 0.6, 0.2, "v1", "u", utcnow())])
        texts = db.session.execute(db.select(Prediction.text).order_by(Prediction.id)).scalars()
        assert list(texts) == ["antes", "después"]
    assert second[0] > first[0]
    assert service._STATEMENT.decode() in prepared_statements(app)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_row_that_libpq_would_cut_short_is_refused_by_psycopg(app):
    """A NUL would end libpq's text value there: such a row goes to psycopg,
    which refuses it, and nothing is stored."""
    from sqlalchemy.exc import DBAPIError

    from sentiment import service

    with app.app_context():
        with pytest.raises(DBAPIError, match="NUL"):
            service._inserts(db.engine).store(
                [("antes\0después", "neutral", 0.5, 0.2, 0.6, 0.2, "v1", "u", utcnow())])
        assert db.session.execute(db.select(db.func.count(Prediction.id))).scalar_one() == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_row_on_a_postgresql_connection_not_in_utf8(make_app, database_url):
    """A connection whose client encoding is not UTF-8 (set in the URL) gets
    its rows through psycopg, which encodes them as the connection says."""
    from sentiment import service

    app = make_app(SQLALCHEMY_DATABASE_URI=database_url + "&client_encoding=LATIN1")
    client = app.test_client()
    response = client.post("/predict", json={"text": "el señor está contentísimo"},
                           headers=AUTH)
    assert response.status_code == 200
    listed = client.get("/predictions?per_page=1", headers=AUTH).get_json()["items"]
    assert listed[0]["text"] == "el señor está contentísimo"
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            assert raw.driver_connection.info.encoding == "iso8859-1"
        finally:
            raw.close()
    assert service._STATEMENT.decode() not in prepared_statements(app)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_row_on_a_connection_the_server_ended_is_an_operational_error(app, database_url):
    """The one-row INSERT on a connection PostgreSQL has ended raises what
    psycopg's cursor raised there, SQLAlchemy's OperationalError (a 503),
    and the next INSERT, on a new connection, stores its row."""
    from sqlalchemy.exc import OperationalError

    from sentiment import service

    row = ("antes", "neutral", 0.5, 0.2, 0.6, 0.2, "v1", "u", utcnow())
    with app.app_context():
        inserts = service._inserts(db.engine)
        inserts.store([row])
        raw = db.engine.raw_connection()
        try:
            pid = raw.driver_connection.info.backend_pid
        finally:
            raw.close()
    assert terminate_backends(database_url, [pid]) == 1
    with app.app_context():
        with pytest.raises(OperationalError):
            inserts.store([row])
        inserts.store([("después",) + row[1:]])
        texts = db.session.execute(db.select(Prediction.text).order_by(Prediction.id)).scalars()
        assert list(texts) == ["antes", "después"]
