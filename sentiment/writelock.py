"""One writer at a time on a SQLite file, across processes, without
SQLite's sleeps.

SQLite lets one connection write at a time. A second writer that finds
the write lock taken is put to sleep by its busy handler, for 1 ms, then
2, 5, 10 ms..., even when the lock is released microseconds later. Two
gunicorn workers storing one-text predictions collided on about 6 % of
their inserts, and each collision left a worker idle for a millisecond or
more (7 % of the CPU idle at 16 connections). Prediction and feedback
writers take this lock first: an flock on a file beside the database,
which a waiter polls every 20 microseconds to 1 ms (with a timer slack of 1
microsecond, _precise_pauses).

The lock only ever shortens waits. If its file cannot be opened, or it is
held longer than any commit takes (`timeout`, a fifth of SQLite's busy
timeout: then a writer that does not take it, another program say, holds
SQLite's lock), the writer goes on without it and SQLite's own lock and
busy timeout decide, as they do for every other write (users, failed
sign-ins). Callers take a database connection first and this lock second,
so a lock holder never waits for the pool.
"""
import contextlib
import ctypes
import fcntl
import functools
import logging
import os
import threading
import time

from .afterfork import forget_in_child
from .db import BUSY_TIMEOUT_SECONDS, sqlite_file

log = logging.getLogger(__name__)

_FIRST_PAUSE = 0.00002
_LONGEST_PAUSE = 0.001
# Linux's prctl option and the timer slack, in nanoseconds, a waiter asks for.
_PR_SET_TIMERSLACK = 29
_TIMER_SLACK_NS = 1000
_waiters = threading.local()
# After the lock file could not be opened, try again this much later.
_REOPEN_AFTER = 60.0


class WriteLock:
    """An exclusive lock on `path` (created if missing) for this process's
    threads and every other process that takes it."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self._threads = threading.Lock()
        self._fd = None
        self._retry_at = 0.0
        self._warned = False
        # An flock belongs to an open file, which a forked child shares with
        # its parent: each process opens its own.
        forget_in_child(self)

    def __del__(self):
        if self._fd is not None:
            os.close(self._fd)

    def _forget_parent(self):
        self._threads = threading.Lock()
        if self._fd is not None:
            # Closing the child's copy leaves the parent's lock alone.
            os.close(self._fd)
        self._fd = None
        self._retry_at = 0.0

    @classmethod
    def for_database(cls, engine, timeout):
        """The lock of a SQLite file database, or None (another database,
        or one in memory)."""
        path = sqlite_file(engine)
        return cls(f"{path}-write.lock", timeout) if path is not None else None

    def _file(self):
        """This process's descriptor of the lock file, or None."""
        if self._fd is None and time.monotonic() >= self._retry_at:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._retry_at = time.monotonic() + _REOPEN_AFTER
                if not self._warned:
                    log.warning("writing without %s (%s): SQLite's busy timeout alone "
                                "decides who writes", self.path, exc)
                    self._warned = True
        return self._fd

    @contextlib.contextmanager
    def held(self):
        """Hold the lock for the block, or go on without it after `timeout`
        seconds of waiting."""
        deadline = time.monotonic() + self.timeout
        threads = self._threads
        if not threads.acquire(timeout=self.timeout):
            yield
            return
        try:
            fd = self._file()
            locked = fd is not None and self._lock_file(fd, deadline)
            try:
                yield
            finally:
                if locked:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            threads.release()

    @staticmethod
    def _lock_file(fd, deadline):
        """True once the flock is ours; False at the deadline or on an error."""
        pause = _FIRST_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError:
                return False
            if time.monotonic() >= deadline:
                return False
            _precise_pauses()
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)


def _precise_pauses():
    """Once per thread that waits: Linux lengthens each of a thread's sleeps
    by up to its timer slack, 50 us unless set, as long as the pauses
    themselves; 1 us instead. Two workers storing one-text predictions at 32
    connections (bench.alternate, 4 rounds, with the first pause 50 -> 20
    us): 3,488 -> 3,627 req/s, p99 14.4 -> 13.6 ms. Elsewhere, nothing."""
    if getattr(_waiters, "precise", False):
        return
    _waiters.precise = True
    try:
        ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, _TIMER_SLACK_NS, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no prctl
        pass


@functools.lru_cache(maxsize=8)
def _lock_of(engine):
    return WriteLock.for_database(engine, BUSY_TIMEOUT_SECONDS / 5)


def writing(engine):
    """The engine's write lock for a block (take the connection first), or
    nothing to wait for when it is not a SQLite file."""
    lock = _lock_of(engine)
    return lock.held() if lock is not None else contextlib.nullcontext()
