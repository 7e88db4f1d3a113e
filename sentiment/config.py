"""Configuration: defaults, then the instance folder's config.py, then the
environment, then the mapping passed to create_app (tests use that)."""
import os

DEFAULTS = {
    "BASIC_AUTH_USERNAME": "admin",
    "BASIC_AUTH_PASSWORD": None,
    "BASIC_AUTH_REALM": "sentiment-api",
    # Large enough for a batch of 1,000 texts of 5,000 characters in JSON
    # with escaped non-ASCII; anything bigger is refused before it is read.
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    "MAX_TEXT_LENGTH": 5000,
    "MAX_BATCH_SIZE": 1000,
    "MAX_PER_PAGE": 100,
    "HISTORY_PER_PAGE": 20,
    # The browser upload is labelled in batches of MAX_BATCH_SIZE; this caps
    # the whole file so one upload cannot hold a worker for minutes.
    "MAX_UPLOAD_ROWS": 10000,
    "MODEL_PATH": None,
    # How often a worker looks at the model file for a newer version.
    "MODEL_CHECK_INTERVAL": 1.0,
    "SQLALCHEMY_DATABASE_URI": None,
    # SQLite only (WAL mode): NORMAL syncs the disk at checkpoints, not at
    # every commit; FULL makes every commit wait for the disk. See README.
    "SQLITE_SYNCHRONOUS": "NORMAL",
    # SQLite only: a thread checkpoints the WAL this many seconds after a
    # write, so no request pays for it (sentiment/walcheckpoint.py). 0:
    # SQLite checkpoints inside the commit that fills the log, by itself.
    "SQLITE_CHECKPOINT_SECONDS": 0.5,
    # PostgreSQL only: set on each of the service's connections. None keeps
    # the server's own setting (by default on: a commit waits for the WAL
    # flush). off answers before the flush: see README, Durability.
    "POSTGRES_SYNCHRONOUS_COMMIT": None,
    "BOOTSTRAP_CREDENTIALS": True,
    # train.py builds the app only to read feedback, not to serve.
    "LOAD_MODEL": True,
    # werkzeug.security's method for users' password hashes.
    "PASSWORD_HASH_METHOD": "scrypt",
    # How long one process trusts credentials it has already verified, so the
    # slow hash is not paid on every request (Basic auth sends it every time).
    "AUTH_CACHE_SECONDS": 300,
    # How long one process answers a request with credentials it signed in
    # moments ago without asking the database again (user row, failed
    # sign-ins). A user disabled, deleted, re-roled or locked out by another
    # process is refused within this many seconds; changes made by this
    # process take effect at once. 0 asks the database on every request.
    "AUTH_RECHECK_SECONDS": 1.0,
    # Failed sign-ins: at most this many per client address and per user name
    # within the window (seconds); beyond that 429 until the window passes.
    "LOGIN_FAILURE_WINDOW": 300,
    "LOGIN_MAX_FAILURES_PER_CLIENT": 30,
    "LOGIN_MAX_FAILURES_PER_USER": 10,
    # The session cookie only carries the CSRF token; never sent cross-site
    # on a POST, never readable by scripts.
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_HTTPONLY": True,
}

# Environment variable -> (config key, type)
ENVIRONMENT = {
    "BASIC_AUTH_USERNAME": ("BASIC_AUTH_USERNAME", str),
    "BASIC_AUTH_PASSWORD": ("BASIC_AUTH_PASSWORD", str),
    "DATABASE_URL": ("SQLALCHEMY_DATABASE_URI", str),
    "MODEL_PATH": ("MODEL_PATH", str),
    "MAX_CONTENT_LENGTH": ("MAX_CONTENT_LENGTH", int),
    "MODEL_CHECK_INTERVAL": ("MODEL_CHECK_INTERVAL", float),
    "SECRET_KEY": ("SECRET_KEY", str),
    "LOGIN_FAILURE_WINDOW": ("LOGIN_FAILURE_WINDOW", float),
    "LOGIN_MAX_FAILURES_PER_CLIENT": ("LOGIN_MAX_FAILURES_PER_CLIENT", int),
    "LOGIN_MAX_FAILURES_PER_USER": ("LOGIN_MAX_FAILURES_PER_USER", int),
    "SQLITE_SYNCHRONOUS": ("SQLITE_SYNCHRONOUS", str),
    "SQLITE_CHECKPOINT_SECONDS": ("SQLITE_CHECKPOINT_SECONDS", float),
    "POSTGRES_SYNCHRONOUS_COMMIT": ("POSTGRES_SYNCHRONOUS_COMMIT", str),
    "AUTH_RECHECK_SECONDS": ("AUTH_RECHECK_SECONDS", float),
}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL_PATH = os.path.join(ROOT, "model.pkl")


def from_environment(environ=os.environ):
    """The settings the environment gives, converted to their types."""
    settings = {}
    for var, (key, kind) in ENVIRONMENT.items():
        value = environ.get(var)
        if value not in (None, ""):
            try:
                settings[key] = kind(value)
            except ValueError as exc:
                raise SystemExit(f"{var}={value!r} is not a valid {kind.__name__}") from exc
    return settings


def database_url(url, instance_path):
    """The SQLAlchemy URL to use: SQLite in the instance folder by default.

    Plain postgres:// and postgresql:// URLs (as hosting platforms hand them
    out) are pointed at psycopg 3, the driver this project installs.
    """
    if not url:
        return "sqlite:///" + os.path.join(instance_path, "sentiment.sqlite")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


SQLITE_SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
POSTGRES_SYNCHRONOUS_COMMIT_LEVELS = ("on", "off", "local", "remote_write", "remote_apply")


def check(config):
    """Refuse settings that would quietly do something else than they say."""
    level = str(config.get("SQLITE_SYNCHRONOUS") or "").upper()
    if level and level not in SQLITE_SYNCHRONOUS_LEVELS:
        raise SystemExit(f"SQLITE_SYNCHRONOUS={level!r} is not one of "
                         f"{', '.join(SQLITE_SYNCHRONOUS_LEVELS)}")
    commit = str(config.get("POSTGRES_SYNCHRONOUS_COMMIT") or "").lower()
    if commit and commit not in POSTGRES_SYNCHRONOUS_COMMIT_LEVELS:
        raise SystemExit(f"POSTGRES_SYNCHRONOUS_COMMIT={commit!r} is not one of "
                         f"{', '.join(POSTGRES_SYNCHRONOUS_COMMIT_LEVELS)}")
    # (key, smallest value above 0): a checkpoint thread waking every
    # microsecond would spin.
    for key, least in (("AUTH_RECHECK_SECONDS", 0), ("SQLITE_CHECKPOINT_SECONDS", 0.01)):
        seconds = config[key]
        # NaN compares false with everything: it would trust a sign-in
        # forever, or never checkpoint.
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not (seconds == 0 or least <= seconds <= 60):
            raise SystemExit(f"{key}={seconds!r} must be a number of seconds from {least} to 60"
                             + (", or 0" if least else ""))
