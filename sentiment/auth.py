"""HTTP Basic auth through flask-basicauth: the bootstrap administrator from
the environment, users from the database, roles, failed sign-in throttling,
and the first-start credentials."""
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time

from flask import current_app, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_basicauth import BasicAuth as _BasicAuth
from sqlalchemy import event
from sqlalchemy.orm import Session, object_session
from werkzeug.security import check_password_hash, generate_password_hash

from . import PAGE_BLUEPRINTS, throttle
from .db import User
from .errors import error_response
from .users import find_user

# Endpoints anyone may reach; every other one (including blueprints added
# later) needs a signed-in user, so forgetting a decorator fails closed.
# The language switch only sets a preference cookie and redirects locally.
OPEN_ENDPOINTS = {"health.health", "static", "lang.switch"}


class _VerifiedCache:
    """Credentials already checked by this process, for a while.

    Basic auth sends the password with every request, and a deliberately
    slow hash per request would cap the service at a few requests a second.
    The key covers the stored hash, so a changed password misses at once;
    disabled and deleted users are looked up on every request anyway.
    """

    def __init__(self, size=4096):
        self._entries = {}
        self._size = size
        self._lock = threading.Lock()

    def key(self, username, password, stored_hash):
        secret = str(current_app.config["SECRET_KEY"]).encode()
        # JSON keeps the three parts apart whatever characters they hold.
        message = json.dumps([username, password, stored_hash]).encode()
        return hmac.new(secret, message, hashlib.sha256).digest()

    def __contains__(self, key):
        with self._lock:
            expires = self._entries.get(key)
        return expires is not None and expires > time.monotonic()

    def add(self, key):
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key] = time.monotonic() + current_app.config["AUTH_CACHE_SECONDS"]


verified = _VerifiedCache()


class _RecentSignIns:
    """Requests signed in moments ago by this process: (client address,
    Authorization header) -> (when, user, role), trusted for
    AUTH_RECHECK_SECONDS without the database.

    Looking the user up and counting failed sign-ins cost two queries, more
    than the prediction itself. Within the recheck interval nothing about
    this user can have changed in this process without forget() being
    called (a failed sign-in anywhere in the process, or any change to a
    user row); another process's change is seen at the next recheck.
    The client address is part of the key: a client locked out for its
    failures must not be let in on another client's recent sign-in.
    The key is the header as sent, so a repeated request is recognised
    before Werkzeug parses it; a keyed hash keeps passwords out of the
    table's keys.
    """

    def __init__(self, size=4096):
        self._entries = {}
        self._size = size
        # Bumped by forget(): a sign-in checked against the database before
        # a forget() must not be remembered after it.
        self.generation = 0

    @staticmethod
    def key(header):
        """The table's key for this request's Authorization header."""
        # No NUL in an address, so the two parts cannot run into each other.
        message = f"{request.remote_addr}\0{header}".encode("utf-8", "surrogatepass")
        return hashlib.blake2b(message, key=current_app.extensions["sign_in_key"],
                               digest_size=32).digest()

    def find(self, key):
        """(user, role) signed in under this key, if recent enough."""
        found = self._entries.get(key)
        if found is None:
            return None
        at, username, role = found
        if time.monotonic() - at >= current_app.config["AUTH_RECHECK_SECONDS"]:
            return None
        return username, role

    def add(self, key, username, role, checked_at, generation):
        """Remember a sign-in whose database checks started at checked_at
        (time.monotonic()) in the given generation."""
        if current_app.config["AUTH_RECHECK_SECONDS"] <= 0 or generation != self.generation:
            return
        if len(self._entries) >= self._size:
            self._entries = {}
        self._entries[key] = (checked_at, username, role)

    def forget(self):
        # Replaced, not cleared: a concurrent reader keeps a consistent dict.
        self.generation += 1
        self._entries = {}


recent = _RecentSignIns()


def _user_changed(mapper, connection, target):
    recent.forget()
    # Again at the commit: a request that read the old row between this
    # flush and the commit must not keep it.
    session = object_session(target)
    if session is not None:
        session.info["users_changed"] = True


def _committed(session):
    if session.info.pop("users_changed", False):
        recent.forget()


# A user created, re-roled, disabled, re-passworded or deleted by this
# process (page, API or CLI) counts from the next request on.
for _event in ("after_insert", "after_update", "after_delete"):
    event.listen(User, _event, _user_changed)
event.listen(Session, "after_commit", _committed)


def _same(given, expected):
    """Constant-time equality of two strings as UTF-8 bytes."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


class BasicAuth(_BasicAuth):
    """flask-basicauth with database users, roles and a constant-time check."""

    def check_credentials(self, username, password):
        """True for the bootstrap administrator or an active user with the
        right password; sets g.username and g.role.

        A password hash is always checked (the user's, or a dummy one when the
        name is unknown or is the bootstrap administrator's), and the
        bootstrap comparison always runs, so a wrong user name costs the same
        time as a wrong password.
        """
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        config = current_app.config
        boot_user = config.get("BASIC_AUTH_USERNAME") or ""
        boot_password = config.get("BASIC_AUTH_PASSWORD") or ""
        user = find_user(username) if username != boot_user else None
        stored_hash = user.password_hash if user is not None else current_app.extensions["dummy_password_hash"]
        key = verified.key(username, password, stored_hash if user is not None else boot_password)
        if key in verified:
            ok = True
        else:
            hash_ok = check_password_hash(stored_hash, password) and user is not None
            boot_ok = _same(username, boot_user) & _same(password, boot_password) & bool(boot_password)
            ok = hash_ok or boot_ok
            if ok:
                verified.add(key)
        if not ok or (user is not None and not user.active):
            return False
        g.username = username
        g.role = user.role if user is not None else "admin"
        return True

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
        """Sign the request in, or answer 401 (bad credentials) or 429 (too
        many recent failures for this client or this user name)."""
        if "username" in g:
            return None
        header = request.environ.get("HTTP_AUTHORIZATION")
        key = recent.key(header) if header else None
        if key is not None:
            found = recent.find(key)
            if found is not None:
                g.username, g.role = found
                return None
        given = request.authorization
        if given is None or given.type != "basic":
            return self.challenge()
        checked_at, generation = time.monotonic(), recent.generation
        wait = throttle.retry_after(given.username)
        if wait > 0:
            seconds = max(1, int(wait + 0.999))
            body, status = error_response(
                429, f"too many failed sign-ins; try again in {seconds} s")
            response = current_app.make_response((body, status))
            response.headers["Retry-After"] = str(seconds)
            return response
        if self.authenticate():
            recent.add(key, g.username, g.role, checked_at, generation)
            return None
        recent.forget()
        throttle.record_failure(given.username)
        return self.challenge()


basic_auth = BasicAuth()


def is_admin():
    return g.get("role") == "admin"


def require_admin():
    """A before_request hook (or a call) for administrators' actions."""
    if not is_admin():
        return error_response(403, "forbidden: this needs the admin role")
    return None


def require_sign_in():
    """The app-wide hook: every endpoint but the open ones needs a user."""
    if request.endpoint is None or request.endpoint in OPEN_ENDPOINTS:
        return None
    return basic_auth.require()


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
    app.before_request(require_sign_in)
    # blake2b takes a key of at most 64 bytes; SECRET_KEY may be longer.
    app.extensions["sign_in_key"] = hashlib.sha256(
        b"recent sign-ins\0" + str(app.config["SECRET_KEY"]).encode()).digest()
    # Checked in place of a real hash when a user name is unknown, with the
    # same method and cost, so that case is not faster.
    app.extensions["dummy_password_hash"] = generate_password_hash(
        secrets.token_urlsafe(16), method=app.config["PASSWORD_HASH_METHOD"])
    if app.config["BASIC_AUTH_PASSWORD"] or not app.config["BOOTSTRAP_CREDENTIALS"]:
        return
    path = os.path.join(app.instance_path, "admin-password")
    created = not os.path.exists(path)
    app.config["BASIC_AUTH_PASSWORD"] = read_or_create_secret(
        path, lambda: secrets.token_urlsafe(24))
    user = app.config["BASIC_AUTH_USERNAME"]
    app.extensions["generated_password_file"] = path
    print(f"{'Generated' if created else 'Using'} the password for user {user!r} in {path} "
          "(readable only by its owner; set BASIC_AUTH_PASSWORD to choose your own).",
          file=sys.stderr, flush=True)


def curl_hint(app, base_url):
    """A curl command that predicts with the generated password, for the
    server to print once it knows its own address (create_app does not:
    `python app.py` and gunicorn listen on different ports); None when the
    password is the environment's."""
    path = app.extensions.get("generated_password_file")
    if path is None:
        return None
    return (f"  Try: curl -u {app.config['BASIC_AUTH_USERNAME']}:$(cat {path}) -X POST "
            f"'{base_url}/predict?text=me%20encanta'")
