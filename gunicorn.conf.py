"""gunicorn settings for `gunicorn app:app` (read from this folder by default).

Everything can be overridden from the environment or the command line.
"""
import multiprocessing
import os

# Local only unless told otherwise, like `python app.py`.
bind = [os.environ.get("GUNICORN_BIND",
                       f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}")]


def default_workers(environ=os.environ, cpus=None):
    """Synchronous workers when WEB_CONCURRENCY does not say.

    Prediction is CPU-bound: on SQLite one worker per core keeps every core
    busy without threads contending for the GIL or for the write lock (a
    worker per core: 1,635-1,674 req/s against 1,582-1,628 with two; one-text
    predictions at 16 connections, 2 cores). On PostgreSQL every commit
    waits for the server to flush its WAL, with the worker idle: two workers
    per core fill that wait (1,070-1,078 -> 1,208-1,215 req/s, p99 22 ->
    17.5 ms), unless POSTGRES_SYNCHRONOUS_COMMIT=off took the wait away
    (there, 1,531 -> 1,471). Batches of 100, all CPU, lose a little to the
    extra workers (189-201 -> 180-185 req/s): one-text requests are what
    people send most.
    """
    cpus = cpus or multiprocessing.cpu_count()
    url = environ.get("DATABASE_URL", "")
    waits_for_flush = str(environ.get("POSTGRES_SYNCHRONOUS_COMMIT", "")).lower() != "off"
    if url.startswith(("postgres://", "postgresql")) and waits_for_flush:
        return 2 * cpus
    return cpus


workers = int(os.environ.get("WEB_CONCURRENCY") or default_workers())
# gunicorn's sync worker, but a connection is served once its request has
# begun to arrive (an idle one held a worker until the worker timeout killed
# it), its end does not wait for the client's close, and it is kept alive
# for the client's next request (sentiment/worker.py, sentiment/lingering.py).
worker_class = "sentiment.worker.SyncWorker"
timeout = 30
graceful_timeout = 30
# Seconds a connection waits for its next request, without holding the
# worker (0: close each connection after its answer, as gunicorn's own sync
# worker does).
keepalive = 5
# Every worker loads the model itself and then watches the file; a new
# model needs no restart, and `kill -HUP` reloads code gracefully.
preload_app = False
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(L)ss'
# gunicorn's lines, each atom worked out only if the format names it
# (sentiment/accesslog.py): gunicorn made some sixty per request.
logger_class = "sentiment.accesslog.AccessLogger"
# No control socket in the home folder: nothing needs it, and a service
# should not leave sockets in a user's home.
control_socket_disable = True


def on_starting(server):
    """Import the large libraries once, in the master, before any worker.

    On `kill -HUP` gunicorn starts new workers and stops the old ones at
    once; until a new worker has imported the app, requests wait in the
    listen backlog. Workers forked with numpy, scipy, scikit-learn, Flask and
    SQLAlchemy already imported only import the service's own code (so HUP
    still picks up new code) and load the model: ready in about 0.4 s instead
    of 3 s on 2 cores. Upgrading these libraries needs a full restart.
    """
    import flask  # noqa: F401
    import flask_sqlalchemy  # noqa: F401
    import numpy  # noqa: F401
    import scipy.special  # noqa: F401
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sqlalchemy  # noqa: F401


def post_worker_init(worker):
    """Python's cycle collector looks at young objects every 50,000
    allocations of containers instead of every 700.

    A request makes hundreds of short-lived lists, tuples and dicts (a
    100-text batch, thousands) that reference counting frees anyway; each
    collection walked the ones still alive. In one process (Flask's test
    client, 3 alternating runs): a one-text request 0.497-0.509 ->
    0.474-0.487 ms, a 100-text one 4.74-4.79 -> 4.56-4.75 ms. Cycles still
    get collected, a little later, and the older generations as before.
    """
    import gc

    gc.set_threshold(50_000, *gc.get_threshold()[1:])
