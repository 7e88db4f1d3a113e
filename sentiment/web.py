"""The page: a form to label a text and to correct the answer.

Plain form posts with redirect-after-post, so it works with JavaScript off
and a reload never stores a prediction twice. Every form carries a CSRF
token (checked app-wide by sentiment/security.py after sign-in).
"""
from flask import Blueprint, flash, redirect, render_template, request, url_for

from . import LABELS
from .errors import BadInput
from .service import check_may_see, check_text, find_prediction, give_feedback, predict_and_store

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    """The empty form."""
    return render_template("index.html", text="")


@bp.post("/")
def submit():
    """Label the submitted text, store it, and show the answer."""
    text = request.form.get("text", "")
    try:
        rows, _ = predict_and_store([check_text(text)])
    except BadInput as exc:
        return render_template("index.html", text=text, error=exc.message), exc.status
    return redirect(url_for("web.show", prediction_id=rows[0].id), code=303)


@bp.get("/p/<int:prediction_id>")
def show(prediction_id):
    """One stored prediction with its feedback buttons."""
    prediction = check_may_see(find_prediction(prediction_id))
    return render_template("prediction.html", p=prediction, labels=LABELS)


@bp.post("/p/<int:prediction_id>/feedback")
def feedback(prediction_id):
    """Store the label the user picked and show the prediction again."""
    stored, _ = give_feedback(prediction_id, request.form.get("label"))
    flash(f"Thanks: saved “{stored.label}” as the right answer.")
    return redirect(url_for("web.show", prediction_id=prediction_id), code=303)
