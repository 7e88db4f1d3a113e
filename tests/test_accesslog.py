"""The access log's lines are gunicorn's own, whatever the format names."""
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from sentiment.accesslog import AccessLogger, LazyAtoms

REPOSITORY_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(L)ss'
FORMATS = [
    REPOSITORY_FORMAT,
    Config().access_log_format,  # gunicorn's default
    " ".join(f"%({atom})s" for atom in "hlutrsmUqHbBfaTDMLp"),
    "%({User-Agent}i)s %({x-quoted}i)s %({X-TWICE}i)s %({Content-Type}o)s %({remote_addr}e)s "
    "%({wsgi.url_scheme}E)s %({missing}i)s %({missing}o)s %({missing}e)s %({odd}x)s %({odd})s",
    "%(nope)s %(Z)s %(u)s %(b)s %(B)s",
]


def request(auth="Basic " + __import__("base64").b64encode(b"ana:secret").decode(), sent=1234,
            status="200 OK"):
    environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "RAW_URI": "/predict?x=\"1\"",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/predict", "QUERY_STRING": 'x="1"',
               "HTTP_USER_AGENT": 'curl "8"', "HTTP_AUTHORIZATION": auth,
               "wsgi.url_scheme": "http", "wsgi.version": (1, 0)}
    req = SimpleNamespace(headers=[("User-Agent", 'curl "8"'), ("X-Quoted", 'a "b"'),
                                   ("X-Twice", "first"), ("x-twice", "second")])
    resp = SimpleNamespace(status=status, sent=sent,
                           headers=[("Content-Type", "application/json"), ("Content-Length", "9")])
    return resp, req, environ, timedelta(seconds=1, microseconds=2345)


@pytest.fixture
def loggers(monkeypatch):
    # The same time for both, whatever second the test runs in.
    monkeypatch.setattr(Logger, "now", lambda self: "[04/Dec/2026:19:30:00 +0000]")
    return Logger(Config()), AccessLogger(Config())


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("variant", [{}, {"auth": None, "sent": None, "status": 404},
                                     {"auth": "Basic !!!", "status": "500 Oops"}])
def test_lazy_atoms_give_gunicorns_line(loggers, form, variant):
    gunicorn, ours = loggers
    resp, req, environ, took = request(**variant)
    if environ["HTTP_AUTHORIZATION"] is None:
        del environ["HTTP_AUTHORIZATION"]
    expected = form % SafeAtoms(gunicorn.atoms(resp, req, environ, took))
    assert form % LazyAtoms(ours, resp, req, environ, took) == expected


def test_the_access_logger_writes_gunicorns_line(loggers, monkeypatch):
    gunicorn, ours = loggers
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    for logger in (gunicorn, ours):
        logger.cfg.set("accesslog", "-")
        logger.cfg.set("access_log_format", REPOSITORY_FORMAT)
        logger.setup(logger.cfg)
        logger.access_log.addHandler(handler)
        logger.access(*request())
    logging.getLogger("gunicorn.access").removeHandler(handler)
    assert lines[0] == lines[1]
    assert lines[1] == ('127.0.0.1 - ana [04/Dec/2026:19:30:00 +0000] '
                        '"POST /predict?x=\\"1\\" HTTP/1.1" 200 1234 1.002345s')


def test_the_repository_config_uses_it():
    import os
    import runpy
    config = runpy.run_path(os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                         "gunicorn.conf.py"))
    assert config["logger_class"] == "sentiment.accesslog.AccessLogger"
