"""The connector's exceptions: what went wrong, said so a person can act on it."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""


class ConfigError(ConnectorError):
    """The configuration or a mapping is wrong; `problems` lists every one, each with its key path."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        self.source = source
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{listing}")


class AuthError(ConnectorError):
    """Credentials were refused; retrying will not help until someone fixes them."""


class RetriableError(ConnectorError):
    """A transient failure: worth another try, after `retry_after` seconds when the server said so."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetriableError):
    """The API's rate limit answered (429); `policy` names which one, e.g. HubSpot `TEN_SECONDLY_ROLLING`."""

    def __init__(self, message: str, retry_after: float | None = None, policy: str | None = None):
        super().__init__(message, retry_after)
        self.policy = policy


class QuotaExhausted(ConnectorError):
    """A daily quota is used up (Salesforce REQUEST_LIMIT_EXCEEDED, HubSpot DAILY): wait for the next run."""


class RequestRejected(ConnectorError):
    """The API refused the request as a whole (a 4xx other than auth and rate limits), with its reason."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Busy(ConnectorError):
    """Another process (or thread) holds the instance's lease: its sync or write-back is running now."""


class LeaseLost(ConnectorError):
    """Our lease expired and another holder took it: stop before writing anything more."""


class StoreUnavailable(ConnectorError):
    """The store cannot be opened or reached: its folder is missing, the database is down or refuses us."""


class StoreTooNew(StoreUnavailable):
    """The database was upgraded by a later lonescale-sync: its schema revision is one this code does not know."""


class ServerFailed(ConnectorError):
    """A server could not start: its address is taken, not this machine's, or needs privileges."""


class QueueSchemaMissing(ConnectorError):
    """[cluster]: procrastinate's schema (the job queue) is not in the store, or not at what the installed
    procrastinate needs; `lonescale-sync db upgrade` applies it."""
