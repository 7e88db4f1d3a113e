"""The database: predictions and the feedback people give on them."""
from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, Text, event
from sqlalchemy.engine import Engine
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


def init_app(app):
    """Bind the database to the app and create the tables on first start."""
    db.init_app(app)
    with app.app_context():
        db.create_all()
