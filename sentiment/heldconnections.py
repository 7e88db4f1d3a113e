"""How many connections each worker of one gunicorn master holds, in
memory they all share, so that a worker holding more kept-alive
connections than another can let one go (sentiment/worker.py).

A kept-alive connection stays with the worker that accepted it, and which
worker accepts is a race: under wrk's 32 connections the two workers held
12 / 20, 13 / 19 and 14 / 18 of them (`ss -tnp`, three runs), so a third
of the clients queued behind 19 others while the other worker had less to
do (README, "The client's next request").

The counts live in an anonymous shared mapping made in the master, before
any worker is forked, so every worker sees the same pages. Each worker
takes a slot of its own when it starts accepting: the first slot whose byte of a
lock file no other process holds (lockf). The kernel drops a process's
locks when it exits, however it exits, so the slot of a worker killed by
gunicorn's timeout is free for the next worker, and a slot whose lock no
one holds is not counted even though its last count is still there (from
the next look at which slots are held, at most CHECK_SECONDS later; a
worker that stops in order clears its slot at once).
"""
import fcntl
import mmap
import os
import tempfile
import time

SLOTS = 256
# How often a worker looks again at which slots are held (one lockf
# probe per slot that was ever used): workers start and stop rarely.
CHECK_SECONDS = 1.0


class HeldConnections:
    """The shared counts. Made in the master; each worker then calls
    claim() once, publish() as its count changes and fewest_elsewhere()
    to compare."""

    def __init__(self, directory=None, slots=SLOTS, check_seconds=CHECK_SECONDS):
        # mmap(-1, ...) is MAP_SHARED | MAP_ANONYMOUS: shared with children.
        self._memory = mmap.mmap(-1, slots * 16)
        # Per slot: the pid that claimed it, the connections it holds.
        self._values = memoryview(self._memory).cast("q")
        self._locks = tempfile.TemporaryFile(prefix="sentiment-held-", dir=directory)
        self.slots = slots
        self.check_seconds = check_seconds
        self.slot = None
        self._others = []
        self._checked = None

    def claim(self):
        """In a worker: take the first slot no live process holds, or none
        (more than SLOTS workers: this one is then left out)."""
        for slot in range(self.slots):
            try:
                fcntl.lockf(self._locks, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
            except OSError:
                continue
            self._values[2 * slot + 1] = 0
            self._values[2 * slot] = os.getpid()
            self.slot = slot
            self._checked = None
            return slot
        return None

    def publish(self, count):
        """This worker's number of connections, for the others to see."""
        if self.slot is not None:
            self._values[2 * self.slot + 1] = count

    def fewest_elsewhere(self):
        """The fewest connections another live worker holds, or None where
        this worker is alone (or has no slot)."""
        if self.slot is None:
            return None
        now = time.monotonic()
        if self._checked is None or now - self._checked >= self.check_seconds:
            self._others = self._held_slots()
            self._checked = now
        values = self._values
        # A worker that has left since that look cleared its pid first.
        return min((values[2 * slot + 1] for slot in self._others if values[2 * slot]),
                   default=None)

    def release(self):
        """A worker leaving (no longer accepting): its count no longer
        counts, from now on."""
        if self.slot is None:
            return
        self._values[2 * self.slot] = 0
        self._values[2 * self.slot + 1] = 0
        try:
            fcntl.lockf(self._locks, fcntl.LOCK_UN, 1, self.slot)
        except OSError:
            pass
        self.slot = None

    def close(self):
        """Unmap the counts and close the lock file (in the process that
        made them, once no worker is left)."""
        self._values.release()
        self._memory.close()
        self._locks.close()

    def _held_slots(self):
        """The other slots a live process holds: a slot ever claimed whose
        byte cannot be locked now."""
        held = []
        for slot in range(self.slots):
            if slot == self.slot:
                continue  # a lock of one's own would be converted, not refused
            if self._values[2 * slot] == 0:
                continue
            try:
                fcntl.lockf(self._locks, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, slot)
            except OSError:
                held.append(slot)
            else:
                # Nobody's: the worker that had it has gone.
                fcntl.lockf(self._locks, fcntl.LOCK_UN, 1, slot)
        return held
