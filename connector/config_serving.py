"""The configuration of what the daemon serves: the webhook LoneScale calls, and the status page a person reads.

Re-exported by connector.config, where the other sections are."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import Field, ValidationInfo, field_validator

from connector.config_base import Section, http_url
from connector.durations import parse_duration


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not 'host:port'")
    return value


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class _Listening(Section):
    """A section with a `listen = "host:port"` of its own (each declares it, with its default, where its
    validators need it), read as its host and port."""

    if TYPE_CHECKING:
        listen: str

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class WebhookSettings(_Listening):
    listen: str = "127.0.0.1:8080"
    public_url: str | None = None
    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    # A job's URL token stops authenticating this long after the job is done (applied, failed or expired).
    token_grace: str = "7d"
    # On shutdown, after the running syncs: keep the webhook up (and apply what arrives) at most this long
    # while jobs sent by this run still await their results. 0 skips the wait.
    drain_seconds: float = Field(default=20.0, ge=0, le=600)

    @field_validator("token_grace")
    @classmethod
    def _grace(cls, value: str) -> str:
        # Shorter, and a late delivery (a retry, a result of an expired job, which is still paid for and
        # applied) would be refused while LoneScale may still be sending it.
        if parse_duration(value) < timedelta(hours=1):
            raise ValueError(f"{value!r} is shorter than an hour")
        return value

    @property
    def token_grace_delta(self) -> timedelta:
        return parse_duration(self.token_grace)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _host_port(value)

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)


class StatusSettings(_Listening):
    """`[status]`: the read-only status page (connector.status_app), on a port of its own, apart from the
    webhook LoneScale must reach: loopback only unless a token guards it."""

    enabled: bool = True
    # The variable holding the bearer token the page asks for (`Authorization: Bearer …`); none: no token.
    token_env: str | None = None
    listen: str = "127.0.0.1:8081"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str, info: ValidationInfo) -> str:
        host = _host_port(value).rpartition(":")[0]
        if not is_loopback(host) and not info.data.get("token_env"):
            # The page tells how much is spent and which records failed: never open to a network unguarded.
            raise ValueError(
                f"{value!r} is reachable from other machines: set token_env to the variable holding a token, "
                "or listen on 127.0.0.1"
            )
        return value
