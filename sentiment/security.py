"""Defences against hostile pages: CSRF tokens on the page's forms, a
cross-site check on the JSON API, and security headers on every response."""
from urllib.parse import urlsplit

from flask import current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import error_response

csrf = CSRFProtect()

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# No inline script or style anywhere: a stored text that slipped past
# escaping still could not run. No framing: no clickjacking of the buttons.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    # The batch page builds its CSV download as a blob: URL in the page.
    "connect-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def cross_site_reason():
    """Why a browser says this request comes from another site, or None.

    curl and other programs send neither header and pass. A browser sends
    Sec-Fetch-Site on every request (modern ones) and Origin on every POST;
    a page on another origin cannot forge either.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower():
            return f"Origin {origin!r} is not this site"
    return None


def refuse_cross_site():
    """A before_request hook: writes that a browser marks as coming from
    another site are refused, whatever credentials the browser attaches."""
    if request.method not in UNSAFE_METHODS:
        return None
    reason = cross_site_reason()
    if reason:
        return error_response(403, f"cross-site request refused ({reason})")
    return None


def limit_chunked_body():
    """413 for a chunked body over MAX_CONTENT_LENGTH, reading no more than
    the limit.

    A Content-Length over the limit is refused by Werkzeug before any read.
    Without one (Transfer-Encoding: chunked under gunicorn), Werkzeug stops
    reading at the limit but hands over the truncated body as if it were
    whole (a misleading "malformed JSON"); one more byte from the server's
    stream tells a body of exactly the limit from a longer one.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if (limit is None or request.content_length is not None
            or "wsgi.input_terminated" not in request.environ):
        return
    if len(request.get_data(cache=True)) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def add_headers(response):
    """The security headers, except where the view set its own."""
    present = {name.lower() for name in response.headers.keys()}
    response.headers.extend([(name, value) for name, value in HEADERS.items()
                             if name.lower() not in present])
    return response


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with nothing built for a request
    without the cookie (every curl call): it gets a new empty session."""

    def open_session(self, app, request):
        # No Cookie header at all (curl, programs): nothing to parse.
        if not request.environ.get("HTTP_COOKIE") or self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app):
    """Register after auth.init_app: the token is checked only once the user
    is known, so a signed-out form post still gets 401, not a token error."""
    app.before_request(refuse_cross_site)
    app.before_request(limit_chunked_body)
    csrf.init_app(app)
    app.session_interface = CookieSessions()
    app.after_request(add_headers)
