"""The access log's lines are gunicorn's own, whatever the format names."""
import base64
import logging
import socket
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms
from gunicorn.instrument.statsd import Statsd

from sentiment.accesslog import AccessLogger, StatsdAccessLogger

REPOSITORY_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(L)ss'
FORMATS = [
    REPOSITORY_FORMAT,
    Config().access_log_format,  # gunicorn's default
    " ".join(f"%({atom})s" for atom in "hlutrsmUqHbBfaTDMLp"),
    "%({User-Agent}i)s %({x-quoted}i)s %({X-TWICE}i)s %({Content-Type}o)s %({remote_addr}e)s "
    "%({wsgi.url_scheme}E)s %({missing}i)s %({missing}o)s %({missing}e)s %({odd}x)s %({odd})s",
    "%(nope)s %(Z)s %(u)s %(b)s %(B)s %(D)d %(T)05d",
    "%(nope)s %({nothing}i)s",  # nothing it knows
    "%s",  # positional: gunicorn's own atoms
    "no atoms at all, 100%%",
]


def request(auth="Basic " + base64.b64encode(b"ana:secret").decode(), sent=1234,
            status="200 OK"):
    environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "RAW_URI": "/predict?x=\"1\"",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/predict", "QUERY_STRING": 'x="1"',
               "HTTP_USER_AGENT": 'curl "8"', "wsgi.url_scheme": "http", "wsgi.version": (1, 0)}
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = auth
    req = SimpleNamespace(headers=[("User-Agent", 'curl "8"'), ("X-Quoted", 'a "b"'),
                                   ("X-Twice", "first"), ("x-twice", "second")])
    resp = SimpleNamespace(status=status, sent=sent,
                           headers=[("Content-Type", "application/json"), ("Content-Length", "9")])
    return resp, req, environ, timedelta(seconds=1, microseconds=2345)


def configured(form=REPOSITORY_FORMAT, **settings):
    config = Config()
    config.set("access_log_format", form)
    for name, value in settings.items():
        config.set(name, value)
    return config


@pytest.fixture(autouse=True)
def same_time(monkeypatch):
    # The same time for both loggers, whatever second the test runs in.
    monkeypatch.setattr(Logger, "now", lambda self: "[04/Dec/2026:19:30:00 +0000]")


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("variant", [{}, {"auth": None, "sent": None, "status": 404},
                                     {"auth": "Basic !!!", "status": "500 Oops"}])
def test_its_atoms_make_gunicorns_line(form, variant):
    gunicorn, ours = Logger(configured(form)), AccessLogger(configured(form))
    arguments = request(**variant)
    expected = form % SafeAtoms(gunicorn.atoms(*arguments))
    assert form % SafeAtoms(ours.atoms(*arguments)) == expected


def test_it_makes_only_the_atoms_the_format_names():
    atoms = AccessLogger(configured()).atoms(*request())
    assert sorted(atoms) == sorted("hlutrsbL")


@pytest.fixture
def lines():
    """The messages the access log writes, while the test runs."""
    written = []
    handler = logging.Handler()
    handler.emit = lambda record: written.append(record.getMessage())
    yield written, handler
    logging.getLogger("gunicorn.access").removeHandler(handler)


@pytest.mark.parametrize("form", [REPOSITORY_FORMAT, "%s"])
def test_the_access_logger_writes_gunicorns_line(lines, form):
    written, handler = lines
    for logger in (Logger(configured(form, accesslog="-")),
                   AccessLogger(configured(form, accesslog="-"))):
        logger.access_log.addHandler(handler)
        logger.access(*request())
    assert len(written) == 2 and written[0] == written[1]
    if form == REPOSITORY_FORMAT:
        assert written[1] == ('127.0.0.1 - ana [04/Dec/2026:19:30:00 +0000] '
                              '"POST /predict?x=\\"1\\" HTTP/1.1" 200 1234 1.002345s')


def test_with_a_statsd_host_it_also_sends_gunicorns_metrics(lines):
    """As gunicorn's default logger turns into its Statsd logger."""
    written, handler = lines
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        host = "127.0.0.1:%d" % server.getsockname()[1]
        logger = AccessLogger(configured(accesslog="-", statsd_host=host))
        assert isinstance(logger, StatsdAccessLogger) and isinstance(logger, Statsd)
        logger.access_log.addHandler(handler)
        try:
            logger.access(*request())
            metrics = {server.recv(1000).decode().split(":")[0] for _ in range(3)}
        finally:
            logger.sock.close()
    assert metrics == {"gunicorn.request.duration", "gunicorn.requests",
                       "gunicorn.request.status.200"}
    assert written[0].startswith("127.0.0.1 - ana ")
    assert type(AccessLogger(configured())) is AccessLogger


def test_the_repository_config_uses_it():
    import os
    import runpy
    config = runpy.run_path(os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                         "gunicorn.conf.py"))
    assert config["logger_class"] == "sentiment.accesslog.AccessLogger"
