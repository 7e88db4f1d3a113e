"""What only an administrator may do: read everyone's feedback, export it as
a training CSV, reject a feedback row so it never trains, manage users.

Every view answers 403 JSON to a signed-in `user` (sign-in itself is
app-wide, sentiment/auth.py).
"""
import csv
import io

import click
from flask import Blueprint, Response, current_app, jsonify, request
from flask.cli import AppGroup
from sqlalchemy.orm import selectinload

from .api import json_body, json_page, page_args
from .auth import require_admin
from .db import ROLES, Feedback, User, db
from .errors import BadInput
from .service import MAX_ID
from .training import TrainingError, parse_when, read_feedback
from .users import (MAX_USERNAME_LENGTH, MIN_PASSWORD_LENGTH, find_user, hash_password,
                    usable_name)

bp = Blueprint("admin", __name__)
bp.before_request(require_admin)


@bp.get("/feedback")
def list_feedback():
    """Every feedback row, newest change first (`rejected=true|false` filters)."""
    page, per_page = page_args()
    query = db.select(Feedback)
    rejected = request.args.get("rejected")
    if rejected is not None:
        if rejected not in ("true", "false"):
            raise BadInput("'rejected' must be true or false")
        query = query.where(Feedback.rejected.is_(rejected == "true"))
    return json_page(query, Feedback.id, (Feedback.updated_at.desc(), Feedback.id.desc()),
                     selectinload(Feedback.prediction), page, per_page,
                     lambda row: dict(row.to_dict(), text=row.prediction.text))


def _when(name, end=False):
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return parse_when(value, end=end)
    except TrainingError as exc:
        raise BadInput(f"'{name}': {exc}") from None


@bp.get("/feedback/export")
def export_feedback():
    """The feedback exactly as `train.py` would use it, as a CSV
    (text,label,lang) that `train.py --data` reads back. Takes the same
    narrowing as train.py: role=, user= (repeatable), since=, until=."""
    roles = request.args.getlist("role")
    if any(role not in ROLES for role in roles):
        raise BadInput(f"'role' must be one of {', '.join(ROLES)}")
    users = request.args.getlist("user")
    if not all(usable_name(u) for u in users):
        raise BadInput("'user' must be 1 to 150 characters without NUL")
    rows = read_feedback(roles=roles or None, users=users or None,
                         since=_when("since"), until=_when("until", end=True))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label", "lang"])
    for row in rows:
        writer.writerow([row.text, row.label, row.lang])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="feedback.csv"'})


@bp.post("/feedback/<int:feedback_id>/reject")
def reject_feedback(feedback_id):
    """Mark a feedback row rejected (never trains), or `{"rejected": false}`
    to take that back."""
    payload = json_body() or {}
    rejected = payload.get("rejected", True)
    if not isinstance(rejected, bool):
        raise BadInput("'rejected' must be true or false")
    row = db.session.get(Feedback, feedback_id) if 1 <= feedback_id <= MAX_ID else None
    if row is None:
        raise BadInput(f"no feedback with id {feedback_id}", status=404)
    row.rejected = rejected
    db.session.commit()
    return jsonify(row.to_dict())


@bp.get("/users")
def list_users():
    """The bootstrap administrator and every database user."""
    users = db.session.execute(db.select(User).order_by(User.username)).scalars()
    boot = {"username": current_app.config["BASIC_AUTH_USERNAME"], "role": "admin",
            "active": True, "bootstrap": True}
    return jsonify(users=[boot] + [dict(u.to_dict(), bootstrap=False) for u in users])


def _string(payload, key, required=True):
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadInput(f"'{key}' must be a string")
    return value


def _check_password(password):
    if len(password) < MIN_PASSWORD_LENGTH or len(password) > 1024 or "\x00" in password:
        raise BadInput(f"'password' must be {MIN_PASSWORD_LENGTH} to 1024 characters without NUL")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("'password' is not valid Unicode") from None
    return password


def _check_role(role):
    if role not in ROLES:
        raise BadInput(f"'role' must be one of {', '.join(ROLES)}")
    return role


@bp.post("/users")
def create_user():
    """Add a user: {"username": ..., "password": ..., "role": "user"|"admin"}."""
    payload = json_body()
    if payload is None:
        raise BadInput('send JSON: {"username": ..., "password": ..., "role": "user"}')
    username = _string(payload, "username")
    if (not usable_name(username) or username != username.strip() or ":" in username
            or not username.isprintable()):
        raise BadInput(f"'username' must be 1 to {MAX_USERNAME_LENGTH} printable characters "
                       "without a colon or surrounding blanks")
    if username == current_app.config["BASIC_AUTH_USERNAME"]:
        raise BadInput(f"{username!r} is the bootstrap administrator", status=409)
    password = _check_password(_string(payload, "password"))
    role = _check_role(payload.get("role", "user"))
    if find_user(username) is not None:
        raise BadInput(f"user {username!r} already exists", status=409)
    user = User(username=username, role=role, password_hash=hash_password(password))
    db.session.add(user)
    db.session.commit()
    return jsonify(user.to_dict()), 201


def _existing(username):
    user = find_user(username)
    if user is None:
        raise BadInput(f"no user {username!r}", status=404)
    return user


@bp.patch("/users/<username>")
def update_user(username):
    """Change any of "password", "role", "active" (false disables)."""
    payload = json_body()
    if not payload:
        raise BadInput('send JSON with any of "password", "role", "active"')
    unknown = set(payload) - {"password", "role", "active"}
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    # Everything is checked before anything changes: no partial update.
    user = _existing(username)
    password = _string(payload, "password", required=False)
    if password is not None:
        _check_password(password)
    if "role" in payload:
        _check_role(payload["role"])
    if "active" in payload and not isinstance(payload["active"], bool):
        raise BadInput("'active' must be true or false")
    if password is not None:
        user.password_hash = hash_password(password)
    if "role" in payload:
        user.role = payload["role"]
    if "active" in payload:
        user.active = payload["active"]
    db.session.commit()
    return jsonify(user.to_dict())


@bp.delete("/users/<username>")
def delete_user(username):
    """Remove a user; their predictions and feedback stay."""
    db.session.delete(_existing(username))
    db.session.commit()
    return "", 204


# `flask --app app feedback reject ID`: the same veto from a shell.
cli = AppGroup("feedback", help="Review the feedback that trains the next model.")


@cli.command("reject")
@click.argument("feedback_id", type=click.IntRange(1, MAX_ID))
@click.option("--undo", is_flag=True, help="take an earlier rejection back")
def reject_command(feedback_id, undo):
    """Mark a feedback row rejected so it never trains a model."""
    row = db.session.get(Feedback, feedback_id)
    if row is None:
        raise click.ClickException(f"no feedback with id {feedback_id}")
    row.rejected = not undo
    db.session.commit()
    click.echo(f"feedback {feedback_id} ({row.label!r} by {row.username}) is "
               f"{'accepted' if undo else 'rejected'}")
