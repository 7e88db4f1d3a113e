"""gunicorn's sync worker, that no client holds by sending nothing.

A sync worker serves one connection at a time, from its request to its
close. gunicorn's own hands it each connection as soon as it is accepted
and then waits for the request: a client that connects and sends nothing
(a browser's spare or preconnected socket, a port check, a client gone
quiet) held the worker until gunicorn's worker timeout killed it. With one
worker, the request after one idle connection was answered 30.4 s later,
and the worker was aborted and started again, model and all.

This worker serves a connection once its request has begun to arrive.
Until then the connection waits in an epoll set that the worker's select()
watches beside its listening sockets: at most IDLE_SECONDS, and at most
MAX_IDLE connections (1,000, or a quarter of the descriptors; past that
the one waiting longest is closed). A worker told to stop serves those
whose request comes within STOP_SECONDS, since no other worker can.

While a request is served, a read, or a write's progress, that waits
CLIENT_TIMEOUT seconds on the client ends it: a request body that stops
coming gets a 408, a request head that stops coming a closed connection.
A client that sends its request a byte at a time, or reads its answer as
slowly, still holds the worker, and so does one that completes a TLS
handshake (with gunicorn's certfile) and then sends nothing: against
those, a proxy that buffers whole requests and answers, and terminates
TLS, helps (README, "Slow and idle clients").

Each connection's end goes through sentiment/lingering.py, installed here
for every worker.
"""
import fcntl
import logging
import os
import select
import socket
import struct
import termios
import time

from gunicorn import util
from gunicorn.workers import sync

from . import lingering
from .socketset import SocketSet

IDLE_SECONDS = 30.0
MAX_IDLE = lingering.a_quarter_of_descriptors()
# Seconds one read or write may wait on a client while its request is
# served; the environment may set it (a slow network, or tests).
# 0 or less: no bound (settimeout(0) would make the socket non-blocking, and
# a negative value raises in every worker at its first connection).
CLIENT_TIMEOUT = float(os.environ.get("GUNICORN_CLIENT_TIMEOUT") or 10)
if CLIENT_TIMEOUT <= 0:
    CLIENT_TIMEOUT = None
# A stopping worker serves the parked connections whose request comes within
# this long (an exit would reset them: accepted, they are this worker's alone).
STOP_SECONDS = 2.0


class IdleConnections(SocketSet):
    """Accepted connections that have sent nothing yet, watched with epoll
    (one file descriptor for select() to watch, however many there are)."""

    def __init__(self, seconds=IDLE_SECONDS, limit=MAX_IDLE):
        super().__init__(seconds)
        self.limit = limit

    def add(self, listener, client, addr):
        while len(self) >= self.limit:
            self.close_oldest()
        self.watch(client, listener, addr)

    def ready(self):
        """(listener, client, addr) of the connections whose request began
        to arrive (or that the client closed), taken out of the set; those
        past their deadline are closed."""
        found = []
        for client, listener, addr in self.readable():
            self.take(client)
            found.append((listener, client, addr))
        self.close_expired()
        return found


def has_arrived(client):
    """Whether the client has sent something (or closed) already."""
    try:
        client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True  # an error: serving it ends it as gunicorn would
    return True


class _Client(socket.socket):
    """An accepted connection whose sendall() gives up only when the client
    has taken nothing of the answer for its timeout. socket.sendall's
    timeout bounds the whole call, so a client reading a large answer
    steadily but slowly lost its end; and a send() that times out may well
    have let the client read meanwhile: Linux wakes a writer only once a
    third of the send buffer is free, and that buffer grows to 4 MB."""

    __slots__ = ()

    def sendall(self, data, flags=0):
        with memoryview(data) as view, view.cast("B") as left:
            size = len(left)
            sent = self.send(left, flags)
            while sent < size:
                before = _unacknowledged(self)
                try:
                    sent += self.send(left[sent:], flags)
                except TimeoutError:
                    if before is None or _unacknowledged(self) >= before:
                        raise


def _unacknowledged(sock):
    """Bytes sent that the client has not acknowledged yet (SIOCOUTQ), or
    None where the system does not say."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    except (OSError, AttributeError):
        return None


def _quiet_client_timeouts(record):
    """gunicorn logs a client's timeout (CLIENT_TIMEOUT) as "Socket error
    processing request." with a traceback, as if the worker had failed: one
    line instead."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, TimeoutError) and record.msg == "Socket error processing request.":
        record.msg = "closed a connection whose client sent or read nothing for %s s"
        record.args = (CLIENT_TIMEOUT,)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


class SyncWorker(sync.SyncWorker):
    """gunicorn's SyncWorker that leaves connections idle until their
    request begins to arrive (module docstring)."""

    def init_process(self):
        self.idle = IdleConnections()
        self.lingering = lingering.install()
        self.log.error_log.addFilter(_quiet_client_timeouts)
        super().init_process()

    def run(self):
        self.wait_fds = self.wait_fds + [self.idle.fileno()]
        super().run()
        self._serve_parked_before_exit()
        # Stopping (a HUP, a TERM, max_requests): the last answers' clients
        # get their time to close before the process's exit resets them.
        if self.lingering is not None:
            self.lingering.finish()

    def accept(self, listener):
        client, addr = listener.accept()
        client = _Client(client.family, client.type, client.proto, fileno=client.detach())
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
            self._serve(listener, client, addr)

    def _serve_parked_before_exit(self):
        """The loop has ended (a TERM, a HUP's restart, max_requests): the
        parked connections were accepted by this worker and no other will
        see them; the exit would close them, resetting those whose request
        is arriving. Serve those that begin within STOP_SECONDS (bounded by
        the graceful timeout), then close the rest."""
        end = time.monotonic() + min(STOP_SECONDS, max(0.0, self.cfg.graceful_timeout - 1))
        while self.idle:
            self._serve_ready()
            left = end - time.monotonic()
            if left <= 0 or not self.idle:
                break
            self.notify()
            first = self.idle.seconds_left()
            try:
                select.select([self.idle], [], [], left if first is None else min(left, first))
            except OSError:
                break
        self.idle.close_all()

    def _serve(self, listener, client, addr):
        # Each connection its own heartbeat, as gunicorn's loop gives each
        # one: accept() serves ready parked connections and then its own.
        self.notify()
        client.settimeout(CLIENT_TIMEOUT)
        self.handle(listener, client, addr)
