"""The fence every CRM call passes before it is sent: the work's lease, checked call by call.

A write-back sends many batches (two at a time, connector/adapters/base.py). Its lease is checked before each
one (`Lease.check`: renewed unless it was, under a second ago, when nobody can have taken it), so a holder that froze past its lease (and lost it to another process) sends no batch after it wakes,
beyond those already on the wire. The check rides in a context variable, set by whoever holds the lease
around the adapter's write (`with fenced(lease.check): adapter.write_back(...)`), so the adapter seam stays
as it is and every write path of every adapter passes it (`guarded(send_batch)`). The batch threads run in a
copy of the caller's context (connector.logs.in_context), so they see it.

Reads pass it too (`check()`, in each adapter's one call path, before every attempt): a sync or a write-back
of an instance never overlaps another holder's on the CRM, reads included, so a frozen holder that wakes after
a takeover sends nothing at all, not even the next page of its pull. What is left is the moment between the
check and the send (a freeze there sends one call late): no CRM takes a fencing token, so that gap cannot be
closed from our side (docs/cluster.md#what-happens-when-a-node-dies).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
_CHECK: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("fence", default=None)


@contextmanager
def fenced(check: Callable[[], None] | None) -> Iterator[None]:
    """Within the block, every guarded batch first calls `check` (it raises to stop the batch); None: none."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def check() -> None:
    """Raise (the check's own error, e.g. LeaseLost) if the fence in force no longer holds; no fence: nothing."""
    current = _CHECK.get()
    if current is not None:
        current()


def guarded(send: Callable[P, R]) -> Callable[P, R]:
    """`send`, checking the fence (if any) before each call."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        check = _CHECK.get()
        if check is not None:
            check()
        return send(*args, **kwargs)

    return run
