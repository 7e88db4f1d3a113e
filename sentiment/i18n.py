"""Spanish and English for the page, through Flask-Babel.

The page speaks the language the person chose (a cookie), else the one
their browser asks for (Accept-Language), else English. The JSON API is
never translated: its labels and messages stay English for programs.
"""
from urllib.parse import urlsplit

from flask import Blueprint, redirect, request, url_for
from flask_babel import Babel, format_number, get_locale, lazy_gettext as _l
from jinja2 import pass_context

LANGUAGES = {"en": "English", "es": "Español"}
COOKIE = "lang"
# A year: the choice should outlive the browser session.
COOKIE_MAX_AGE = 365 * 24 * 3600

# The three labels as people read them; the stored value stays English.
LABEL_NAMES = {
    "negative": _l("negative"),
    "neutral": _l("neutral"),
    "positive": _l("positive"),
}

babel = Babel()
bp = Blueprint("lang", __name__)


def select_locale():
    """The chosen language (cookie), else the browser's, else English."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def label_name(label):
    """A stored label in the page's language ("positive" -> "positivo")."""
    return LABEL_NAMES.get(label, label)


def local_path(target, default):
    """`target` if it is a path on this site, else `default`, so a crafted
    link cannot bounce people to another site."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return default
    return target


@bp.get("/lang/<code>")
def switch(code):
    """Remember the language and go back to the page the switch was on."""
    back = local_path(request.args.get("next"), url_for("web.index"))
    response = redirect(back, code=303)
    if code in LANGUAGES:
        response.set_cookie(COOKIE, code, max_age=COOKIE_MAX_AGE, httponly=True,
                            samesite="Lax", secure=request.is_secure)
    return response


def per_request(function):
    """A template filter Jinja must not evaluate at compile time: on a
    constant ('negative' | label_name) it would fold in the language of the
    request that compiled the template."""
    @pass_context
    def template_filter(_context, value):
        return function(value)
    return template_filter


def init_app(app):
    """Install Babel, the language switch and the template helpers."""
    babel.init_app(app, locale_selector=select_locale)
    app.register_blueprint(bp)
    app.jinja_env.filters["label_name"] = per_request(label_name)
    app.jinja_env.filters["number"] = per_request(format_number)

    @app.context_processor
    def language_helpers():
        return {"LANGUAGES": LANGUAGES, "current_language": str(get_locale() or "en")}
