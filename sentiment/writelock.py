"""One writer at a time on a SQLite file, across processes, without
SQLite's sleeps.

SQLite lets one connection write at a time. A second writer that finds
the write lock taken is put to sleep by its busy handler, for 1 ms, then
2, 5, 10 ms..., even when the lock is released microseconds later. Two
gunicorn workers storing one-text predictions collided on about 6 % of
their inserts, and each collision left a worker idle for a millisecond or
more (7 % of the CPU idle at 16 connections). Prediction writers take this
lock first: an flock on a file beside the database, which a waiter polls
every 50 microseconds or so, a hundred times more often than SQLite does.

The lock only ever shortens waits. If its file cannot be opened, or it is
held past the database's busy timeout, the writer goes on without it and
SQLite's own lock and busy timeout decide, as they do for every other
write (feedback, users), which never takes this one.
"""
import contextlib
import fcntl
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

_FIRST_PAUSE = 0.00005
_LONGEST_PAUSE = 0.001


class WriteLock:
    """An exclusive lock on `path` (created if missing) for this process's
    threads and every other process that takes it."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self._threads = threading.Lock()
        self._fd = None
        self._pid = None
        self._broken = False

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)

    @classmethod
    def for_database(cls, engine, timeout):
        """The lock of a SQLite file database, or None (another database,
        or one in memory)."""
        if engine.dialect.name != "sqlite":
            return None
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return cls(f"{os.path.abspath(database)}-write.lock", timeout)

    def _file(self):
        """This process's descriptor of the lock file, or None. An flock
        belongs to an open file, which a forked child shares with its
        parent: each process opens its own."""
        pid = os.getpid()
        if self._pid != pid:
            self._pid, self._fd = pid, None
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                if not self._broken:
                    log.warning("writing without %s (%s): SQLite's busy timeout alone "
                                "decides who writes", self.path, exc)
                self._broken = True
        return self._fd

    @contextlib.contextmanager
    def held(self):
        """Hold the lock for the block, or go on without it after `timeout`
        seconds of waiting."""
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
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
            self._threads.release()

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
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
