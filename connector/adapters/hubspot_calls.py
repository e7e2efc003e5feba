"""HubSpot calls through hubspot-api-client: paced, retried by our one loop, read as JSON, errors translated.

Quirks handled here (docs/hubspot.md#client-setup): every call carries `_request_timeout` (the SDK sets none);
each sub-package raises its own ApiException, so errors are read by duck typing (docs/hubspot.md#sdk-errors).

The calls go through the SDK's API classes (its auth, transport and errors) with `_preload_content=False`,
and their JSON is read here. Building and reading the SDK's models cost most of the connector's CPU
(BENCHMARKS.md, figure 3): every model copies the SDK's Configuration, which resets logger levels, and every
timestamp goes through `dateutil`. Reading the JSON here also means an answer that is not JSON (an HTML page a
proxy serves with a 200) or not of the expected shape is seen as such: the SDK's model path would give back a
model of Nones. Every such answer leaves the adapter as a connector error (`_translate`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import urllib3

from connector import fencing
from connector.adapters.base import ServerClock
from connector.errors import (
    AuthError,
    ConnectorError,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    RetriableError,
)
from connector.retry import Answered, Pacer, RetryPolicy, call_with_retry, unheard

T = TypeVar("T")


class HubSpotCalls:
    """How every call of one portal goes out: paced below its limits, through the retry loop, its `Date`
    header fed to `server_clock`, and whatever fails translated into a connector error."""

    def __init__(
        self,
        *,
        requests_per_10s: int,
        searches_per_second: int,
        timeout: tuple[float, float],
        retry_policy: RetryPolicy,
        answered: Answered = unheard,
    ):
        self.server_clock = ServerClock()
        self._answered = answered
        self._timeout = timeout
        self._policy = retry_policy
        # Pace at each limit, the general 10 s window and search's own per second, each slot held until its
        # answer is back (retry.Pacer: why no margin is needed), so a 429 is another client's doing.
        self._pace = Pacer(requests_per_10s, 10.0)
        self._pace_search = Pacer(searches_per_second, 1.0)

    def _call(
        self, what: str, operation: Callable[[], T], *, search: bool = False, idempotent: bool = True
    ) -> T:
        def attempt() -> T:
            with (self._pace_search if search else self._pace).slot():
                return sent()

        def sent() -> T:
            fencing.check()  # after the pacer's wait, right before the call: our lease still holds
            try:
                return operation()
            except urllib3.exceptions.HTTPError as exc:  # the SDK does not wrap transport errors
                # Refused, unresolved or timed out while connecting: nothing was sent, so a retry is safe.
                if idempotent or isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
                    raise RetriableError(f"HubSpot {what}: {type(exc).__name__}") from exc
                # Sent, then no answer, or one cut short or undecodable: HubSpot may have created the
                # objects, and a second POST would create them twice.
                raise ConnectorError(
                    f"HubSpot {what}: {type(exc).__name__} after the request was sent; not retried, "
                    "as the objects may exist already"
                ) from exc
            except Exception as exc:
                raise self._translate(what, exc, search, idempotent) from exc

        return call_with_retry(attempt, what=f"HubSpot {what}", policy=self._policy)

    def json_call(
        self,
        what: str,
        method: Callable[..., Any],
        *,
        search: bool = False,
        idempotent: bool = True,
        **arguments: Any,
    ) -> dict[str, Any]:
        """An SDK call answered as JSON, not as SDK models (why: the module docstring); the SDK still raises
        its ApiException on a non-2xx status before the body is read."""
        return self.read_json(what, method, _as_is, search=search, idempotent=idempotent, **arguments)

    def read_json(
        self,
        what: str,
        method: Callable[..., Any],
        read: Callable[[dict[str, Any]], T],
        *,
        search: bool = False,
        idempotent: bool = True,
        **arguments: Any,
    ) -> T:
        """`json_call`, its answer read by `read` inside the call, so a shape `read` does not expect is
        translated like any other failure of the call."""

        def call() -> T:
            response = method(**arguments, _request_timeout=self._timeout, _preload_content=False)
            self._answered(response.status)
            self.server_clock.observe(response.headers.get("Date"))
            body = json.loads(response.data)  # a urllib3 response
            if not isinstance(body, dict):
                raise TypeError(f"a JSON {type(body).__name__}, not an object")
            return read(body)

        return self._call(what, call, search=search, idempotent=idempotent)

    def _translate(self, what: str, exc: Exception, search: bool, idempotent: bool) -> Exception:
        if isinstance(exc, ConnectorError):
            return exc
        status = getattr(exc, "status", None)
        if isinstance(status, int) and status:  # the SDK raised for an answer's status: it was an answer
            self._answered(status)
        if not isinstance(status, int):  # no HTTP error: a 2xx answer we could not read
            if isinstance(exc, json.JSONDecodeError):
                detail = f"a body that is not JSON: {exc.doc[:80]!r}"
            else:
                detail = f"an answer of an unexpected shape ({type(exc).__name__}: {exc})"
            if idempotent:
                return RetriableError(f"HubSpot {what} answered with {detail}")
            return ConnectorError(
                f"HubSpot {what} answered with {detail}; not retried, as the objects may exist already"
            )
        try:
            body = json.loads(getattr(exc, "body", None) or "{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = body.get("message") or getattr(exc, "reason", "") or str(exc)
        if status == 401:
            return AuthError(
                f"HubSpot refused the access token ({message}): check instances.hubspot.access_token_env"
            )
        if status == 429:
            policy = body.get("policyName")
            if policy == "DAILY":
                return QuotaExhausted(f"HubSpot daily API limit reached: {message}")
            headers = getattr(exc, "headers", None) or {}
            retry_after = headers.get("Retry-After")
            # No Retry-After is documented: wait the policy's window (docs/hubspot.md#rate-limits).
            wait = _seconds(retry_after) or (1.0 if search else 10.0)
            if not search:
                self._pace.penalise(wait)
            return RateLimited(f"HubSpot {what}: {message}", retry_after=wait, policy=policy)
        if status >= 500 or status == 0:
            return RetriableError(f"HubSpot {what} failed with {status}: {message}")
        return RequestRejected(f"HubSpot {what} refused ({status}{_category(body)}): {message}", status)


def _as_is(body: dict[str, Any]) -> dict[str, Any]:
    return body


def _category(body: Mapping[str, Any]) -> str:
    """The error's category, which every HubSpot error body carries (the spec's Error schema requires it), and
    for MISSING_SCOPES the scopes a call needs, one of which the private app must be given."""
    category = body.get("category")
    if not isinstance(category, str):
        return ""
    if category != "MISSING_SCOPES":
        return f" {category}"
    needed = [
        scope
        for error in body.get("errors") or []
        if isinstance(error, Mapping)
        for scope in (error.get("context") or {}).get("requiredGranularScopes") or []
    ]
    return (
        f" MISSING_SCOPES, the app needs one of: {', '.join(map(str, needed))}"
        if needed
        else " MISSING_SCOPES"
    )


def _seconds(header: Any) -> float | None:
    """A Retry-After header in seconds; None when absent or not a number (an HTTP date is not expected)."""
    try:
        return float(header) if header else None
    except (TypeError, ValueError):
        return None
