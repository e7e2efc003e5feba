"""Batch calls two at a time: answers in order, both really in flight, and a failure stops the rest."""

from __future__ import annotations

import threading

import pytest

from connector.adapters.base import IN_FLIGHT, two_at_a_time


def test_answers_come_back_in_the_order_of_the_batches() -> None:
    assert two_at_a_time(lambda batch: [n * 10 for n in batch], [[1, 2], [3], [4, 5, 6], [7]]) == [
        [10, 20],
        [30],
        [40, 50, 60],
        [70],
    ]


def test_two_batches_are_in_flight_at_once() -> None:
    both_started = threading.Barrier(IN_FLIGHT, timeout=10)  # broken (raises) if the calls ran one by one

    def call(batch: int) -> int:
        both_started.wait()
        return batch

    assert two_at_a_time(call, [1, 2]) == [1, 2]


def test_a_failed_batch_is_raised_and_the_batches_not_started_are_not_sent() -> None:
    started: list[int] = []
    release = threading.Event()  # the others answer only after the failure has had time to stop the queue
    timer = threading.Timer(0.5, release.set)
    timer.start()

    def call(batch: int) -> int:
        started.append(batch)
        if batch == 1:
            raise ConnectionError("refused")
        release.wait(10)
        return batch

    with pytest.raises(ConnectionError):
        two_at_a_time(call, list(range(1, 51)))
    timer.join()
    assert len(started) <= 1 + IN_FLIGHT, "only the batches already running answered; the queue was cancelled"
