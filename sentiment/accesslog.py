"""gunicorn's access log, each line with only the atoms its format names.

gunicorn builds every atom it knows for every request before it writes a
line: about twenty values, a "{name}i" entry per request header, a
"{name}o" per response header and a "{name}e" per WSGI environ variable
(some thirty), then copies them all to escape their quotes. The
repository's format names eight of them. Under one-text load that took
10 % of a worker's time (py-spy), hello-world's and the service's alike.
Here each atom is worked out when the format asks for it, the way
gunicorn works it out, so the lines are the same for any access_log_format
(gunicorn.conf.py sets logger_class to AccessLogger).
"""
import os
import traceback
from collections.abc import Mapping

from gunicorn.glogging import Logger


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


class LazyAtoms(Mapping):
    """What gunicorn's SafeAtoms(logger.atoms(...)) gives for each key,
    each worked out on first use: quotes escaped in str values, "-" for an
    atom it does not know, "{name}i/o/e" looked up without regard to case."""

    def __init__(self, logger, resp, req, environ, request_time):
        self._arguments = (logger, resp, req, environ, request_time)
        self._values = {}
        self._headers = {}

    def _value(self, key):
        if key.startswith("{"):
            key = key.lower()
            headers = self._headers.get(key[-1:])
            if headers is None:
                headers = self._headers[key[-1:]] = self._named(key[-1:])
            return headers.get(key, "-")
        atom = _ATOMS.get(key)
        return "-" if atom is None else atom(*self._arguments)

    def _named(self, kind):
        """gunicorn's "{name}<kind>" atoms of one kind: i, o or e."""
        _, resp, req, environ, _ = self._arguments
        if kind == "i":
            pairs = _pairs(req.headers if hasattr(req, "headers") else req)
        elif kind == "o":
            pairs = _pairs(resp.headers)
        elif kind == "e":
            pairs = environ.items()
        else:
            return {}
        return {"{%s}%s" % (name.lower(), kind): value for name, value in pairs}

    def __getitem__(self, key):
        try:
            return self._values[key]
        except KeyError:
            pass
        value = self._value(key)
        if isinstance(value, str):
            value = value.replace('"', '\\"')
        self._values[key] = value
        return value

    # A non-empty mapping: logging takes a lone non-empty Mapping argument
    # as the values of the format's %(name)s.
    def __iter__(self):
        return iter(_ATOMS)

    def __len__(self):
        return len(_ATOMS)


class AccessLogger(Logger):
    """gunicorn's Logger, its access lines made from LazyAtoms."""

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info(self.cfg.access_log_format,
                                 LazyAtoms(self, resp, req, environ, request_time))
        except Exception:
            self.error(traceback.format_exc())
