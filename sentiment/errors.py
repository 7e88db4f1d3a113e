"""Every error as JSON for API clients or as a readable page for people."""
import logging

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import ClientDisconnected, HTTPException

from . import PAGE_BLUEPRINTS
from .db import db

log = logging.getLogger(__name__)

MESSAGES = {
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    429: "too many requests",
}


class BadInput(Exception):
    """Client input that cannot be used; answered with `status` and `message`."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.message = message
        self.status = status


def wants_html():
    """The page's own views, or a browser asking for a page, get HTML errors.

    The page's scripts ask its views for JSON (Accept: application/json)
    and get their errors as JSON too.
    """
    if request.blueprint in PAGE_BLUEPRINTS:
        best = request.accept_mimetypes.best_match(["text/html", "application/json"])
        return not (best == "application/json"
                    and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"])
    if request.blueprint is None:
        best = request.accept_mimetypes.best_match(["application/json", "text/html"])
        return best == "text/html" and request.accept_mimetypes[best] > request.accept_mimetypes["application/json"]
    return False


def error_response(status, message):
    """The one way every error leaves the service."""
    if wants_html():
        return render_template("error.html", code=status, message=message), status
    return jsonify(error=message), status


def init_app(app):
    """Register the handlers that turn exceptions into error responses."""

    @app.errorhandler(BadInput)
    def bad_input(exc):
        return error_response(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        message = MESSAGES.get(exc.code, (exc.name or "error").lower())
        if isinstance(exc, CSRFError):
            # A form without a valid token: from another site, or a page
            # left open past the token's lifetime.
            message = f"{exc.description} Reload the page and send the form again."
        if isinstance(exc, ClientDisconnected):
            if isinstance(exc.__context__, TimeoutError):
                # gunicorn's worker bounds each read (sentiment/worker.py).
                return error_response(408, "the request body stopped arriving; "
                                           "send the request again")
            message = "the request body ended early"
        if exc.code == 413:
            message += f" (limit {app.config['MAX_CONTENT_LENGTH']} bytes)"
        response = error_response(exc.code, message)
        if exc.code == 405 and exc.valid_methods:
            body, status = response
            response = app.make_response((body, status))
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(SQLAlchemyError)
    def database_error(exc):
        db.session.rollback()
        log.exception("database error")
        return error_response(503, "the database is unavailable; nothing was stored, try again")

    @app.errorhandler(Exception)
    def unexpected(exc):
        # Never a traceback in a response: it is logged for the operator.
        log.exception("unhandled error")
        return error_response(500, "internal error; it has been logged")
