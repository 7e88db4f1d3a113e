"""The end of each connection, the wait for the client to close, off the
worker's thread.

gunicorn ends a connection as RFC 9112 (section 9.6) asks, in
gunicorn.util.close_graceful: it sends its FIN, then reads whatever the
client still sends until the client closes too, for up to 2 seconds, so
that request bytes left unread never make the kernel answer with a reset,
which can destroy the response before the client has read it. A sync
worker does that waiting itself and serves nobody meanwhile. Every request
then holds its worker for one more network round trip after the answer,
and a client that keeps its connection open after the answer holds the
worker for the whole 2 seconds: with one worker, a second client's request
waited 2,003 ms behind a first client that had its answer and kept its
socket open.

Here the worker sends its FIN and reads what has already arrived, as
before. If the client has not closed yet, the socket goes to a thread of
the worker's process, which waits on all such sockets at once (epoll) and
reads and closes each one as gunicorn would have: when the client closes,
after 64 KiB, or after 2 seconds. The worker goes on to its next request.
At most `limit` sockets wait this way; beyond that, and for TLS sockets,
gunicorn's own close_graceful waits in the worker as before.
"""
import logging
import resource
import select
import socket
import ssl
import threading
import time

from .socketset import SocketSet

log = logging.getLogger(__name__)

# gunicorn's close_graceful defaults.
TIMEOUT = 2.0
MAX_DRAIN = 65536


def a_quarter_of_descriptors(most=1000):
    """`most`, or a quarter of the file descriptors this process may open if
    that is fewer: an accept() that finds none left kills a sync worker."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return most
    return max(1, min(most, soft // 4))


# Sockets a worker lets wait for their client at once: far over what
# closes within 2 seconds when clients close as they should, and a quarter
# of the descriptors at most (sentiment/worker.py's idle connections take
# another quarter at most).
LIMIT = a_quarter_of_descriptors()
# A thread tends the waiting sockets this often (for when no request comes).
_IDLE_SECONDS = 0.25


class Lingering:
    """Closes sockets the way `blocking_close` (gunicorn's close_graceful)
    does, without waiting in the caller's thread."""

    def __init__(self, blocking_close, limit=LIMIT):
        self.blocking_close = blocking_close
        self.limit = limit
        self._lock = threading.Lock()
        # Entries [socket, bytes read so far, most bytes to read].
        self._sockets = SocketSet(TIMEOUT)
        self._thread = None
        self._broken = False

    def waiting(self):
        """How many sockets wait for their client now."""
        return len(self._sockets)

    def close(self, sock, timeout=TIMEOUT, max_drain=MAX_DRAIN):
        """close_graceful(sock, timeout, max_drain), returning at once; like
        it, never raises."""
        try:
            self._close(sock, timeout, max_drain)
        except Exception as exc:
            log.warning("closing a connection at once (%s: %s)", exc.__class__.__name__, exc)
            with self._lock:
                if self._sockets.entry(sock) is not None:
                    return
            sock.close()

    def _close(self, sock, timeout, max_drain):
        if not self._broken:
            self.tend()
        with self._lock:
            if self._sockets.entry(sock) is not None:
                return  # closed twice: gunicorn's error path does
        if (isinstance(sock, ssl.SSLSocket) or self._broken
                or len(self._sockets) >= self.limit or not self._running()):
            # Only this thread adds sockets, so the count cannot have grown
            # past the limit by the time this one is added.
            self.blocking_close(sock, timeout, max_drain)
            return
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        drained = _drain(sock, 0, max_drain)
        if drained is None:
            sock.close()
            return
        with self._lock:
            # The thread may have given up (_failed) since the check above.
            if not self._broken:
                self._sockets.watch(sock, drained, max_drain, seconds=timeout)
                return
        self.blocking_close(sock, timeout, max_drain)

    def finish(self, seconds=TIMEOUT):
        """Before the worker exits: wait, at most `seconds`, for the clients
        of the waiting sockets to close, as gunicorn's close would have. An
        exit with sockets still open resets them, which can destroy an answer
        the client has not read yet (a helper's review: 128,132 of 200,132
        bytes, then a reset, where gunicorn's own close gave them all)."""
        end = time.monotonic() + seconds
        while self._sockets and not self._broken:
            left = end - time.monotonic()
            if left <= 0:
                break
            select.select([self._sockets], [], [], min(left, 0.05))
            self.tend()

    def _running(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lingering close",
                                            daemon=True)
            try:
                self._thread.start()
            except RuntimeError as exc:  # no thread to be had: wait in the worker
                self._failed(exc)
                return False
        return True

    def _run(self):
        """Tend the sockets every _IDLE_SECONDS, for when no request comes:
        a thread woken by every client's close would take the GIL from the
        worker's requests (hello-world's p99 at 16 connections: 4.6 -> 6.5
        ms), so while requests come the worker tends them at each close()."""
        try:
            while True:
                time.sleep(_IDLE_SECONDS)
                self.tend()
        except Exception as exc:  # a close must never stop the worker
            self._failed(exc)

    def tend(self):
        """Read from the waiting sockets whose clients sent something or
        closed, and close those done with or past their deadline."""
        with self._lock:
            for entry in self._sockets.readable():
                sock, drained, max_drain = entry
                drained = _drain(sock, drained, max_drain)
                if drained is None:
                    self._sockets.close(sock)
                else:
                    entry[1] = drained
            self._sockets.close_expired()

    def _failed(self, exc):
        self._broken = True
        log.warning("closing connections in the worker from now on (%s: %s)",
                    exc.__class__.__name__, exc)
        with self._lock:
            self._sockets.close_all()


def _drain(sock, drained, max_drain):
    """Read what the client has sent without waiting: the bytes read so far,
    or None when the socket is done with (the client closed, an error, or
    max_drain bytes read)."""
    while drained < max_drain:
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return drained
        except OSError:
            return None
        if not data:
            return None
        drained += len(data)
    return None


def install():
    """Make this process's gunicorn close connections through a Lingering
    (sentiment/worker.py, as each worker starts). The Lingering, or None where
    there is no epoll."""
    from gunicorn import util

    if not hasattr(select, "epoll"):
        return None
    lingering = Lingering(util.close_graceful)
    # The sync worker calls util.close_graceful(client) after each request.
    util.close_graceful = lingering.close
    return lingering
