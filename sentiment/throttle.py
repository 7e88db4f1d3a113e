"""Failed sign-in throttling, shared by every worker through the database.

A client address or a user name with too many failures inside the window is
refused (429) until enough of them are older than the window; a correct
password then works again. Counting in the database, not in memory, keeps
the limit the same whatever number of gunicorn workers serve the requests.
"""
import hashlib
from datetime import timedelta

from flask import current_app, request

from .db import LoginFailure, db, utcnow


def keys(username):
    """The throttling keys of this request: client address and user name.
    The name is hashed: it is attacker-chosen text of any length."""
    name = hashlib.sha256((username or "").encode("utf-8", "replace")).hexdigest()[:40]
    return {f"ip:{request.remote_addr or '?'}"[:80]: current_app.config["LOGIN_MAX_FAILURES_PER_CLIENT"],
            f"user:{name}": current_app.config["LOGIN_MAX_FAILURES_PER_USER"]}


def retry_after(username):
    """Seconds until a sign-in may be tried again, or 0 when it may be now."""
    limits = keys(username)
    window = timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW"])
    now = utcnow()
    rows = db.session.execute(
        db.select(LoginFailure.key, LoginFailure.at)
        .where(LoginFailure.key.in_(list(limits)), LoginFailure.at > now - window)
        .order_by(LoginFailure.at.desc())
    ).all()
    wait = 0.0
    for key, limit in limits.items():
        times = [at for k, at in rows if k == key]
        if len(times) >= limit:
            # Free again when the limit-th most recent failure leaves the window.
            wait = max(wait, (times[limit - 1] + window - now).total_seconds())
    return wait


def record_failure(username):
    """Remember a failed sign-in; forget failures older than the window."""
    now = utcnow()
    window = timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW"])
    db.session.execute(db.delete(LoginFailure).where(LoginFailure.at <= now - window))
    db.session.add_all([LoginFailure(key=key, at=now) for key in keys(username)])
    db.session.commit()
