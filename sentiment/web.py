"""The page: a form to label a text and to correct the answer.

Plain form posts with redirect-after-post, so it works with JavaScript off
and a reload never stores a prediction twice. With JavaScript on,
static/app.js sends the same forms with fetch() and swaps in the page it
gets back, so both paths render through the same templates. Every form
carries a CSRF token (checked app-wide by sentiment/security.py after sign-in).
"""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from . import LABELS
from .errors import BadInput
from .i18n import label_name, local_path
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
        rows, _version = predict_and_store([check_text(text)])
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
    """Store the label the user picked, then go back where they were
    (the prediction, or the history page when edited from there)."""
    stored, _created = give_feedback(prediction_id, request.form.get("label"))
    # The category names the prediction, so the history page can mark the
    # very row that was saved.
    flash(_("Thanks: saved “%(label)s” as the right answer.", label=label_name(stored.label)),
          f"saved-{prediction_id}")
    back = local_path(request.form.get("next"), url_for("web.show", prediction_id=prediction_id))
    return redirect(back, code=303)
