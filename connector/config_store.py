"""The configuration of where the state lives (`[store]`) and who shares it (`[cluster]`).

Re-exported by connector.config, where the other sections are."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from connector.config_base import Section
from connector.durations import parse_duration


def _duration(value: str) -> str:
    parse_duration(value)
    return value


class StoreSettings(Section):
    url: str = "sqlite:///lonescale-sync.db"
    # The URL from an environment variable instead, so a PostgreSQL password stays out of the file.
    url_env: str | None = None
    # How long raw webhook payloads are kept for replay; older ones are emptied (their hash stays).
    payload_retention: str = "180d"

    @field_validator("payload_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        return _duration(value)


class ClusterSettings(Section):
    """`[cluster]`: several processes on one PostgreSQL store, with procrastinate as the clock and the
    dispatcher (docs/cluster.md). Absent or `enabled = false`: one process, APScheduler, as before."""

    enabled: bool = False
    # How often the shared clock ticks: how late a sync may start after its time, and how soon a lost
    # write-back wake-up is made again.
    tick_seconds: int = Field(default=5, ge=1, le=60)
    # A worker silent this long (no heartbeat) is taken for dead: its jobs are ended and woken again
    # elsewhere. Its heartbeat is sent three times as often.
    stall_timeout: str = "30s"
    # How long an instance's lease outlives a holder that stopped renewing it (a frozen or unreachable
    # process, on another machine: one on this machine that died is taken over at once). Longer than any
    # one step between renewals: a CRM call retried up to its deadline.
    lease_ttl: str = "10m"
    # Units of work run at once by `lonescale-sync work` (and `run`), unless --concurrency says otherwise.
    concurrency: int = Field(default=4, ge=1, le=32)

    @field_validator("lease_ttl")
    @classmethod
    def _lease(cls, value: str) -> str:
        return _duration(value)

    @field_validator("stall_timeout")
    @classmethod
    def _stall(cls, value: str) -> str:
        # Its heartbeat is a third of it: under a second is a busy loop, and a short pause looks like death.
        if parse_duration(value) < timedelta(seconds=3):
            raise ValueError(f"{value!r} is under 3s")
        return value

    @property
    def stall_delta(self) -> timedelta:
        return parse_duration(self.stall_timeout)

    @property
    def lease_delta(self) -> timedelta:
        return parse_duration(self.lease_ttl)
