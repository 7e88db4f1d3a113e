"""Fixtures: an app over a temporary SQLite file or a throw-away PostgreSQL
schema, a client, a CLI runner, and credentials."""
import base64
import logging
import os
import re
import shutil
import uuid

import pytest
import sqlalchemy

from app import create_app
from helpers import missing
from sentiment.db import Prediction, Feedback, db

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The app sends its own log lines to stderr and stops them propagating when
# nothing else handles them; in tests they must reach pytest's caplog
# instead, whichever test builds the first app.
logging.getLogger("sentiment").addHandler(logging.NullHandler())
SHIPPED_MODEL = os.path.join(ROOT, "model.pkl")
USERNAME = "tester"
PASSWORD = "correct horse battery staple"
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def basic(username, password):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH = basic(USERNAME, PASSWORD)


@pytest.fixture(scope="session")
def shipped_model(tmp_path_factory):
    """A copy of the committed model, so no test can change the real one."""
    path = tmp_path_factory.mktemp("model") / "model.pkl"
    shutil.copy(SHIPPED_MODEL, path)
    return str(path)


def _postgres_available():
    engine = sqlalchemy.create_engine(POSTGRES)
    try:
        with engine.connect():
            return True
    except sqlalchemy.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh database per test: a SQLite file, or a PostgreSQL schema that
    is dropped afterwards. Under CI a missing PostgreSQL fails the run."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite'}"
        return
    if not _postgres_available():
        missing(f"PostgreSQL is not reachable at {POSTGRES}")
    schema = "t_" + uuid.uuid4().hex[:12]
    engine = sqlalchemy.create_engine(POSTGRES)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def make_app(database_url, shipped_model, tmp_path):
    """Build apps over the test database; extra config per call."""
    apps = []

    def make(instance_path=None, **config):
        settings = {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "MODEL_PATH": shipped_model,
            "BASIC_AUTH_USERNAME": USERNAME,
            "BASIC_AUTH_PASSWORD": PASSWORD,
            "SECRET_KEY": "test",
            # A cheap hash keeps the many sign-ins of the suite fast; the
            # timing test uses the real default.
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        }
        settings.update(config)
        application = create_app(settings, instance_path=str(instance_path or tmp_path / "instance"))
        apps.append(application)
        return application

    yield make
    for application in apps:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def add_user(app, username, password, role="user"):
    """A database user, created through the same CLI an operator uses."""
    result = app.test_cli_runner().invoke(args=["users", "create", username, "--role", role],
                                          input=f"{password}\n{password}\n")
    assert result.exit_code == 0, result.output
    return basic(username, password)


def csrf_token(client, headers=AUTH):
    """The token the page's forms carry, read from the page like a browser."""
    html = client.get("/", headers=headers).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def count_rows(app):
    """How many predictions and feedback rows are stored."""
    def count():
        with app.app_context():
            return (
                db.session.execute(db.select(db.func.count(Prediction.id))).scalar_one(),
                db.session.execute(db.select(db.func.count(Feedback.id))).scalar_one(),
            )
    return count
