"""The unauthenticated health check for load balancers and people."""
from flask import Blueprint, current_app, jsonify

from .model import ModelUnavailable

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """200 with the model version, or 503 saying why there is no model."""
    try:
        model = current_app.extensions["sentiment_model"].get()
    except ModelUnavailable as exc:
        return jsonify(status="unavailable", model_version=None, error=str(exc)), 503
    return jsonify(status="ok", model_version=model.version)
