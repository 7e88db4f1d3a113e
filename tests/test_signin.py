"""Signing in: database users with hashed passwords, the bootstrap admin,
constant-ish timing, and failed sign-in throttling shared by all workers."""
import re
import statistics
import time

import pytest

from app import create_app
from conftest import AUTH, PASSWORD, USERNAME, add_user, basic
from sentiment.db import LoginFailure, User, db


def test_passwords_are_stored_hashed(app):
    add_user(app, "ana", "ana-password-1")
    with app.app_context():
        user = db.session.execute(db.select(User)).scalar_one()
        assert user.password_hash != "ana-password-1"
        assert "ana-password-1" not in user.password_hash
        assert user.password_hash.startswith("pbkdf2:")


def test_default_hash_is_scrypt(make_app):
    app = make_app(PASSWORD_HASH_METHOD="scrypt")
    add_user(app, "ana", "ana-password-1")
    with app.app_context():
        assert db.session.execute(db.select(User)).scalar_one().password_hash.startswith("scrypt:")


def test_bootstrap_admin_still_works_beside_database_users(app, client):
    add_user(app, "ana", "ana-password-1")
    assert client.get("/users", headers=AUTH).status_code == 200
    assert client.post("/predict", json={"text": "hola"},
                       headers=basic("ana", "ana-password-1")).status_code == 200


def test_cli_manages_users(app, runner):
    result = runner.invoke(args=["users", "create", "ana", "--role", "admin"],
                           input="ana-password-1\nana-password-1\n")
    assert result.exit_code == 0 and "created admin 'ana'" in result.output
    assert "ana-password-1" not in result.output
    client = app.test_client()
    ana = basic("ana", "ana-password-1")
    assert client.get("/users", headers=ana).status_code == 200

    listed = runner.invoke(args=["users", "list"])
    assert f"{USERNAME}\tadmin\tbootstrap" in listed.output and "ana\tadmin\tactive" in listed.output

    assert runner.invoke(args=["users", "set-role", "ana", "user"]).exit_code == 0
    assert client.get("/users", headers=ana).status_code == 403

    changed = runner.invoke(args=["users", "set-password", "ana"], input="new-password-2\nnew-password-2\n")
    assert changed.exit_code == 0
    assert client.post("/predict", json={"text": "x"}, headers=ana).status_code == 401
    ana = basic("ana", "new-password-2")
    assert client.post("/predict", json={"text": "x"}, headers=ana).status_code == 200

    assert runner.invoke(args=["users", "disable", "ana"]).exit_code == 0
    assert client.post("/predict", json={"text": "x"}, headers=ana).status_code == 401
    assert "ana\tuser\tdisabled" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "enable", "ana"]).exit_code == 0
    assert client.post("/predict", json={"text": "x"}, headers=ana).status_code == 200

    assert runner.invoke(args=["users", "delete", "ana", "--yes"]).exit_code == 0
    assert client.post("/predict", json={"text": "x"}, headers=ana).status_code == 401
    # Their predictions stay.
    assert client.get("/predictions?username=ana", headers=AUTH).get_json()["total"] == 2


@pytest.mark.parametrize("args, stdin, message", [
    (["users", "create", "ana"], "short\nshort\n", "at least 8"),
    (["users", "create", "ana"], "long-enough-1\nlong-enough-2\nlong-enough-1\nlong-enough-1\n", None),
    (["users", "create", "a:b"], "long-enough\nlong-enough\n", "colon"),
    (["users", "create", USERNAME], "long-enough\nlong-enough\n", "bootstrap"),
    (["users", "create", "ana", "--role", "root"], "", "root"),
    (["users", "set-password", "nobody"], "", "no user 'nobody'"),
    (["users", "disable", "nobody"], "", "no user 'nobody'"),
    (["users", "delete", "nobody", "--yes"], "", "no user 'nobody'"),
])
def test_cli_refuses_bad_input_clearly(app, runner, args, stdin, message):
    result = runner.invoke(args=args, input=stdin)
    if message is None:
        # Mismatched confirmation is asked again, then the matching pair is taken.
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_refuses_a_duplicate(app, runner):
    add_user(app, "ana", "ana-password-1")
    result = runner.invoke(args=["users", "create", "ana"], input="long-enough\nlong-enough\n")
    assert result.exit_code == 1 and "already exists" in result.output


def _median_seconds(client, cases, rounds=9):
    """Median time of a refused request per case, measured interleaved so
    that load from anything else on the machine hits every case alike."""
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, headers in cases.items():
            started = time.perf_counter()
            assert client.get("/predictions", headers=headers).status_code == 401
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def test_wrong_user_name_costs_the_same_as_wrong_password(make_app):
    """With the real (scrypt) hash: an unknown name, a known user's wrong
    password and the bootstrap admin's wrong password all pay one hash."""
    app = make_app(PASSWORD_HASH_METHOD="scrypt", LOGIN_MAX_FAILURES_PER_CLIENT=1000,
                   LOGIN_MAX_FAILURES_PER_USER=1000)
    add_user(app, "ana", "ana-password-1")
    median = _median_seconds(app.test_client(), {
        "unknown": basic("nobody-here", "ana-password-1"),
        "known": basic("ana", "wrong-password"),
        "bootstrap": basic(USERNAME, "wrong-password"),
    })
    assert median["unknown"] > 0.01, median  # a real hash was computed
    for other in ("known", "bootstrap"):
        assert 0.5 < median[other] / median["unknown"] < 2.0, median


def fail(client, username="tester", password="wrong"):
    return client.post("/predict", json={"text": "hola"}, headers=basic(username, password))


def test_too_many_failures_for_a_user_give_429_then_the_window_passes(make_app, count_rows):
    app = make_app(LOGIN_MAX_FAILURES_PER_USER=3, LOGIN_FAILURE_WINDOW=1.5)
    client = app.test_client()
    assert [fail(client).status_code for _ in range(3)] == [401, 401, 401]
    refused = client.post("/predict", json={"text": "hola"}, headers=AUTH)
    assert refused.status_code == 429
    assert "too many failed sign-ins" in refused.get_json()["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    # Another user from the same client is not locked out by these.
    add_user(app, "ana", "ana-password-1")
    assert client.post("/predict", json={"text": "x"},
                       headers=basic("ana", "ana-password-1")).status_code == 200
    time.sleep(1.6)
    assert client.post("/predict", json={"text": "hola"}, headers=AUTH).status_code == 200
    assert count_rows() == (2, 0)


def test_too_many_failures_from_one_client_give_429_for_any_name(make_app):
    app = make_app(LOGIN_MAX_FAILURES_PER_CLIENT=4, LOGIN_FAILURE_WINDOW=60)
    client = app.test_client()
    statuses = [fail(client, f"guess{i}").status_code for i in range(4)]
    assert statuses == [401] * 4
    assert fail(client, "guess-next").status_code == 429
    assert client.get("/", headers=AUTH).status_code == 429  # the page says so too
    # A different client address is not affected.
    other = client.post("/predict", json={"text": "hola"}, headers=AUTH,
                        environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert other.status_code == 200


def test_failures_are_shared_between_processes_through_the_database(make_app, tmp_path):
    """Two apps over one database stand for two gunicorn workers."""
    first = make_app(LOGIN_MAX_FAILURES_PER_USER=2, LOGIN_FAILURE_WINDOW=60)
    second = make_app(instance_path=tmp_path / "other", LOGIN_MAX_FAILURES_PER_USER=2,
                      LOGIN_FAILURE_WINDOW=60)
    assert fail(first.test_client()).status_code == 401
    assert fail(second.test_client()).status_code == 401
    assert first.test_client().post("/predict", json={"text": "x"}, headers=AUTH).status_code == 429
    assert second.test_client().post("/predict", json={"text": "x"}, headers=AUTH).status_code == 429
    with first.app_context():
        assert db.session.execute(db.select(db.func.count(LoginFailure.id))).scalar_one() == 4


def test_requests_without_credentials_are_not_counted_as_failures(make_app):
    app = make_app(LOGIN_MAX_FAILURES_PER_CLIENT=2, LOGIN_MAX_FAILURES_PER_USER=2)
    client = app.test_client()
    for _ in range(5):
        assert client.get("/").status_code == 401
    assert client.get("/", headers=AUTH).status_code == 200


@pytest.mark.parametrize("username", ["x" * 5000, "nul\x00name", "ñandú🙂", ""])
def test_odd_user_names_are_just_wrong(client, username):
    response = client.post("/predict", json={"text": "hola"}, headers=basic(username, PASSWORD))
    assert response.status_code == 401


def _queries_on(app, tables):
    """A list that collects every SQL statement touching one of the tables."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if re.search(rf'\b(?:FROM|INTO|UPDATE|JOIN)\s+"?(?:{"|".join(tables)})"?(?:\s|$)',
                     statement):
            seen.append(statement)

    with app.app_context():
        db.event.listen(db.engine, "before_cursor_execute", record)
    return seen


def test_a_signed_in_user_is_not_looked_up_again_within_the_recheck_interval(make_app):
    app = make_app(AUTH_RECHECK_SECONDS=60)
    add_user(app, "ana", "ana-password-1")
    ana = basic("ana", "ana-password-1")
    client = app.test_client()
    queries = _queries_on(app, ["user", "login_failure"])
    assert client.post("/predict", json={"text": "hola"}, headers=ana).status_code == 200
    assert queries, "the first request signs in through the database"
    queries.clear()
    for _ in range(3):
        assert client.post("/predict", json={"text": "hola"}, headers=ana).status_code == 200
    assert queries == []
    # A wrong password is never taken from memory.
    assert client.post("/predict", json={"text": "x"},
                       headers=basic("ana", "ana-password-2")).status_code == 401


def test_remembered_sign_ins_keep_each_user_apart(make_app):
    """Sign-ins are remembered by the Authorization header as sent: two
    users from one address each get their own name on what they store,
    and the same credentials written another way are checked and work."""
    app = make_app(AUTH_RECHECK_SECONDS=60)
    add_user(app, "ana", "ana-password-1")
    add_user(app, "bob", "bob-password-1")
    client = app.test_client()
    for round_ in range(2):
        for name in ("ana", "bob"):
            headers = basic(name, f"{name}-password-1")
            if round_:
                headers = {"Authorization": headers["Authorization"].replace("Basic", "basic")}
            response = client.post("/predict", json={"text": f"{name} {round_}"}, headers=headers)
            assert response.status_code == 200
    mine = client.get("/predictions", headers=basic("bob", "bob-password-1")).get_json()
    assert sorted(item["text"] for item in mine["items"]) == ["bob 0", "bob 1"]
    assert client.post("/predict", json={"text": "x"},
                       headers=basic("bob", "ana-password-1")).status_code == 401


def test_changes_by_another_process_count_within_the_recheck_interval(make_app, tmp_path):
    """Two apps over one database stand for two gunicorn workers: what one
    does to a user, the other sees within AUTH_RECHECK_SECONDS."""
    worker = make_app(AUTH_RECHECK_SECONDS=0.5, LOGIN_MAX_FAILURES_PER_USER=2,
                      LOGIN_FAILURE_WINDOW=60)
    other = make_app(instance_path=tmp_path / "other", AUTH_RECHECK_SECONDS=0.5,
                     LOGIN_MAX_FAILURES_PER_USER=2, LOGIN_FAILURE_WINDOW=60)
    add_user(worker, "ana", "ana-password-1")
    ana = basic("ana", "ana-password-1")
    client = worker.test_client()
    assert client.post("/predict", json={"text": "hola"}, headers=ana).status_code == 200

    with other.app_context():
        user = db.session.execute(db.select(User).filter_by(username="ana")).scalar_one()
        user.active = False
        db.session.commit()
    time.sleep(0.6)
    assert client.post("/predict", json={"text": "hola"}, headers=ana).status_code == 401

    # Locked out by failures counted in the other process: 429 even for the
    # right password, once the interval has passed.
    assert client.post("/predict", json={"text": "hola"}, headers=AUTH).status_code == 200
    assert [fail(other.test_client()).status_code for _ in range(2)] == [401, 401]
    time.sleep(0.6)
    assert client.post("/predict", json={"text": "hola"}, headers=AUTH).status_code == 429


def test_a_failure_in_this_process_counts_at_once(make_app):
    app = make_app(AUTH_RECHECK_SECONDS=60, LOGIN_MAX_FAILURES_PER_USER=2,
                   LOGIN_FAILURE_WINDOW=60)
    client = app.test_client()
    assert client.post("/predict", json={"text": "hola"}, headers=AUTH).status_code == 200
    assert [fail(client).status_code for _ in range(2)] == [401, 401]
    assert client.post("/predict", json={"text": "hola"}, headers=AUTH).status_code == 429


def test_a_locked_out_client_is_not_let_in_on_another_clients_recent_sign_in(make_app):
    """The client address is part of what a worker remembers: a password
    sprayer locked out by address must not learn a right guess from 200."""
    app = make_app(AUTH_RECHECK_SECONDS=60, LOGIN_MAX_FAILURES_PER_CLIENT=3,
                   LOGIN_FAILURE_WINDOW=60)
    add_user(app, "ana", "ana-password-1")
    ana = basic("ana", "ana-password-1")
    client = app.test_client()
    sprayer = {"REMOTE_ADDR": "10.0.0.66"}
    for name in ("x1", "x2", "x3"):
        assert client.post("/predict", json={"text": "hola"}, headers=basic(name, "guess"),
                           environ_base=sprayer).status_code == 401
    # Ana signs in from her own address, and is remembered there...
    assert client.post("/predict", json={"text": "hola"}, headers=ana).status_code == 200
    # ...but the right password from the locked address is still refused.
    assert client.post("/predict", json={"text": "hola"}, headers=ana,
                       environ_base=sprayer).status_code == 429
    assert client.post("/predict", json={"text": "hola"}, headers=ana).status_code == 200


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, 61])
def test_a_recheck_interval_that_would_never_expire_is_refused(tmp_path, value):
    with pytest.raises(SystemExit, match="AUTH_RECHECK_SECONDS"):
        create_app({"AUTH_RECHECK_SECONDS": value, "SECRET_KEY": "test",
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}"},
                   instance_path=str(tmp_path / "instance"))
