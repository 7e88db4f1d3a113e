"""SQLite's WAL checkpoints from a thread of each process, not from the
request whose commit happened to fill the log.

In WAL mode a commit appends to the -wal file; a checkpoint copies those
pages back into the database file, syncing the log first and the database
after. SQLite runs it inside the commit that takes the log past 1,000
pages, so about one one-text prediction in 300 paid two fsyncs, and,
since the commit sits inside the write lock (sentiment/writelock.py),
every other writer waited for them. Under 16 connections that was a
quarter of the p99: with checkpoints in this thread the median p99 went
from 37.5 to 28.4 ms (as low as with no checkpoint at all, 28.2), at the
same throughput (bench.alternate, 6 rounds of 8 s).

Here the request's connections leave the log alone up to BACKSTOP_PAGES
and every commit (SQLAlchemy's commit event, and the one-text
predictions that commit on the driver connection themselves) wakes a thread
of this process, which waits `seconds`, then runs a PASSIVE checkpoint on
a connection of its own: it copies what it can without waiting for, or
blocking, readers and writers (SQLite releases the GIL meanwhile). When a
reader's older snapshot keeps it from copying the whole log, it tries
again every `seconds` until it has. A thread that has had nothing to do
for IDLE_EXIT seconds ends; the next commit starts another. If the thread
cannot run, SQLite's own checkpoints at BACKSTOP_PAGES still keep the log
bounded.

With synchronous=NORMAL a commit reaches the disk at the next checkpoint
that copies something, so this also bounds how long that takes: about
`seconds` after the commit (longer while a long read holds an older
snapshot), where before a quiet service could leave its last commits in
the log, unsynced, until 1,000 pages had piled up.
"""
import logging
import sqlite3
import threading
import time
import weakref
from urllib.parse import quote

from .afterfork import forget_in_child

log = logging.getLogger(__name__)

# The request's connections still checkpoint when the log reaches this many
# pages (SQLite's default is 1,000): only if the thread falls behind, or
# the log never empties because writers are always appending while the
# thread copies (a log only starts again from its beginning once fully
# copied).
BACKSTOP_PAGES = 10_000
# A thread with no write to follow for this long ends.
IDLE_EXIT = 30.0
# After the thread failed (the file could not be opened, say), try again
# no sooner than this.
_RETRY_AFTER = 60.0

_by_engine = weakref.WeakKeyDictionary()


class Checkpointer:
    """Checkpoints the WAL of the SQLite file at `path` from a thread."""

    def __init__(self, path, seconds, synchronous="NORMAL"):
        self.path = path
        self.seconds = seconds
        # The connection that checkpoints is the one that syncs: it syncs
        # as the app's connections would (OFF: not at all).
        self.synchronous = synchronous
        self._lock = threading.Lock()
        self._pending = False
        self._running = False
        self._retry_at = 0.0
        self._warned = False
        # The thread and its connection stay with the parent; a child
        # starts its own.
        forget_in_child(self)

    def _forget_parent(self):
        self._lock = threading.Lock()
        self._pending = self._running = False
        self._retry_at = 0.0

    def wrote(self):
        """A write was committed: checkpoint it within `seconds`."""
        if self._pending and self._running:
            return  # the running thread will see it, no lock needed
        with self._lock:
            self._pending = True
            if self._running or time.monotonic() < self._retry_at:
                return
            self._running = True
        try:
            threading.Thread(target=self._run, name=f"sqlite-checkpoint {self.path}",
                             daemon=True).start()
        except RuntimeError as exc:  # no thread to be had: SQLite's backstop remains
            self._failed(exc)

    def _run(self):
        connection = None
        try:
            # mode=rw: a database file deleted meanwhile is not made anew, empty.
            connection = sqlite3.connect(f"file:{quote(self.path)}?mode=rw", uri=True,
                                         isolation_level=None)
            connection.execute(f"PRAGMA synchronous={self.synchronous}")
            idle_since = time.monotonic()
            while True:
                time.sleep(self.seconds)
                with self._lock:
                    pending, self._pending = self._pending, False
                    if not pending and time.monotonic() - idle_since >= IDLE_EXIT:
                        self._running = False
                        return
                if not pending:
                    continue
                busy, log_frames, copied = connection.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if busy or copied < log_frames:
                    # Another process's checkpoint had the log, or a reader
                    # still needs pages the log would overwrite: go again,
                    # and do not end before the whole log is copied.
                    self._pending = True
                idle_since = time.monotonic()
        except Exception as exc:  # a checkpoint must never be a request's problem
            self._failed(exc)
        finally:
            if connection is not None:
                connection.close()

    def _failed(self, exc):
        with self._lock:
            self._running = False
            # Left to SQLite's backstop until the retry; not lost either way.
            self._pending = False
            self._retry_at = time.monotonic() + _RETRY_AFTER
        if not self._warned:
            self._warned = True
            log.warning("checkpointing %s in the requests that fill its log, as SQLite does "
                        "by itself (%s: %s)", self.path, exc.__class__.__name__, exc)


def attach(engine, path, seconds, synchronous):
    """Checkpoint the WAL of the engine's SQLite file at `path` from a
    thread `seconds` after writes: its Checkpointer, or None when there is
    no file (path None) or seconds is 0. The caller sets BACKSTOP_PAGES on
    its connections and calls wrote() after commits."""
    if path is None or not seconds:
        return None
    checkpointer = _by_engine[engine] = Checkpointer(path, seconds, synchronous)
    return checkpointer


def checkpointer_of(engine):
    """The engine's Checkpointer, or None."""
    return _by_engine.get(engine)
