"""HTTP Basic auth through flask-basicauth, and the first-start credentials."""
import hmac
import os
import secrets
import sys

from flask import current_app, g, jsonify, render_template, request
from flask_basicauth import BasicAuth as _BasicAuth
from flask_babel import gettext as _

from . import PAGE_BLUEPRINTS


class BasicAuth(_BasicAuth):
    """flask-basicauth with a constant-time check that never raises."""

    def check_credentials(self, username, password):
        """Compare as UTF-8 bytes in constant time; both comparisons always
        run, so a wrong user name costs the same as a wrong password."""
        expected_user = current_app.config.get("BASIC_AUTH_USERNAME") or ""
        expected_password = current_app.config.get("BASIC_AUTH_PASSWORD")
        if not expected_password:
            return False
        try:
            given_user = str(username).encode("utf-8")
            given_password = str(password).encode("utf-8")
        except UnicodeError:
            return False
        user_ok = hmac.compare_digest(given_user, expected_user.encode("utf-8"))
        password_ok = hmac.compare_digest(given_password, expected_password.encode("utf-8"))
        return user_ok & password_ok

    def authenticate(self):
        """True for good credentials, remembering who made the request."""
        if super().authenticate():
            g.username = request.authorization.username
            return True
        return False

    def challenge(self):
        """401 with the Basic challenge: JSON for API clients, a page for people."""
        realm = current_app.config["BASIC_AUTH_REALM"]
        if request.blueprint in PAGE_BLUEPRINTS:
            response = current_app.make_response(
                (render_template("error.html", code=401,
                                 message=_("Sign in with your user name and password.")), 401))
        else:
            response = jsonify(error="authentication required: send HTTP Basic credentials "
                                     "(curl -u USER:PASSWORD ...)")
            response.status_code = 401
        response.headers["WWW-Authenticate"] = f'Basic realm="{realm}", charset="UTF-8"'
        return response

    def require(self):
        """A before_request hook for blueprints whose every view needs a user."""
        if not self.authenticate():
            return self.challenge()
        return None


basic_auth = BasicAuth()


def read_or_create_secret(path, make):
    """The secret stored at `path`, creating it (mode 0600) if it is missing.

    The file is written under a temporary name and linked into place, so two
    workers starting at once agree on a single secret.
    """
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()


def init_app(app):
    """Wire the auth extension and make sure a password exists."""
    basic_auth.init_app(app)
    if app.config["BASIC_AUTH_PASSWORD"] or not app.config["BOOTSTRAP_CREDENTIALS"]:
        return
    path = os.path.join(app.instance_path, "admin-password")
    created = not os.path.exists(path)
    app.config["BASIC_AUTH_PASSWORD"] = read_or_create_secret(
        path, lambda: secrets.token_urlsafe(24))
    user = app.config["BASIC_AUTH_USERNAME"]
    print(f"{'Generated' if created else 'Using'} the password for user {user!r} in {path} "
          "(readable only by its owner; set BASIC_AUTH_PASSWORD to choose your own).\n"
          f"  Try: curl -u {user}:$(cat {path}) -X POST "
          "'http://127.0.0.1:5000/predict?text=me%20encanta'",
          file=sys.stderr, flush=True)
