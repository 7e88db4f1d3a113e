"""gunicorn's sync worker, that no client holds by sending nothing.

A sync worker serves one connection at a time, from its request to its
close. gunicorn's hands it each connection as soon as it is accepted and
then waits for the request: a client that connects and sends nothing (a
browser's spare or preconnected socket, a port check, a client gone
quiet) held the worker until gunicorn's worker timeout killed it. With one
worker, the request after one idle connection was answered 30.4 s later,
and the worker was aborted and started again, model and all.

This worker serves a connection once its request has begun to arrive.
Until then the connection waits in an epoll set beside the listening
socket, at most IDLE_SECONDS and at most MAX_IDLE connections (1,000, or
a quarter of the descriptors; past that the one waiting longest is
closed); the worker's select() watches that
set with its listening sockets. While a request is served, a read or a
write that waits CLIENT_TIMEOUT seconds on the client ends it: a request
body that stops coming gets a 408, a request head that stops coming a
closed connection. A client that keeps sending its request a byte at a
time still holds the worker; against that, only a proxy that buffers
whole requests helps (README, "Scaling out").

Each connection's end goes through sentiment/lingering.py, installed here
for every worker.
"""
import collections
import os
import select
import socket
import time

from gunicorn import util
from gunicorn.workers import sync

from . import lingering

IDLE_SECONDS = 30.0
MAX_IDLE = lingering.a_quarter_of_descriptors()
# Seconds one read or write may wait on a client while its request is
# served; the environment may set it (a slow network, or tests).
CLIENT_TIMEOUT = float(os.environ.get("GUNICORN_CLIENT_TIMEOUT") or 10)


class IdleConnections:
    """Accepted connections that have sent nothing yet, watched with epoll
    (one file descriptor for select() to watch, however many there are)."""

    def __init__(self, seconds=IDLE_SECONDS, limit=MAX_IDLE):
        self.seconds = seconds
        self.limit = limit
        self._epoll = select.epoll()
        # fd -> (listener, client, addr); insertion order is deadline order.
        self._waiting = {}
        self._deadlines = collections.deque()  # (deadline, fd, client)

    def fileno(self):
        return self._epoll.fileno()

    def __len__(self):
        return len(self._waiting)

    def add(self, listener, client, addr):
        while len(self._waiting) >= self.limit:
            self._close_oldest()
        fd = client.fileno()
        self._waiting[fd] = (listener, client, addr)
        self._deadlines.append((time.monotonic() + self.seconds, fd, client))
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLRDHUP)

    def seconds_left(self):
        """Until the first deadline (None without connections)."""
        if not self._deadlines:
            return None
        return max(0.0, self._deadlines[0][0] - time.monotonic())

    def ready(self):
        """(listener, client, addr) of the connections whose request began
        to arrive (or that the client closed), taken out of the set; those
        past their deadline are closed."""
        found = []
        for fd, _ in (self._epoll.poll(0) if self._waiting else ()):
            entry = self._waiting.pop(fd, None)
            if entry is not None:
                self._epoll.unregister(fd)
                found.append(entry)
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            self._close_oldest()
        return found

    def _close_oldest(self):
        _, fd, client = self._deadlines.popleft()
        entry = self._waiting.get(fd)
        if entry is not None and entry[1] is client:
            del self._waiting[fd]
            # Before the close: once closed, the number goes to the next socket.
            self._epoll.unregister(fd)
            client.close()


def has_arrived(client):
    """Whether the client has sent something (or closed) already."""
    try:
        client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True  # an error: serving it ends it as gunicorn would
    return True


class SyncWorker(sync.SyncWorker):
    """gunicorn's SyncWorker that leaves connections idle until their
    request begins to arrive (module docstring)."""

    def init_process(self):
        self.idle = IdleConnections()
        self.lingering = lingering.install()
        super().init_process()

    def run(self):
        self.wait_fds = self.wait_fds + [self.idle.fileno()]
        super().run()
        # Stopping (a HUP, a TERM, max_requests): the last answers' clients
        # get their time to close before the process's exit resets them.
        if self.lingering is not None:
            self.lingering.finish()

    def accept(self, listener):
        client, addr = listener.accept()
        client.setblocking(1)
        util.close_on_exec(client)
        if self.idle:
            # Under steady load the worker never gets to wait(): idle
            # connections whose request came are served here too.
            self._serve_ready()
        if has_arrived(client):
            self._serve(listener, client, addr)
        else:
            self.idle.add(listener, client, addr)

    def wait(self, timeout):
        left = self.idle.seconds_left()
        if left is not None:
            timeout = min(timeout, left)
        ready = super().wait(timeout)
        self._serve_ready()
        if ready:
            # Only listening sockets (and gunicorn's pipe) for the caller.
            ready = [fd for fd in ready if fd != self.idle.fileno()]
        return ready

    def _serve_ready(self):
        for listener, client, addr in self.idle.ready():
            self.notify()
            self._serve(listener, client, addr)

    def _serve(self, listener, client, addr):
        client.settimeout(CLIENT_TIMEOUT)
        self.handle(listener, client, addr)
