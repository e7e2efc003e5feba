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
from collections.abc import Callable
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
    """Client-side rate limit: at most `limit` acquisitions per rolling `window` seconds, blocking as needed.

    HubSpot allows 100 or 190 requests per 10 s and 5 searches per second (docs/hubspot.md#rate-limits);
    pacing below those keeps a long write-back at the limit's rate instead of bouncing off 429s.
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
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one slot; returns the seconds spent waiting for it."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return waited
                delay = self._stamps[0] + self.window - now
            self._sleep(delay)
            waited += delay

    def penalise(self, seconds: float) -> None:
        """After a 429 despite pacing (another client shares the quota): hold every slot for `seconds`."""
        with self._lock:
            until = self._clock() + seconds - self.window
            self._stamps = deque([until] * self.limit)
