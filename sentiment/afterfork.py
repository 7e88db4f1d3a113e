"""Per-process state that a forked child must not share with its parent:
open files that carry locks, threads that did not come along, thread locks
a parent's thread may have held at the fork (the child's copy would never
be freed)."""
import os
import weakref

_objects = weakref.WeakSet()


def _after_fork_in_child():
    for obj in list(_objects):
        obj._forget_parent()


os.register_at_fork(after_in_child=_after_fork_in_child)


def forget_in_child(obj):
    """Have obj._forget_parent() called in every child forked from now on,
    for as long as obj lives."""
    _objects.add(obj)
