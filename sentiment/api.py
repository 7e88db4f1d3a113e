"""The JSON API: predict, feedback, the list of predictions.

Sign-in happens app-wide (sentiment/auth.py). The API takes no CSRF token
(curl has none); writes a browser marks as cross-site are refused instead.
"""
import json

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy.orm import selectinload

from .auth import is_admin
from .db import Prediction, db
from .errors import BadInput
from .service import check_text, check_texts, give_feedback, predict_and_store
from .users import usable_name

bp = Blueprint("api", __name__)

_LENIENT_TYPES = {"", "application/x-www-form-urlencoded", "text/plain"}


def json_body():
    """The request's JSON object, None without a JSON body, or BadInput.

    `curl -d '{"text": ...}'` without a Content-Type header sends JSON
    labelled as a form; it is read as the JSON it plainly is.
    """
    raw = request.get_data(cache=True)
    looks_like_json = raw.lstrip()[:1] in (b"{", b"[")
    if not (request.is_json or (request.mimetype in _LENIENT_TYPES and looks_like_json)):
        return None
    if not raw.strip():
        raise BadInput("the JSON body is empty")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadInput("the JSON body must be an object")
    return payload


@bp.post("/predict")
def predict():
    """Label one text (JSON, query or form `text`) or a batch (JSON `texts`)."""
    payload = json_body()
    form = request.form if payload is None else {}
    payload = payload or {}
    has_text = "text" in payload or "text" in request.args or "text" in form
    if has_text and "texts" in payload:
        raise BadInput("send either 'text' or 'texts', not both")
    if "texts" in payload:
        rows, version = predict_and_store(check_texts(payload["texts"]))
        return jsonify(predictions=[r.to_dict() for r in rows], model_version=version)
    if "text" in payload:
        text = payload["text"]
    else:
        text = request.args.get("text", form.get("text"))
    rows, _ = predict_and_store([check_text(text)])
    return jsonify(rows[0].to_dict())


@bp.post("/feedback")
def feedback():
    """Store the right label for a prediction: 201 new, 200 replaced."""
    payload = json_body()
    if payload is None:
        raise BadInput('send JSON: {"prediction_id": N, "label": "positive"}')
    for key in ("prediction_id", "label"):
        if key not in payload:
            raise BadInput(f"missing '{key}'")
    stored, created = give_feedback(payload["prediction_id"], payload["label"])
    return jsonify(stored.to_dict()), 201 if created else 200


def int_arg(name, default, low, high):
    value = request.args.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadInput(f"'{name}' must be an integer") from None
    if not low <= number <= high:
        raise BadInput(f"'{name}' must be between {low} and {high}")
    return number


def page_args():
    """The checked `page` and `per_page` query arguments."""
    return (int_arg("page", 1, 1, 10**9),
            int_arg("per_page", 20, 1, current_app.config["MAX_PER_PAGE"]))


def json_page(query, counted, order, load, page, per_page, item):
    """One page of `query` as JSON {"items", "page", "per_page", "total"}:
    `counted` is the column counted for the total, `load` the loader option
    for the rows, `item` turns a row into its JSON object."""
    total = db.session.execute(
        query.with_only_columns(db.func.count(counted)).order_by(None)).scalar_one()
    rows = db.session.execute(
        query.options(load).order_by(*order).limit(per_page).offset((page - 1) * per_page)
    ).scalars()
    return jsonify(items=[item(row) for row in rows], page=page, per_page=per_page, total=total)


def prediction_item(row):
    """A listed prediction: the API's prediction object, who and when, and
    its feedback label if any."""
    item = row.to_dict()
    item["username"] = row.username
    item["created_at"] = row.created_at.isoformat() + "Z"
    item["feedback"] = row.feedback.label if row.feedback else None
    return item


@bp.get("/predictions")
def predictions():
    """Stored predictions, newest first, with their feedback label: a user's
    own, or everyone's for an admin (`username=` narrows it to one user)."""
    page, per_page = page_args()
    query = db.select(Prediction)
    who = request.args.get("username")
    if who is not None and not is_admin():
        raise BadInput("forbidden: only an admin may list other users' predictions", status=403)
    if not is_admin():
        who = g.username
    if who is not None:
        if not usable_name(who):
            raise BadInput("'username' must be 1 to 150 characters without NUL")
        query = query.where(Prediction.username == who)
    return json_page(query, Prediction.id, (Prediction.created_at.desc(), Prediction.id.desc()),
                     selectinload(Prediction.feedback), page, per_page, prediction_item)
