"""Group commit for webhook intake: concurrent deliveries share one transaction, each answered after it.

Why: every delivery is stored before its 2xx (docs/architecture.md#nothing-lost). A commit per request puts a
transaction, a pooled connection and a worker-thread hop on each request's path, and on SQLite they all queue
for its one writer anyway. Here each request queues its body and waits; one writer at a time keeps everything
queued with one `Inbox.keep_all` call (one INSERT, one commit), then wakes each request with its own
answer, fresh or duplicate. Requests arriving meanwhile form the next group, so groups grow with the load and
a lone request waits for nobody. If the transaction fails, every request in the group gets the error (the
webhook answers 5xx) and none was acknowledged: the group is kept whole or not at all.

The writer is a task on the server's event loop, started by a delivery that finds it idle and ended when
the queue is empty. The store is synchronous, so each transaction runs on a thread: always the same one, the
group commit's own (a one-thread executor), handed the group by `run_in_executor`. At thousands of
deliveries a second anyio's `to_thread` (its capacity limiter, its pool of threads taken in turn, each warm
again) was a visible share of a delivery's CPU (bench/webhook_path.py). The thread ends when its group commit
is collected. A server shutting down waits for requests in flight, and they wait for their group.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from connector.store import Arrival, Inbox
from connector.store.inbox import Wake

# A bound on one transaction; under any realistic load the group is the number of requests in flight.
LARGEST_GROUP = 256


class GroupCommitFailed(Exception):
    """The transaction holding this delivery failed (the cause says why): it was not stored."""


class GroupCommit:
    """`await keep(arrival)` stores it, grouped with whatever else arrives meanwhile. One per served app,
    used from its event loop only (the queue is unlocked: only the loop's thread touches it)."""

    def __init__(self, inbox: Inbox, *, largest_group: int = LARGEST_GROUP, wake: Wake | None = None):
        self._inbox, self._wake = inbox, wake
        self._largest = largest_group
        self._queue: list[tuple[Arrival, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="webhook-group-commit")

    async def keep(self, arrival: Arrival) -> bool:
        """True once stored, False for a body stored before (or earlier in its group); raises
        GroupCommitFailed when its transaction failed. Returns only after the commit."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        self._queue.append((arrival, answer))
        if self._writer is None:
            self._writer = loop.create_task(self._write(), name="webhook-group-commit")
        return await answer

    async def _write(self) -> None:
        try:
            while self._queue:
                group = self._queue[: self._largest]
                del self._queue[: len(group)]
                try:
                    arrivals = [arrival for arrival, _ in group]
                    fresh = await asyncio.get_running_loop().run_in_executor(
                        self._thread, self._inbox.keep_all, arrivals, self._wake
                    )
                    for (_, answer), outcome in zip(group, fresh, strict=True):
                        if not answer.done():  # its request was cancelled: the row is kept all the same
                            answer.set_result(outcome)
                except BaseException as exc:  # cancelled too: whatever happened, nobody may wait forever
                    for _, answer in group:
                        _fail(answer, exc, len(group))
                    if not isinstance(exc, Exception):
                        raise
        finally:
            self._writer = None
            # Only a cancelled writer leaves anything queued; the next delivery would start a new one, but
            # these have nobody left to write them.
            left, self._queue = self._queue, []
            for _, answer in left:
                _fail(answer, asyncio.CancelledError("the group-commit writer was cancelled"), len(left))


def _fail(answer: asyncio.Future[bool], cause: BaseException, size: int) -> None:
    if answer.done():
        return
    # One exception per waiter: raising a shared instance in many requests would splice their tracebacks.
    error = GroupCommitFailed(f"storing a group of {size} delivery(ies) failed: {type(cause).__name__}")
    error.__cause__ = cause
    answer.set_exception(error)
