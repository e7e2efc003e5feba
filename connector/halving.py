"""The one way a batch refused as a whole is undone: halves sent apart, down to the items at fault.

LoneScale's trigger, HubSpot's batch update and its note create each refuse a whole request for one bad item
(a 400 that names none of them), so the others would wait on it for ever. Sent in halves, then halves of
halves, the refusals end up on single items and everything else goes through; a request refused for every
item's sake costs at most 2N-1 calls, which is why `narrow` may look first (LoneScale's trigger tries a
batch's two ends alone before it halves).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from connector.errors import RequestRejected

T = TypeVar("T")
R = TypeVar("R")
Narrow = Callable[[Sequence[T], RequestRejected], tuple[list[R], Sequence[T]]]


def halving(
    items: Sequence[T],
    send: Callable[[Sequence[T]], list[R]],
    alone: Callable[[T, RequestRejected], R],
    narrow: Narrow[T, R] | None = None,
) -> list[R]:
    """`send(items)`, its results in order; when it raises RequestRejected for the whole, the halves are sent
    apart, and an item refused on its own gets `alone`'s result. `narrow(items, refusal)` may settle some
    items first and hand back the ones left (the same ones if it has nothing to say), or raise to stop."""
    try:
        return send(items)
    except RequestRejected as refusal:
        if len(items) == 1:
            return [alone(items[0], refusal)]
        if narrow is not None:
            done, rest = narrow(items, refusal)
            if len(rest) < len(items):
                return done + (halving(rest, send, alone, narrow) if rest else [])
        middle = len(items) // 2
        return halving(items[:middle], send, alone, narrow) + halving(items[middle:], send, alone, narrow)
