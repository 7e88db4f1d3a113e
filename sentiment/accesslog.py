"""gunicorn's access log, each line built from only the atoms its format names.

gunicorn's Logger.atoms() makes every atom it knows for every request:
about twenty values, a "{name}i" entry per request header, a "{name}o" per
response header and a "{name}e" per WSGI environ variable (some thirty),
which access() then copies to escape their quotes. The repository's format
names eight of them. Under one-text load that took 10 % of a worker's time
(py-spy), hello-world's and the service's alike. AccessLogger.atoms() gives
just the atoms the format names, each worked out as gunicorn works it out,
and leaves the rest of access() (the escaping, "-" for what is missing, the
line itself) to gunicorn, so the lines are the same for any
access_log_format. gunicorn.conf.py sets logger_class to AccessLogger; with
a statsd host configured it becomes StatsdAccessLogger, as gunicorn's own
default logger becomes its Statsd logger.
"""
import os

from gunicorn.glogging import Logger
from gunicorn.instrument.statsd import Statsd


def _status(resp):
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


def _sent(resp):
    return getattr(resp, "sent", None)


def _pairs(headers):
    """A headers object as gunicorn's atoms() reads it: (name, value) pairs."""
    return headers.items() if hasattr(headers, "items") else headers


# Each atom of gunicorn's Logger.atoms(), from (logger, resp, req, environ,
# request_time).
_ATOMS = {
    "h": lambda log, resp, req, environ, rt: environ.get("REMOTE_ADDR", "-"),
    "l": lambda log, resp, req, environ, rt: "-",
    "u": lambda log, resp, req, environ, rt: log._get_user(environ) or "-",
    "t": lambda log, resp, req, environ, rt: log.now(),
    "r": lambda log, resp, req, environ, rt: "%s %s %s" % (
        environ["REQUEST_METHOD"], environ["RAW_URI"], environ["SERVER_PROTOCOL"]),
    "s": lambda log, resp, req, environ, rt: _status(resp),
    "m": lambda log, resp, req, environ, rt: environ.get("REQUEST_METHOD"),
    "U": lambda log, resp, req, environ, rt: environ.get("PATH_INFO"),
    "q": lambda log, resp, req, environ, rt: environ.get("QUERY_STRING"),
    "H": lambda log, resp, req, environ, rt: environ.get("SERVER_PROTOCOL"),
    "b": lambda log, resp, req, environ, rt: _sent(resp) is not None and str(resp.sent) or "-",
    "B": lambda log, resp, req, environ, rt: _sent(resp),
    "f": lambda log, resp, req, environ, rt: environ.get("HTTP_REFERER", "-"),
    "a": lambda log, resp, req, environ, rt: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda log, resp, req, environ, rt: rt.seconds,
    "D": lambda log, resp, req, environ, rt: rt.seconds * 1000000 + rt.microseconds,
    "M": lambda log, resp, req, environ, rt: rt.seconds * 1000 + int(rt.microseconds / 1000),
    "L": lambda log, resp, req, environ, rt: "%d.%06d" % (rt.seconds, rt.microseconds),
    "p": lambda log, resp, req, environ, rt: "<%s>" % os.getpid(),
}


class _Names(dict):
    """Records the keys a %-format asks for (each given 0, which every
    conversion takes)."""

    def __getitem__(self, key):
        self[key] = None
        return 0


_names_of = {}


def names_in(form):
    """The keys of the %(key)s placeholders of an access_log_format, in the
    spelling SafeAtoms looks them up with ("{...}" ones lower-cased); None
    when it has none or cannot be read that way (a positional "%s"): then
    gunicorn's own atoms() serves it."""
    if form not in _names_of:
        recorder = _Names()
        try:
            form % recorder
        except Exception:
            names = None
        else:
            names = tuple(dict.fromkeys(key.lower() if key.startswith("{") else key
                                        for key in recorder)) or None
        _names_of[form] = names
    return _names_of[form]


def _named(kind, resp, req, environ):
    """gunicorn's "{name}<kind>" atoms of one kind (i, o or e), or None."""
    if kind == "i":
        pairs = _pairs(req.headers if hasattr(req, "headers") else req)
    elif kind == "o":
        pairs = _pairs(resp.headers)
    elif kind == "e":
        pairs = environ.items()
    else:
        return None
    return {"{%s}%s" % (name.lower(), kind): value for name, value in pairs}


class AccessLogger(Logger):
    """gunicorn's Logger, its atoms() limited to what the format names."""

    def __new__(cls, cfg):
        # What gunicorn does for its default logger: with a statsd host it
        # sends the metrics too.
        if cls is AccessLogger and getattr(cfg, "statsd_host", None):
            cls = StatsdAccessLogger
        return super().__new__(cls)

    def atoms(self, resp, req, environ, request_time):
        """The entries of gunicorn's atoms() that the format names, worked
        out now (what access() then escapes and formats); gunicorn's own
        for a format whose names cannot be read."""
        names = names_in(self.cfg.access_log_format)
        if names is None:
            return super().atoms(resp, req, environ, request_time)
        arguments = (self, resp, req, environ, request_time)
        atoms, named = {}, {}
        for key in names:
            if key.startswith("{"):
                kind = key[-1:]
                if kind not in named:
                    named[kind] = _named(kind, resp, req, environ)
                if named[kind] is not None and key in named[kind]:
                    atoms[key] = named[kind][key]
            elif key in _ATOMS:
                atoms[key] = _ATOMS[key](*arguments)
        # Empty, logging would not take it for the format's mapping.
        return atoms or super().atoms(resp, req, environ, request_time)


class StatsdAccessLogger(AccessLogger, Statsd):
    """gunicorn's Statsd logger (metrics for every request) with
    AccessLogger's atoms()."""
