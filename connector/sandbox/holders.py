"""Which process holds each call in flight on one CRM instance, and when two processes overlapped on one.

Several instances may share one emulator (a cluster test runs 20 on one HubSpot portal), so the calls are
keyed by instance, as the emulator reads it from the call's credentials, and by holder, the User-Agent the
connector fills with its host and pid. One process may keep two batch calls of an instance in flight (the
pipelining of connector/adapters/base.py); two processes at once on one instance is what the cluster's
per-instance lock promises never happens, and what a holder overlap records.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

KEPT = 100  # overlaps listed, and holders listed per instance; the counts go on
TIMELINE = 200_000  # calls kept in the timeline (about 20 MB at most); later ones are counted, not kept


@dataclass(frozen=True)
class HolderOverlap:
    instance: str  # the emulator's key of the instance: a token's digest, a connected app's client id
    running_holder: str  # the User-Agent of the call already in flight
    started_holder: str  # the User-Agent of the call that began beside it
    running: str  # "PATCH /crm/v3/objects/contacts/batch/update"
    started: str
    at: float  # seconds since the emulator started


@dataclass
class Holders:
    """Not thread-safe on its own: CallStats calls it under its lock."""

    in_flight: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # call → instance, holder, call
    overlaps: list[HolderOverlap] = field(default_factory=list)
    overlap_count: int = 0
    seen: dict[str, set[str]] = field(default_factory=dict)  # instance → the holders that called it
    # (wall-clock time the call began, holder, call) of each call of an instance: what a test reads to say
    # what one process sent after a moment (a frozen worker's calls after it resumed), in-process only.
    timeline: list[tuple[float, str, str]] = field(default_factory=list)

    def begin(self, number: int, call: str, instance: str | None, holder: str, at: float) -> None:
        if instance is None:  # no credentials (the token endpoint): no instance to hold
            return
        for other, running_holder, running in self.in_flight.values():
            if other == instance and running_holder != holder:
                self.overlap_count += 1
                if len(self.overlaps) < KEPT:
                    self.overlaps.append(HolderOverlap(instance, running_holder, holder, running, call, at))
                break
        self.in_flight[number] = (instance, holder, call)
        if len(self.timeline) < TIMELINE:
            self.timeline.append((time.time(), holder, call))
        holders = self.seen.setdefault(instance, set())
        if len(holders) < KEPT:
            holders.add(holder)

    def end(self, number: int) -> None:
        self.in_flight.pop(number, None)

    def report(self) -> dict[str, Any]:
        return {
            "holder_overlaps": [asdict(o) for o in self.overlaps],
            "holder_overlap_count": self.overlap_count,
            "holders": {instance: sorted(found) for instance, found in sorted(self.seen.items())},
        }

    def clear(self) -> None:
        self.overlaps.clear()
        self.overlap_count = 0
        self.seen.clear()
        self.timeline.clear()
