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
the one nearest its deadline is closed). A worker told to stop serves those
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

Connections are kept alive. gunicorn's sync worker closes each connection
after its answer, because a connection kept open would hold the worker
while its client thinks; here it waits for its next request in the same
epoll set, like a new connection, for gunicorn's `keepalive` seconds. A
client that sends request after request (a browser, a requests.Session, a
proxy keeping its upstream connections, wrk) then skips a TCP handshake,
an accept() and a close per request: hello-world 4,908 -> 6,247 req/s,
one-text predictions +14 % (README, sixteenth round). The connection is
closed instead where the answer ended in an error or fell short of its
Content-Length, the request asked for it, or the application left more
than a little of the request's body unread; and, with gunicorn's certfile,
after every answer, as gunicorn does.

A kept connection stays with the worker that accepted it, and which worker
accepts is a race. So each worker publishes how many connections it holds
(sentiment/heldconnections.py), and one holding LET_GO_MARGIN more than
another lets one go now and then: that answer says "Connection: close",
and the client connects again, to whichever worker accepts first.
"""
import errno
import fcntl
import logging
import os
import select
import socket
import struct
import termios
import time

from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.http.body import LengthReader
from gunicorn.workers import sync

from . import lingering
from .heldconnections import HeldConnections
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
# What of a request's body the application left unread is read and dropped
# before the connection serves another request, if it comes within this long
# and is no larger than gunicorn's own bound (64 KiB); otherwise the
# connection is closed (an answer given before a large body arrived, a 413).
DRAIN_SECONDS = 0.1
MAX_DRAIN = 65536
# Requests a client sent ahead that one turn of the worker serves: past that
# the connection is closed, and the client sends the rest again (RFC 9112,
# section 9.3.2), so that one connection cannot keep the others waiting.
MAX_AHEAD = 16
# A worker holding this many connections more than another lets one go: its
# answer says "Connection: close", and the client connects again, to
# whichever worker accepts first. At most one every LET_GO_SECONDS, as
# clients that have been let go take a moment to come back and be counted.
LET_GO_MARGIN = 2
LET_GO_SECONDS = 0.05
# An answer's head goes out in one send() with its body up to this size
# (_Answer); a larger body is not copied for it.
ONE_SEND_UP_TO = 256 * 1024
# The master's HeldConnections, made with its first worker and inherited
# by every worker forked after.
_held = None


class IdleConnections(SocketSet):
    """Accepted connections that have sent nothing yet, watched with epoll
    (one file descriptor for select() to watch, however many there are)."""

    def __init__(self, seconds=IDLE_SECONDS, limit=MAX_IDLE):
        super().__init__(seconds)
        self.limit = limit

    def add(self, listener, client, addr, parser=None, seconds=None):
        """A connection to wait for its request: a new one, or one kept
        alive after an answer, with its request parser (`seconds`: its
        keep-alive time)."""
        while len(self) >= self.limit:
            self.close_oldest()
        self.watch(client, listener, addr, parser, seconds=seconds)

    def ready(self):
        """(listener, client, addr, parser or None) of the connections whose
        request began to arrive (or that the client closed), taken out of
        the set; those past their deadline are closed."""
        found = []
        for client, listener, addr, parser in self.readable():
            self.take(client)
            found.append((listener, client, addr, parser))
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

    __slots__ = ("_holding", "_head")

    def __init__(self, *args, **kwargs):
        self._holding = False
        self._head = None
        super().__init__(*args, **kwargs)

    def hold_next(self):
        """Keep the next sendall()'s bytes (an answer's head) to go out with
        the next bytes sent, or at send_held()."""
        self._holding = True

    def send_held(self):
        """Send what hold_next() kept, if anything, and hold no more."""
        head, self._head = self._head, None
        self._holding = False
        if head:
            self.sendall(head)

    def sendfile(self, file, offset=0, count=None):
        self.send_held()
        return super().sendfile(file, offset, count)

    def sendall(self, data, flags=0):
        if self._holding:
            self._holding = False
            self._head = bytes(data)
            return
        if self._head is not None:
            if len(data) <= ONE_SEND_UP_TO:
                data, self._head = self._head + data, None
            else:
                self.send_held()
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


def _head_with_first_bytes(method):
    """The Response method, with the head it sends (if it is the first to)
    held until the method's own next bytes, and sent when it returns or
    raises: nothing stays held past one call."""
    def call(self, *args, **kwargs):
        if self.headers_sent:
            return method(self, *args, **kwargs)
        self.sock.hold_next()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.sock.send_held()
    return call


class _Answer(wsgi.Response):
    """gunicorn's answer, whose head goes out in the same send() as the
    first bytes of its body. gunicorn sends them apart: on a connection
    with TCP_NODELAY, two segments, two system calls, and the client woken
    for each; on a virtual machine a wake-up on another CPU is dear
    (README, "Where one request's time goes"). A head with no bytes after
    it in the same call (no body, an empty chunk, a body that is not
    bytes) goes out alone, as gunicorn sends it; a file sent with
    sendfile() gets its head just before."""

    write = _head_with_first_bytes(wsgi.Response.write)
    sendfile = _head_with_first_bytes(wsgi.Response.sendfile)
    close = _head_with_first_bytes(wsgi.Response.close)


def send_head_with_body(answer):
    """Make gunicorn's answer (made by gunicorn's handle_request) an _Answer,
    where its connection is this worker's."""
    if type(answer) is wsgi.Response and isinstance(answer.sock, _Client):
        answer.__class__ = _Answer


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


def _held_connections(directory):
    global _held
    if _held is None:
        _held = HeldConnections(directory)
    return _held


class SyncWorker(sync.SyncWorker):
    """gunicorn's SyncWorker that leaves connections idle until their
    request begins to arrive (module docstring)."""

    def __init__(self, *args, **kwargs):
        # In the master, before the fork.
        super().__init__(*args, **kwargs)
        self.held = _held_connections(self.cfg.worker_tmp_dir)

    def init_process(self):
        self.idle = IdleConnections()
        # Connections taken out of the idle set together and not served yet.
        self._taken = 0
        self._let_go_at = 0.0
        self.lingering = lingering.install()
        self.log.error_log.addFilter(_quiet_client_timeouts)
        # The answer of the request being served (gunicorn's Response).
        self._answer = None
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = self._keeping_alive(self.wsgi)

    def _keeping_alive(self, application):
        """The application, called with each answer left open where the
        connection may serve another request. gunicorn's handle_request
        marks every answer "Connection: close" before it calls the
        application, whose start_response is the answer's own method."""
        def call(environ, start_response):
            answer = getattr(start_response, "__self__", None)
            if isinstance(answer, wsgi.Response):
                self._answer = answer
                send_head_with_body(answer)
                if (self.alive and self.cfg.keepalive > 0 and not self.cfg.is_ssl
                        and not answer.req.should_close() and not self._holding_too_many()):
                    answer.must_close = False
            return application(environ, start_response)
        return call

    def _holding_too_many(self):
        """Whether this worker holds LET_GO_MARGIN connections more than
        another, and has let none go for LET_GO_SECONDS: the connection
        being answered is then closed after its answer."""
        held = len(self.idle) + self._taken + 1  # the one being answered
        self.held.publish(held)
        fewest = self.held.fewest_elsewhere()
        if fewest is None or held < fewest + LET_GO_MARGIN:
            return False
        now = time.monotonic()
        if now < self._let_go_at + LET_GO_SECONDS:
            return False
        self._let_go_at = now
        return True

    def run(self):
        self.wait_fds = self.wait_fds + [self.idle.fileno()]
        # Counted only while accepting: from when the application is loaded
        # until the loop ends, so that no worker lets a connection go to one
        # that cannot take it.
        self.held.claim()
        try:
            super().run()
        finally:
            self.held.release()
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
            self._serve_ready(waiting=1)
        if has_arrived(client):
            self._serve(listener, client, addr)
        else:
            self.idle.add(listener, client, addr)
        self.held.publish(len(self.idle))

    def wait(self, timeout):
        left = self.idle.seconds_left()
        if left is not None:
            timeout = min(timeout, left)
        ready = super().wait(timeout)
        self._serve_ready()
        self.held.publish(len(self.idle))
        if ready:
            # Only listening sockets (and gunicorn's pipe) for the caller.
            ready = [fd for fd in ready if fd != self.idle.fileno()]
        return ready

    def _serve_ready(self, waiting=0):
        """Serve the idle connections whose request has begun; `waiting`:
        connections this worker holds outside the idle set meanwhile."""
        ready = self.idle.ready()
        for index, (listener, client, addr, parser) in enumerate(ready):
            self._taken = waiting + len(ready) - index - 1
            self._serve(listener, client, addr, parser)
        self._taken = 0

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

    def _serve(self, listener, client, addr, parser=None):
        # Each connection its own heartbeat, as gunicorn's loop gives each
        # one: accept() serves ready parked connections and then its own.
        self.notify()
        client.settimeout(CLIENT_TIMEOUT)
        if self.cfg.is_ssl:
            self.handle(listener, client, addr)  # gunicorn's own, closing
        else:
            self._handle_kept_alive(listener, client, addr, parser)

    def _handle_kept_alive(self, listener, client, addr, parser):
        """gunicorn's handle() for a connection that may serve several
        requests: its parser goes with it (bytes a client sent ahead stay
        there), and after an answer that did not say "Connection: close"
        it waits for its next request among the idle connections."""
        kept = False
        request = None
        try:
            if parser is None:
                parser = http.get_parser(self.cfg, client, addr)
            for _ in range(MAX_AHEAD + 1):
                # Whatever fails before the answer is done closes the connection.
                kept, request = False, None
                request = next(parser)
                self._answer = None
                self.handle_request(listener, request, client, addr)
                kept = self._may_serve_another(parser, client)
                if not kept or not _request_ahead(parser):
                    break
                self.notify()  # the client sent its next request ahead
            else:
                kept = False  # its turn is over; the client sends the rest again
        except (http.errors.NoMoreData, StopIteration):
            pass  # the client closed, or the answer was cut short
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                # The message _quiet_client_timeouts looks for.
                self.log.exception("Socket error processing request.")
        except BaseException as exc:
            self.handle_error(request, client, addr, exc)
        finally:
            self._keep_or_close(kept, listener, client, addr, parser)

    def _keep_or_close(self, kept, listener, client, addr, parser):
        if kept:
            try:
                self.idle.add(listener, client, addr, parser, seconds=self.cfg.keepalive)
                return
            except (OSError, ValueError):
                pass  # not watched: closed like any other
        util.close_graceful(client)

    def _may_serve_another(self, parser, client):
        """Whether the connection stays open after this answer: the answer
        said so and carried all it announced, and what the application left
        of the body is read and dropped within DRAIN_SECONDS. A worker told
        to stop meanwhile still keeps it: _serve_parked_before_exit answers
        a request that comes within STOP_SECONDS, with "Connection: close",
        where closing now would reset one already on its way."""
        answer = self._answer
        if answer is None or answer.should_close():
            return False
        # Fewer bytes than its Content-Length: the next answer would be read
        # as the rest of this one. (A file sent with sendfile() does not
        # count its bytes: such answers close, as before.)
        length = answer.response_length
        if length is not None and answer.sent < length and not answer._omits_body:
            return False
        return _drain(parser, client, DRAIN_SECONDS)


def _drain(parser, client, seconds):
    """Read and drop what is left of the request's body, if it is no more
    than 64 KiB and has arrived by the end of `seconds`; whether it did.
    finish_body's own deadline would bound each read, not all of them: here
    every read from the socket gets only what is left of `seconds`."""
    body = parser.mesg.body
    if (isinstance(body.reader, LengthReader) and body.reader.length == 0
            and not body.buf.getvalue()):
        return True  # read to its end, as nearly every body is
    unreader = parser.unreader
    deadline = time.monotonic() + seconds
    read_socket = unreader.chunk

    def bounded(*args, **kwargs):
        # Past the deadline, what has already arrived is still read (a
        # worker kept off the CPU for a while must not close a connection
        # whose body is there); reading on would raise BlockingIOError.
        client.settimeout(max(0.0, deadline - time.monotonic()))
        return read_socket(*args, **kwargs)

    unreader.chunk = bounded
    try:
        return parser.finish_body(max_bytes=MAX_DRAIN)
    except Exception:
        # A body that cannot be read to its end (a malformed chunk, say):
        # where the next request starts is unknown.
        return False
    finally:
        del unreader.chunk
        client.settimeout(CLIENT_TIMEOUT)


def _request_ahead(parser):
    """Whether a whole request head the client sent ahead of the last
    answer waits in the parser's buffer, where epoll cannot see it. Part of
    one (or the CRLF some clients send after a body) waits with the
    connection among the idle ones until the rest arrives."""
    unreader = parser.unreader
    return b"\r\n\r\n" in unreader.buf.getvalue()
