"""Sockets watched with epoll, each until a deadline: the bookkeeping that
sentiment/lingering.py (answered connections waiting for their client's
close) and sentiment/worker.py (accepted connections waiting for their
request) share.

A socket is known by its file descriptor's number, and the number goes
to the next socket as soon as this one is closed. So an entry leaves the
epoll set before its socket is closed, and a deadline applies only to the
very watch it was set for: not to a later socket with the same number, nor
to the same socket watched again (a kept-alive connection waits here
between its requests, each time with a new deadline).
"""
import contextlib
import heapq
import itertools
import select
import time


class SocketSet:
    """Sockets and what their owner keeps with each, watched for something
    to read; each waits `seconds`, or what watch() says."""

    def __init__(self, seconds):
        self.seconds = seconds
        self._epoll = select.epoll()
        # fd -> [socket, *what the owner keeps with it]
        self._entries = {}
        # fd -> the number of its current watch; a heap of (deadline, that
        # number, fd), the nearest first (deadlines of different lengths).
        self._watches = {}
        self._deadlines = []
        self._numbers = itertools.count()

    def fileno(self):
        """The epoll set's own descriptor: readable when a socket is."""
        return self._epoll.fileno()

    def __len__(self):
        return len(self._entries)

    def watch(self, sock, *kept, seconds=None):
        fd = sock.fileno()
        number = next(self._numbers)
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
        self._entries[fd] = [sock, *kept]
        self._watches[fd] = number
        if len(self._deadlines) > 2 * len(self._watches) + 64:
            # Deadlines of sockets taken out wait in the heap until they come
            # first: under load, far more of them than sockets.
            self._deadlines = [d for d in self._deadlines if self._current(d)]
            heapq.heapify(self._deadlines)
        heapq.heappush(self._deadlines, (
            time.monotonic() + (self.seconds if seconds is None else seconds), number, fd))

    def entry(self, sock):
        """The entry ([sock, *kept]) of this very socket, or None."""
        entry = self._entries.get(sock.fileno())
        return entry if entry is not None and entry[0] is sock else None

    def readable(self):
        """The entries whose socket has something to read, or whose client
        closed, now (without waiting)."""
        if not self._entries:
            return []
        found = (self._entries.get(fd) for fd, _ in self._epoll.poll(0))
        return [entry for entry in found if entry is not None]

    def take(self, sock):
        """Take the socket out of the set; it stays open."""
        self._remove(sock.fileno())

    def close(self, sock):
        """Take the socket out of the set and close it."""
        self._remove(sock.fileno())
        sock.close()

    def close_expired(self):
        """Close the sockets past their deadline."""
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            self._close_first()

    def close_oldest(self):
        """Close the socket nearest its deadline (to make room)."""
        while self._deadlines and not self._close_first():
            pass

    def close_all(self):
        while self._deadlines:
            self._close_first()

    def seconds_left(self):
        """Until the first deadline (None without sockets)."""
        # Deadlines of sockets taken out since: no wake-up for them.
        while self._deadlines and not self._current(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        if not self._deadlines:
            return None
        return max(0.0, self._deadlines[0][0] - time.monotonic())

    def _current(self, deadline):
        _, number, fd = deadline
        return self._watches.get(fd) == number

    def _close_first(self):
        """Close the first deadline's socket if that deadline is still its
        own; whether it was."""
        first = heapq.heappop(self._deadlines)
        if not self._current(first):
            return False
        fd = first[2]
        sock = self._entries[fd][0]
        self._remove(fd)
        sock.close()
        return True

    def _remove(self, fd):
        del self._entries[fd]
        del self._watches[fd]
        # Before any close: once closed, the number goes to the next socket.
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(fd)
