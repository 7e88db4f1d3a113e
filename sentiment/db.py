"""The database: predictions and the feedback people give on them."""
import time
from datetime import datetime, timezone
from functools import partial

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, Text, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    prediction: Mapped[Prediction] = relationship(back_populates="feedback")

    def to_dict(self):
        """The feedback as the API returns it."""
        return {
            "id": self.id,
            "prediction_id": self.prediction_id,
            "label": self.label,
            "predicted_label": self.prediction.label,
            "username": self.username,
            "created_at": self.created_at.isoformat() + "Z",
            "updated_at": self.updated_at.isoformat() + "Z",
        }


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """WAL lets readers and one writer work at once across gunicorn workers;
    the busy timeout makes a second writer wait instead of failing with
    "database is locked"."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


SQLITE_SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _sqlite_synchronous(level, dbapi_connection, connection_record):
    """PRAGMA synchronous for this app's SQLite connections: how often a
    commit waits for the disk (see README, Performance)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA synchronous={level}")
    cursor.close()


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
            return
        except DatabaseError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def init_app(app):
    """Bind the database to the app and create the tables on first start."""
    db.init_app(app)
    level = str(app.config.get("SQLITE_SYNCHRONOUS") or "").upper()
    if level and level not in SQLITE_SYNCHRONOUS_LEVELS:
        raise SystemExit(f"SQLITE_SYNCHRONOUS={level!r} is not one of "
                         f"{', '.join(SQLITE_SYNCHRONOUS_LEVELS)}")
    with app.app_context():
        if level and db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", partial(_sqlite_synchronous, level))
        create_tables()
