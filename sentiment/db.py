"""The database: users, predictions, the feedback people give on them, and
recent failed sign-ins (shared by every gunicorn worker)."""
import logging
import os
import time
from datetime import datetime, timezone
from functools import partial

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, Text, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from . import walcheckpoint


log = logging.getLogger(__name__)

ROLES = ("user", "admin")


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


class User(db.Model):
    """A person who may sign in. The bootstrap administrator from the
    environment is not a row: it keeps working even with an empty table."""
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    # werkzeug.security hash ("scrypt:..."), never the password itself.
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_dict(self):
        return {"username": self.username, "role": self.role, "active": self.active,
                "created_at": self.created_at.isoformat() + "Z"}


class LoginFailure(db.Model):
    """One failed sign-in, keyed by client address or by (hashed) user name.
    In the database so that every worker process sees every failure."""
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Prediction(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(16))
    score: Mapped[float]
    p_negative: Mapped[float]
    p_neutral: Mapped[float]
    p_positive: Mapped[float]
    model_version: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(150))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    feedback: Mapped["Feedback | None"] = relationship(back_populates="prediction")

    def to_dict(self):
        """The prediction as the API returns it."""
        return {
            "id": self.id,
            "text": self.text,
            "label": self.label,
            "score": self.score,
            "probabilities": {
                "negative": self.p_negative,
                "neutral": self.p_neutral,
                "positive": self.p_positive,
            },
            "model_version": self.model_version,
        }


class Feedback(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # One feedback per prediction: a later one replaces the earlier.
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("prediction.id", ondelete="CASCADE"), unique=True
    )
    label: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(150))
    # The giver's role when they gave it, so training can trust some roles only.
    role: Mapped[str] = mapped_column(String(16), default="admin")
    # An administrator's veto: a rejected row never trains a model.
    rejected: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    prediction: Mapped[Prediction] = relationship(back_populates="feedback")

    def to_dict(self):
        """The feedback as the API returns it."""
        return feedback_shown(self, self.prediction.label)


def feedback_shown(feedback, predicted_label):
    """A feedback row (anything with its columns as attributes) as the API
    shows it."""
    return {
        "id": feedback.id,
        "prediction_id": feedback.prediction_id,
        "label": feedback.label,
        "predicted_label": predicted_label,
        "username": feedback.username,
        "role": feedback.role,
        "rejected": feedback.rejected,
        "created_at": feedback.created_at.isoformat() + "Z",
        "updated_at": feedback.updated_at.isoformat() + "Z",
    }


# How long a SQLite writer waits for another one before "database is locked".
BUSY_TIMEOUT_SECONDS = 10


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """WAL lets readers and one writer work at once across gunicorn workers;
    the busy timeout makes a second writer wait instead of failing with
    "database is locked"."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


# Columns added after the first release: (table, column, DDL type and default).
# create_all() makes missing tables but never alters an existing one.
_ADDED_COLUMNS = [
    # Before users existed every feedback came from the bootstrap administrator.
    ("feedback", "role", "VARCHAR(16) NOT NULL DEFAULT 'admin'"),
    ("feedback", "rejected", "BOOLEAN NOT NULL DEFAULT FALSE"),
]


def _add_missing_columns():
    """Bring a database made by an earlier version up to date, in place."""
    for table, column, ddl in _ADDED_COLUMNS:
        present = {c["name"] for c in inspect(db.engine).get_columns(table)}
        if column in present:
            continue
        try:
            with db.engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}"))
            log.info("added column %s.%s", table, column)
        except SQLAlchemyError:
            # Another worker starting at the same moment added it first.
            if column not in {c["name"] for c in inspect(db.engine).get_columns(table)}:
                raise


def sqlite_file(engine):
    """The absolute path of the SQLite file behind the engine, or None
    (another database, or one in memory)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)


def _setting(statement, dbapi_connection, connection_record):
    """One of this app's settings (a PRAGMA, a SET) on each new connection,
    committed so that the pool's rollback on return cannot undo it (a SET
    inside PostgreSQL's open transaction would be; for SQLite's PRAGMAs the
    commit has nothing to do)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(statement)
    cursor.close()
    dbapi_connection.commit()


def create_tables(attempts=5):
    """Create the missing tables.

    Every gunicorn worker builds the app, so on a new database several of
    them race to create the tables; the losers' CREATE TABLE fails ("already
    exists", or a duplicate pg_type row on PostgreSQL) and they simply look
    again, finding the tables there.
    """
    for attempt in range(attempts):
        try:
            db.create_all()
            _add_missing_columns()
            return
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def init_app(app):
    """Bind the database to the app and create the tables on first start."""
    db.init_app(app)
    # Checked by config.check when the app was built.
    level = str(app.config.get("SQLITE_SYNCHRONOUS") or "").upper()
    with app.app_context():
        if level and db.engine.dialect.name == "sqlite":
            # How often a commit waits for the disk (see README, Performance).
            event.listen(db.engine, "connect",
                         partial(_setting, f"PRAGMA synchronous={level}"))
        commit = str(app.config.get("POSTGRES_SYNCHRONOUS_COMMIT") or "").lower()
        if commit and db.engine.dialect.name == "postgresql":
            # A setting of the session, so every statement on the connection
            # (autocommit one-text INSERTs included) follows it.
            event.listen(db.engine, "connect", partial(
                _setting, f"SET synchronous_commit TO {commit}"))
        checkpointer = walcheckpoint.attach(db.engine, sqlite_file(db.engine),
                                            app.config["SQLITE_CHECKPOINT_SECONDS"],
                                            level or "NORMAL")
        if checkpointer is not None:
            # Checkpoints come from the thread; a request's connection only
            # steps in if the log grows past BACKSTOP_PAGES.
            event.listen(db.engine, "connect", partial(
                _setting, f"PRAGMA wal_autocheckpoint={walcheckpoint.BACKSTOP_PAGES}"))
            # Every commit through SQLAlchemy (users, sign-in failures,
            # feedback, batches); one-text predictions commit on the driver
            # connection and tell the checkpointer themselves (_Inserts._alone).
            event.listen(db.engine, "commit", lambda connection: checkpointer.wrote())
        create_tables()
