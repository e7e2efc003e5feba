"""The one retry loop and the pacer, on a fake clock: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connector.errors import AuthError, QuotaExhausted, RateLimited, RequestRejected, RetriableError
from connector.retry import Pacer, RetryPolicy, call_with_retry


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(*errors: Exception) -> Callable[[], str]:
    remaining = list(errors)

    def operation() -> str:
        if remaining:
            raise remaining.pop(0)
        return "ok"

    return operation


def run(operation: Callable[[], str], clock: Clock, **kwargs: object) -> str:
    return call_with_retry(
        operation, what="test", sleep=clock.sleep, clock=clock, jitter=lambda: 1.0, **kwargs
    )  # type: ignore[arg-type]


def test_transient_failures_back_off_exponentially_then_succeed() -> None:
    clock = Clock()
    assert run(failing(RetriableError("502"), RetriableError("503"), RetriableError("reset")), clock) == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_a_rate_limit_waits_what_the_server_said() -> None:
    clock = Clock()
    assert run(failing(RateLimited("429", retry_after=10.0, policy="TEN_SECONDLY_ROLLING")), clock) == "ok"
    assert clock.sleeps == [10.0]


def test_it_gives_up_after_its_attempts_and_raises_the_last_error() -> None:
    clock = Clock()
    with pytest.raises(RetriableError, match="still down"):
        run(failing(*[RetriableError("still down")] * 10), clock, policy=RetryPolicy(attempts=3))
    assert len(clock.sleeps) == 2


def test_it_never_waits_past_its_deadline() -> None:
    clock = Clock()
    with pytest.raises(RateLimited):
        run(failing(*[RateLimited("429", retry_after=40.0)] * 10), clock, policy=RetryPolicy(deadline=100.0))
    assert sum(clock.sleeps) <= 100.0


def test_refused_credentials_are_refreshed_once_then_the_call_retried_once() -> None:
    clock, refreshed = Clock(), []
    assert run(failing(AuthError("expired")), clock, refresh_credentials=lambda: refreshed.append(1)) == "ok"
    assert refreshed == [1]
    with pytest.raises(AuthError):
        run(
            failing(AuthError("expired"), AuthError("still")),
            clock,
            refresh_credentials=lambda: refreshed.append(1),
        )
    with pytest.raises(AuthError):
        run(failing(AuthError("no refresh possible")), clock)


@pytest.mark.parametrize("error", [QuotaExhausted("daily"), RequestRejected("bad field", status=400)])
def test_quota_and_rejections_are_not_retried(error: Exception) -> None:
    clock = Clock()
    with pytest.raises(type(error)):
        run(failing(error), clock)
    assert clock.sleeps == []


def test_the_pacer_spaces_calls_to_its_rolling_limit() -> None:
    clock = Clock()
    pacer = Pacer(limit=3, window=10.0, sleep=clock.sleep, clock=clock)
    starts = []
    for _ in range(7):
        pacer.acquire()
        starts.append(clock.now)
    assert starts == [0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 20.0]


def test_a_penalised_pacer_holds_every_slot_for_the_penalty() -> None:
    clock = Clock()
    pacer = Pacer(limit=2, window=1.0, sleep=clock.sleep, clock=clock)
    pacer.acquire()
    pacer.penalise(5.0)
    assert pacer.acquire() == pytest.approx(5.0)


def test_a_pacer_slot_is_held_until_the_window_has_passed_since_the_answer_came_back() -> None:
    """The server counts a call when it arrives, somewhere between our sending it and its answer: counted
    from the answer, the window's turn can never let one call too many in."""
    clock = Clock()
    pacer = Pacer(limit=2, window=10.0, sleep=clock.sleep, clock=clock)
    with pacer.slot():
        clock.sleep(3.0)  # the answer takes 3 s
    pacer.acquire()  # the second slot, at 3 s
    assert pacer.acquire() == pytest.approx(10.0), (
        "free 10 s after the first answer (13 s), not after its call"
    )
    assert clock.now == pytest.approx(13.0)
