"""What the API and the page both do: validate, predict and store, give feedback."""
import functools

from flask import current_app, g
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from . import LABELS
from .db import Feedback, Prediction, db, utcnow
from .errors import BadInput
from .model import ModelUnavailable

# Ids are INTEGER columns: PostgreSQL refuses a larger number in a query
# ("integer out of range"), so anything beyond cannot exist and is a 404.
MAX_ID = 2**31 - 1


def model_holder():
    return current_app.extensions["sentiment_model"]


def check_text(value, name="text"):
    """The text, or BadInput saying what is wrong with it."""
    if value is None:
        raise BadInput(f"missing '{name}'")
    if not isinstance(value, str):
        raise BadInput(f"'{name}' must be a string")
    if not value.strip():
        raise BadInput(f"'{name}' is empty")
    limit = current_app.config["MAX_TEXT_LENGTH"]
    if len(value) > limit:
        raise BadInput(f"'{name}' is longer than {limit} characters ({len(value)})")
    if "\x00" in value:
        raise BadInput(f"'{name}' contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"'{name}' is not valid Unicode (unpaired surrogate)") from None
    return value


def check_texts(value):
    """A list of 1 to MAX_BATCH_SIZE valid texts."""
    if not isinstance(value, list):
        raise BadInput("'texts' must be a list of strings")
    limit = current_app.config["MAX_BATCH_SIZE"]
    if not value:
        raise BadInput("'texts' is empty")
    if len(value) > limit:
        raise BadInput(f"'texts' has {len(value)} items; at most {limit} are allowed")
    return [check_text(v, f"texts[{i}]") for i, v in enumerate(value)]


def check_label(value):
    """One of the three labels (case and surrounding blanks forgiven)."""
    if not isinstance(value, str) or value.strip().lower() not in LABELS:
        raise BadInput(f"'label' must be one of {', '.join(LABELS)}")
    return value.strip().lower()


def current_model():
    """The loaded model, or a 503 that tells the user to retrain."""
    try:
        return model_holder().get()
    except ModelUnavailable as exc:
        raise BadInput(f"no model is loaded: {exc}", status=503) from None


class StoredPrediction:
    """A prediction just stored: what the API answers, without an ORM object."""

    __slots__ = ("id", "text", "label", "score", "p_negative", "p_neutral", "p_positive",
                 "model_version")

    def __init__(self, id, text, label, score, p_negative, p_neutral, p_positive, model_version):
        self.id = id
        self.text = text
        self.label = label
        self.score = score
        self.p_negative = p_negative
        self.p_neutral = p_neutral
        self.p_positive = p_positive
        self.model_version = model_version

    # The same JSON as a Prediction read back from the database.
    to_dict = Prediction.to_dict


_PREDICTION = Prediction.__table__
# Built once: a statement is immutable and reusable.
_INSERT_ONE = insert(_PREDICTION).returning(_PREDICTION.c.id)
_INSERT_MANY = insert(_PREDICTION).returning(_PREDICTION.c.id, sort_by_parameter_order=True)


@functools.lru_cache(maxsize=8)
def _autocommit(engine):
    """The engine's autocommit view (same pool), made once per engine."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def predict_and_store(texts):
    """Predict every text and store all of them in one transaction.

    One INSERT ... RETURNING id through SQLAlchemy Core, for one text or a
    batch (ids in the order of the texts): the ORM's unit of work and the
    reload of every row after commit cost more than the model itself.
    Committed before it returns: an answer with an id is a stored row.
    """
    model = current_model()
    version = model.version
    username = g.username
    now = utcnow()
    rows = [
        {"text": text, "label": label, "score": score, "p_negative": probs["negative"],
         "p_neutral": probs["neutral"], "p_positive": probs["positive"],
         "model_version": version, "username": username, "created_at": now}
        for text, (label, score, probs) in zip(texts, model.predict(texts))
    ]
    # A transaction of its own on the engine, not the ORM session: the
    # session's bookkeeping costs twice the INSERT itself here.
    engine = db.engine
    if len(rows) == 1 and engine.dialect.name == "postgresql":
        # One statement is a transaction by itself: in autocommit it needs
        # no BEGIN and COMMIT round trips, and PostgreSQL still answers only
        # once the row is committed (synchronous_commit).
        transaction = _autocommit(engine).connect()
    else:
        transaction = engine.begin()
    with transaction as connection:
        if len(rows) == 1:
            ids = [connection.execute(_INSERT_ONE, rows[0]).scalar_one()]
        else:
            ids = connection.execute(_INSERT_MANY, rows).scalars().all()
    return [
        StoredPrediction(id, row["text"], row["label"], row["score"], row["p_negative"],
                         row["p_neutral"], row["p_positive"], version)
        for id, row in zip(ids, rows)
    ], version


def find_prediction(prediction_id):
    """The stored prediction, or a 404."""
    if isinstance(prediction_id, bool) or not isinstance(prediction_id, int):
        raise BadInput("'prediction_id' must be an integer")
    prediction = None
    if 1 <= prediction_id <= MAX_ID:
        prediction = db.session.get(Prediction, prediction_id)
    if prediction is None:
        raise BadInput(f"no prediction with id {prediction_id}", status=404)
    return prediction


def check_may_see(prediction):
    """A user sees and corrects only their own predictions; an admin, all.

    Feedback trains the next model, so a user must not be able to relabel
    what someone else asked: that is the admin's job.
    """
    if g.role != "admin" and prediction.username != g.username:
        raise BadInput(f"forbidden: prediction {prediction.id} is another user's", status=403)
    return prediction


class StoredFeedback:
    """Feedback just stored, as the API shows it; its fields as attributes."""

    def __init__(self, data):
        self._data = data
        self.__dict__.update(data)

    def to_dict(self):
        return dict(self._data)


def give_feedback(prediction_id, label):
    """Store the corrected label; returns (feedback, created).

    A later feedback on the same prediction replaces the earlier one.
    """
    label = check_label(label)
    prediction = check_may_see(find_prediction(prediction_id))
    for _ in range(2):
        feedback = db.session.execute(
            db.select(Feedback).filter_by(prediction_id=prediction.id)).scalar_one_or_none()
        created = feedback is None
        if created:
            feedback = Feedback(prediction_id=prediction.id, label=label, username=g.username,
                                role=g.role)
            db.session.add(feedback)
        else:
            feedback.label = label
            feedback.username = g.username
            feedback.role = g.role
            if g.role == "admin":
                # An admin's own correction is trusted; a user re-sending a
                # rejected correction does not lift the rejection.
                feedback.rejected = False
            feedback.updated_at = utcnow()
        try:
            db.session.flush()
            # Read before the commit, which would expire the objects and
            # cost two more SELECTs to show them.
            stored = StoredFeedback(feedback.to_dict())
            db.session.commit()
            return stored, created
        except IntegrityError:
            # Another request stored feedback for this prediction first:
            # replace theirs, as a later feedback would.
            db.session.rollback()
    raise BadInput("the feedback could not be stored, try again", status=409)
