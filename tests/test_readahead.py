"""Reading a pull ahead on a thread keeps its order, its errors and its bounds."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connector.readahead import ReadAhead


def test_chunks_come_in_the_source_order() -> None:
    chunks = list(ReadAhead(range(1, 1001), 300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert [item for chunk in chunks for item in chunk] == list(range(1, 1001))


def test_an_empty_source_gives_no_chunk() -> None:
    assert list(ReadAhead([], 10)) == []


def test_an_error_in_the_source_reaches_the_consumer_after_the_chunks_before_it() -> None:
    def pull() -> Iterator[int]:
        yield from range(25)
        raise ConnectionError("the CRM went away")

    got: list[int] = []
    with pytest.raises(ConnectionError, match="went away"):
        for chunk in ReadAhead(pull(), 10):
            got += chunk
    assert got == list(range(20)), "the complete chunks read before the error are delivered"


def test_leaving_early_stops_the_producer_and_closes_the_source_on_its_thread() -> None:
    produced, closed_on = [], []

    def pull() -> Iterator[int]:
        try:
            for n in range(1_000_000):
                produced.append(n)
                yield n
        finally:
            closed_on.append(threading.current_thread().name)

    reader = ReadAhead(pull(), 10, depth=2, name="pull-test")
    for chunk in reader:
        assert chunk == list(range(10))
        break
    reader._thread.join(timeout=10)

    assert not reader._thread.is_alive()
    assert closed_on == ["pull-test"]
    assert len(produced) <= 10 * 5, "at most a few chunks were read ahead, never the whole source"
