"""Loading beside a server without starving it of the GIL.

The guarded unpickler is pure Python: a model of 20,000 opcodes keeps the interpreter busy for
~0.1 s, and a thread doing that holds the GIL in 5 ms turns against the event loop that answers
requests (each socket event then waits for a turn). Inside ``with paced():`` the loader's loops
(the opcode walk, the unpickler's dispatch, the state checks) stop every ``work_s`` of work and
sleep ``rest_s``, which releases the GIL: a request waits at most one short slice, and the load
takes the time the loop leaves free. Nothing about *what* is checked changes; the same handlers
run in the same order.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

_EVERY = 64  # steps between clock reads (a clock read costs more than a step's bookkeeping)


class Pacer:
    def __init__(self, work_s: float, rest_s: float) -> None:
        self.work_s, self.rest_s = work_s, rest_s
        self._steps = 0
        self._until = time.perf_counter() + work_s

    def tick(self) -> None:
        self._steps += 1
        if self._steps % _EVERY:
            return
        if time.perf_counter() >= self._until:
            time.sleep(self.rest_s)  # releases the GIL: whoever waits for it runs now
            self._until = time.perf_counter() + self.work_s

    def dispatch(self, table: dict[int, Callable[[Any], None]]
                 ) -> dict[int, Callable[[Any], None]]:
        """An unpickler's dispatch table whose every handler ticks first, then runs as is."""
        tick = self.tick

        def paced(step: Callable[[Any], None]) -> Callable[[Any], None]:
            def run(unpickler: Any) -> None:
                tick()
                step(unpickler)
            return run

        return {op: paced(step) for op, step in table.items()}


class _Local(threading.local):
    pacer: Pacer | None = None


_local = _Local()


def current() -> Pacer | None:
    """The pacer of this thread's ``with paced():`` block, else None (full speed)."""
    return _local.pacer


@contextlib.contextmanager
def paced(work_s: float = 0.001, rest_s: float = 0.0005) -> Iterator[Pacer]:
    """Loads on this thread yield the GIL every ``work_s`` for ``rest_s`` (other threads are
    unaffected)."""
    outer = _local.pacer
    _local.pacer = pacer = Pacer(work_s, rest_s)
    try:
        yield pacer
    finally:
        _local.pacer = outer
