"""The history page: the signed-in user's own predictions, newest first,
filterable by label and by whether feedback was given."""
from flask import Blueprint, current_app, g, render_template, request
from sqlalchemy.orm import selectinload

from . import LABELS
from .db import Prediction, db

bp = Blueprint("history", __name__)

FEEDBACK_FILTERS = ("given", "none")
# Texts longer than this are shortened in the list, with the whole text
# one click away.
SHORT_TEXT = 140


def page_number(value):
    """The requested page; anything unusable means the first page, since a
    mistyped address should still show the history rather than an error."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 10**9 else 1


@bp.get("/history")
def index():
    """One page of the user's predictions with inline feedback forms."""
    label = request.args.get("label", "")
    label = label if label in LABELS else ""
    given = request.args.get("feedback", "")
    given = given if given in FEEDBACK_FILTERS else ""
    per_page = current_app.config["HISTORY_PER_PAGE"]

    query = db.select(Prediction).where(Prediction.username == g.username)
    if label:
        query = query.where(Prediction.label == label)
    if given == "given":
        query = query.where(Prediction.feedback.has())
    elif given == "none":
        query = query.where(~Prediction.feedback.has())
    total = db.session.execute(
        db.select(db.func.count()).select_from(query.subquery())).scalar_one()
    pages = max(1, -(-total // per_page))
    page = min(page_number(request.args.get("page")), pages)
    rows = db.session.execute(
        query.options(selectinload(Prediction.feedback))
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
        .limit(per_page).offset((page - 1) * per_page)
    ).scalars().all()
    filters = {k: v for k, v in (("label", label), ("feedback", given)) if v}
    return render_template("history.html", rows=rows, total=total, page=page, pages=pages,
                           label=label, given=given, filters=filters, labels=LABELS,
                           short=SHORT_TEXT)
