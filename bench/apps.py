"""The ceiling apps bench.load serves under the same gunicorn config as the
service: what Flask itself costs, then Flask plus the service's Basic auth.

    gunicorn -c gunicorn.conf.py bench.apps:hello
    gunicorn -c gunicorn.conf.py bench.apps:auth_only
"""
import os
import tempfile

from flask import Flask, jsonify

from sentiment import auth, db
from sentiment.config import DEFAULTS

hello = Flask("hello")


@hello.route("/", methods=["GET", "POST"])
@hello.route("/<path:_>", methods=["GET", "POST"])
def hello_world(_=None):
    return "Hello, World!"


auth_only = Flask("auth_only")
# The service's own sign-in, with what it needs: its defaults, a database
# (users and failed sign-ins live there) and the same extension instance.
auth_only.config.from_mapping(DEFAULTS)
auth_only.config.update(
    BASIC_AUTH_USERNAME=os.environ.get("BASIC_AUTH_USERNAME", "admin"),
    BASIC_AUTH_PASSWORD=os.environ.get("BASIC_AUTH_PASSWORD"),
    SECRET_KEY=os.environ.get("SECRET_KEY", "bench"),
    SQLALCHEMY_DATABASE_URI=os.environ.get("BENCH_AUTH_DATABASE_URL") or "sqlite:///" + os.path.join(
        tempfile.gettempdir(), f"bench-auth-{os.getppid()}.sqlite"),
)
db.init_app(auth_only)
# Without BASIC_AUTH_PASSWORD the sign-in writes a generated one there, as
# the service does (create_app makes the folder; a fresh clone has none).
os.makedirs(auth_only.instance_path, exist_ok=True)
auth.init_app(auth_only)


@auth_only.route("/", methods=["GET", "POST"])
@auth_only.route("/<path:_>", methods=["GET", "POST"])
def authenticated(_=None):
    # auth.init_app's app-wide hook has already signed the request in.
    return jsonify(ok=True)
