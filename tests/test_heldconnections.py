"""The connection counts the workers of one master share
(sentiment/heldconnections.py), across real forked processes."""
import os
import signal
import traceback

import pytest

from sentiment.heldconnections import HeldConnections


class Worker:
    """A forked process that claims a slot, says which, and holds `count`
    connections until leave() (or a kill)."""

    # The parent's ends of the pipes to the workers still running: a worker
    # forked later must not keep another's open, or that one never leaves.
    telling = set()

    def __init__(self, held, count):
        said, self._say = os.pipe()
        self._told, tell = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the worker
            try:
                for fd in (said, tell, *Worker.telling):
                    os.close(fd)
                slot = held.claim()
                held.publish(count)
                os.write(self._say, b"-" if slot is None else str(slot).encode())
                os.read(self._told, 1)  # until the parent closes its end
                held.release()
            except BaseException:
                os.write(self._say, b"!" + traceback.format_exc().encode()[-4000:])
            finally:
                os._exit(0)
        os.close(self._say)
        os.close(self._told)
        self._tell = tell
        Worker.telling.add(tell)
        answer = os.read(said, 8192)
        os.close(said)
        assert not answer.startswith(b"!"), answer.decode()
        self.slot = None if answer == b"-" else int(answer)
        self.running = True

    def leave(self):
        self._end()

    def kill(self):
        # SIGKILL, as gunicorn's timeout ends a worker: it releases nothing.
        os.kill(self.pid, signal.SIGKILL)
        self._end()

    def _end(self):
        Worker.telling.discard(self._tell)
        os.close(self._tell)
        os.waitpid(self.pid, 0)
        self.running = False


@pytest.fixture
def held(tmp_path):
    # check_seconds=0: each comparison looks again at which slots are held.
    held = HeldConnections(tmp_path, slots=4, check_seconds=0)
    yield held
    held.close()


@pytest.fixture
def workers(held):
    started = []

    def start(count):
        worker = Worker(held, count)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.running:
            worker.leave()


def test_each_worker_has_its_own_slot_and_sees_the_fewest_of_the_others(held, workers):
    first, second = workers(5), workers(3)
    assert first.slot != second.slot
    assert held.claim() not in (first.slot, second.slot, None)
    held.publish(9)
    assert held.fewest_elsewhere() == 3


def test_a_worker_alone_or_without_a_slot_compares_with_nobody(held):
    assert held.fewest_elsewhere() is None  # no slot of its own
    held.claim()
    assert held.fewest_elsewhere() is None  # alone


def test_a_killed_worker_no_longer_counts_and_its_slot_is_taken_again(held, workers):
    killed = workers(1)
    workers(4)
    held.claim()
    assert held.fewest_elsewhere() == 1
    killed.kill()  # its count of 1 is still in the shared memory
    assert held.fewest_elsewhere() == 4
    again = workers(7)
    assert again.slot == killed.slot  # the first free slot, its count replaced
    assert held.fewest_elsewhere() == 4


def test_a_worker_that_leaves_no_longer_counts_at_once(held, workers):
    leaving = workers(0)
    workers(2)
    held.claim()
    held.check_seconds = 60  # no new look at which slots are held
    assert held.fewest_elsewhere() == 0
    leaving.leave()
    assert held.fewest_elsewhere() == 2


def test_more_workers_than_slots_leaves_the_last_out(held, workers):
    for count in range(4):
        workers(count)
    assert held.claim() is None
    assert held.fewest_elsewhere() is None
