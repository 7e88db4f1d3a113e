"""The insight page: how the model is used and how often people agree.

Counts cover every user's predictions: the page is about the model, and it
shows numbers only, never anyone's texts.
"""
from datetime import datetime, time, timedelta

from flask import Blueprint, render_template

from . import charts
from .db import Feedback, Prediction, db, utcnow

bp = Blueprint("insight", __name__)

DAYS = 30


def day_label_counts(since):
    """{day "YYYY-MM-DD": {label: count}} for predictions made since `since`."""
    day = db.func.date(Prediction.created_at)
    rows = db.session.execute(
        db.select(day, Prediction.label, db.func.count(Prediction.id))
        .where(Prediction.created_at >= since)
        .group_by(day, Prediction.label)
    ).all()
    counts = {}
    for when, label, n in rows:
        # SQLite gives the day as text, PostgreSQL as a date.
        counts.setdefault(str(when)[:10], {})[label] = n
    return counts


def agreement_by_version():
    """[(model_version, feedback that agreed, all feedback)], newest version first."""
    agreed = db.func.sum(db.case((Feedback.label == Prediction.label, 1), else_=0))
    rows = db.session.execute(
        db.select(Prediction.model_version, agreed, db.func.count(Feedback.id))
        .join(Feedback, Feedback.prediction_id == Prediction.id)
        .group_by(Prediction.model_version)
        .order_by(Prediction.model_version.desc())
    ).all()
    return [(version, int(yes or 0), int(total)) for version, yes, total in rows]


@bp.get("/insight")
def index():
    """The three charts, with their numbers in tables for screen readers."""
    today = utcnow().date()
    first = today - timedelta(days=DAYS - 1)
    by_day = day_label_counts(datetime.combine(first, time.min))
    # Every day of the window gets its place on the time axis, quiet days too.
    window = {str(first + timedelta(days=n)): {} for n in range(DAYS)}
    by_day = {**window, **by_day}
    totals = {day: sum(labels.values()) for day, labels in by_day.items()}
    versions = agreement_by_version()
    return render_template(
        "insight.html", days=DAYS, any_predictions=any(totals.values()),
        per_day=charts.per_day(totals), shares=charts.label_shares(by_day),
        agreement=charts.agreement(versions), by_day=by_day, totals=totals, versions=versions)
