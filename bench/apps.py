"""The ceiling apps bench.load serves under the same gunicorn config as the
service: what Flask itself costs, then Flask plus the service's Basic auth.

    gunicorn -c gunicorn.conf.py bench.apps:hello
    gunicorn -c gunicorn.conf.py bench.apps:auth_only
"""
import os

from flask import Flask, jsonify

from sentiment.auth import basic_auth

hello = Flask("hello")


@hello.route("/", methods=["GET", "POST"])
def hello_world():
    return "Hello, World!"


auth_only = Flask("auth_only")
auth_only.config.update(
    BASIC_AUTH_USERNAME=os.environ.get("BASIC_AUTH_USERNAME", "admin"),
    BASIC_AUTH_PASSWORD=os.environ.get("BASIC_AUTH_PASSWORD"),
    BASIC_AUTH_REALM="sentiment-api",
)
# The same extension instance and check the service's blueprints use.
basic_auth.init_app(auth_only)


@auth_only.route("/", methods=["GET", "POST"])
def authenticated():
    denied = basic_auth.require()
    if denied is not None:
        return denied
    return jsonify(ok=True)
