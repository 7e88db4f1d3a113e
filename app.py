"""sentiment-api: create_app() builds the service; `python app.py` serves it.

Where a request goes:
  GET  /health                     sentiment/health.py  (no authentication)
  POST /predict, /feedback         sentiment/api.py     (JSON, Basic auth)
  GET  /predictions                sentiment/api.py     (own, or all for an admin)
  GET  /, POST /, /p/<id>[...]     sentiment/web.py     (the page, CSRF token)
  GET  /history                    sentiment/history.py (the user's own predictions)
  GET, POST /batch[/texts]         sentiment/batch.py   (file upload -> CSV)
  GET  /insight                    sentiment/insight.py (charts)
  GET  /lang/<code>                sentiment/i18n.py    (language switch, no auth)
  GET  /feedback[/export], POST /feedback/<id>/reject,
  GET|POST /users, PATCH|DELETE /users/<name>
                                   sentiment/admin.py   (admin role only)
Every endpoint but /health, /lang and static files needs a signed-in user
(sentiment/auth.py); sentiment/security.py adds CSRF tokens, the cross-site
check and the security headers. Each view calls sentiment/service.py, which
uses the model in memory (sentiment/model.py) and the database (sentiment/db.py).
CLI: `flask --app app users ...`, `flask --app app feedback reject ID`.
"""
import logging
import os
import sys

from flask import Flask

from sentiment import (admin, api, auth, batch, db, errors, health, history, i18n, insight,
                       jsonanswers, security, users, web)
from sentiment.config import DEFAULT_MODEL_PATH, DEFAULTS, database_url, from_environment
from sentiment.config import check as check_settings
from sentiment.model import ModelHolder


def create_app(test_config=None, instance_path=None):
    """Build the app: defaults, instance config.py, the environment, then
    `test_config`, in that order of precedence."""
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(from_environment())
    if test_config:
        app.config.update(test_config)
    check_settings(app.config)
    os.makedirs(app.instance_path, exist_ok=True)

    app.config["SQLALCHEMY_DATABASE_URI"] = database_url(
        app.config["SQLALCHEMY_DATABASE_URI"], app.instance_path)
    app.config["MODEL_PATH"] = os.path.abspath(app.config["MODEL_PATH"] or DEFAULT_MODEL_PATH)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = auth.read_or_create_secret(
            os.path.join(app.instance_path, "secret-key"), lambda: os.urandom(32).hex())

    _log_to_stderr()
    db.init_app(app)
    # Order matters: sign-in first, then the cross-site and CSRF checks.
    auth.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    jsonanswers.init_app(app)
    i18n.init_app(app)
    app.extensions["sentiment_model"] = ModelHolder(
        app.config["MODEL_PATH"], app.config["MODEL_CHECK_INTERVAL"], app.config["LOAD_MODEL"])

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(history.bp)
    app.register_blueprint(batch.bp)
    app.register_blueprint(insight.bp)
    app.register_blueprint(admin.bp)
    # JSON clients (curl) have no token; they get the cross-site check instead.
    security.csrf.exempt(api.bp)
    security.csrf.exempt(admin.bp)
    app.cli.add_command(users.cli)
    app.cli.add_command(admin.cli)
    return app


def _log_to_stderr():
    """Show the service's own INFO lines (model loaded, reloaded, refused)
    under gunicorn too, where nothing configures Python logging."""
    logger = logging.getLogger("sentiment")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def __getattr__(name):
    # `gunicorn app:app` and `from app import app` build the app on first
    # use, so importing create_app (tests, train.py) has no side effects.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    application = create_app()
    # Local by default: listening beyond this machine is a deliberate choice.
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "5000"))
    hint = auth.curl_hint(application, f"http://{host}:{port}")
    if hint:
        print(hint, file=sys.stderr, flush=True)
    application.run(host=host, port=port)
