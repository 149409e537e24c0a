"""The gate of the engine's slow path: one counter read per call when unused."""

from __future__ import annotations

import threading
from typing import Any


class _Gate:
    """Whether a call must do more than run its steps.

    ``active`` counts what needs it, process-wide: asyncio-bridge guest runs
    alive (user code must run as asyncio Tasks), contexts with observers
    alive, and global observers registered. While it is 0 (every pure-trio
    program with no observer) the check costs one attribute read; while it is
    not, each composite looks at its own call to decide what, if anything, to
    add.
    """

    # An instance slot, not a class attribute: CPython 3.11 specializes the
    # read of a slot (a few ns) but not of a class attribute (~15 ns), and
    # the check is made at every execute.
    __slots__ = ("_lock", "active", "guests")

    def __init__(self) -> None:
        self.active = 0
        self.guests = 0  # of which asyncio-bridge guest runs
        self._lock = threading.Lock()

    def change(self, delta: int, *, guests: int = 0) -> None:
        """Add *delta* to ``active`` (and *guests* to ``guests``).

        Under a lock: contexts are made, and collected, in any thread (a
        lost update could leave observers unnoticed). Reads need none.
        """
        with self._lock:
            self.active += delta
            self.guests += guests


Hooks = _Gate()


class _Local(threading.local):
    # Class attributes: a thread that never hosted a guest run reads None
    # without an AttributeError (raised and caught, a miss costs ~0.5 us).
    loop: Any = None
    guest: Any = None


class Bridge:
    """Which asyncio loop hosts this thread's trio run, if it is a bridge guest run.

    ``local.loop`` is that loop, None in a thread that has none (a thread
    holds at most one trio run); ``local.guest`` its guest run.
    """

    local = _Local()
