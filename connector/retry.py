"""The one retry loop (docs/architecture.md#retries) and the client-side pacer that keeps 429s the exception.

Adapters and the LoneScale client translate what went wrong into `connector.errors`; this loop decides:

| error                          | action                                                          |
|--------------------------------|-----------------------------------------------------------------|
| RetriableError (connect, 5xx)  | back off exponentially with jitter, capped, within a deadline   |
| RateLimited (429)              | wait Retry-After, else the policy's window, then retry          |
| AuthError (401)                | refresh credentials once, retry once                            |
| QuotaExhausted, RequestRejected| raise: the caller stops the instance or records the failure     |

SDK-level retries stay off so that exactly one loop retries (urllib3's Retry skips POST:
docs/hubspot.md#client-setup).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from connector.errors import AuthError, RateLimited, RetriableError

T = TypeVar("T")
log = logging.getLogger(__name__)

# Hears the HTTP status of every answer an API gave, retries included: the CRM adapters and the LoneScale
# client call it from their one HTTP path, so /metrics counts calls and 429s where they are seen
# (connector.metrics). Nothing here depends on it being heard.
Answered = Callable[[int], None]


def unheard(status: int) -> None:
    """The default `Answered`: nobody counts (a command run once, a test)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float = 300.0  # never keep retrying one call longer than this, in seconds

    def backoff(self, attempt: int, jitter: float) -> float:
        """Full jitter: uniform in [0, min(max, base · 2^attempt)] (AWS architecture blog's recommendation)."""
        return min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1)) * jitter


DEFAULT_POLICY = RetryPolicy()


def call_with_retry(
    operation: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    refresh_credentials: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    jitter: Callable[[], float] = random.random,
) -> T:
    started = clock()
    attempt = 0
    refreshed = False
    while True:
        try:
            return operation()
        except AuthError:
            if refresh_credentials is None or refreshed:
                raise
            refreshed = True
            log.info("%s: credentials refused; refreshing them once", what)
            refresh_credentials()
        except RetriableError as exc:
            attempt += 1
            if isinstance(exc, RateLimited) or exc.retry_after is not None:
                delay = exc.retry_after if exc.retry_after is not None else policy.base_delay
            else:
                delay = policy.backoff(attempt, jitter())
            if attempt >= policy.attempts or clock() - started + delay > policy.deadline:
                log.warning("%s: giving up after %d attempts: %s", what, attempt, exc)
                raise
            log.info("%s: %s; retry %d/%d in %.2f s", what, exc, attempt, policy.attempts - 1, delay)
            sleep(delay)


class Pacer:
    """Client-side rate limit: at most `limit` calls per rolling `window` seconds, blocking as needed.

    HubSpot allows 100 or 190 requests per 10 s and 5 searches per second (docs/hubspot.md#rate-limits);
    pacing at those keeps a long write-back at the limit's rate instead of bouncing off 429s.

    No margin below the limit: a call made under `slot()` holds its slot from the moment it is made until
    `window` seconds after its answer came back, instead of from the moment it was made. The server counts
    a call when it arrives, which is after we made it and before its answer came back; so whatever the
    network's delays, any `window` seconds of arrivals at the server hold at most `limit` of our calls. A
    slot stamped when the call is made (`acquire`) is exceeded by a call in flight across the window's turn,
    which is what a margin (95 of 100) used to absorb; holding it for the answer costs one latency per slot
    (100 calls per 10.05 s at 50 ms) where the margin cost 5 %.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if limit < 1 or window <= 0:
            raise ValueError("a pacer needs limit ≥ 1 and window > 0")
        self.limit = limit
        self.window = window
        self._sleep = sleep
        self._clock = clock
        self._stamps: deque[float] = deque()  # when each recent call's slot was given back, oldest first
        self._in_flight = 0  # slots taken by calls whose answer has not come back yet
        self._held_until = float("-inf")  # penalised: no slot before then
        self._lock = threading.Lock()
        self._given_back = threading.Condition(self._lock)

    def acquire(self) -> float:
        """Take one slot, counted from now; returns the seconds spent waiting for it."""
        waited = self._take()
        self._give_back()
        return waited

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Take one slot for a call made inside the block (yields the seconds waited for it); it stays taken
        until `window` seconds after the block ends, the call's answer having come back (or failed)."""
        waited = self._take()
        try:
            yield waited
        finally:
            self._give_back()

    def _take(self) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.window:
                    self._stamps.popleft()
                if now < self._held_until:
                    delay = self._held_until - now
                elif self._in_flight + len(self._stamps) < self.limit:
                    self._in_flight += 1
                    return waited
                elif self._stamps:
                    delay = self._stamps[0] + self.window - now
                else:  # every slot is a call in flight: its answer says when the first one frees
                    started = self._clock()
                    self._given_back.wait()
                    waited += self._clock() - started
                    continue
            self._sleep(delay)
            waited += delay

    def _give_back(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._stamps.append(self._clock())
            self._given_back.notify_all()

    def penalise(self, seconds: float) -> None:
        """After a 429 despite pacing (another client shares the quota): hold every slot for `seconds`."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)
