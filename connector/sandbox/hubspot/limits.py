"""The emulator's tunables and HubSpot's rate limits: ten-secondly, daily, and search's own per-second limit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field
from starlette.responses import Response

from connector.sandbox.kit import Behaviour, RollingWindow, json_response

PORTAL_ID = 24681357
CONNECTOR_SCOPES = (
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
)


class HubSpotBehaviour(Behaviour):
    """Realistic by default (a Free/Starter private app: docs/hubspot.md#rate-limits); `realistic=False` lifts
    the limits."""

    ten_secondly_limit: int | None = Field(default=100, ge=0)  # 190 for Professional/Enterprise; 0/None: off
    daily_limit: int | None = Field(default=250_000, ge=0)
    search_per_second: int | None = Field(default=5, ge=0)
    send_retry_after: bool = False  # HubSpot documents no Retry-After on 429 (docs/hubspot.md#rate-limits)
    latency_ms: int = Field(default=0, ge=0)
    server_error_share: float = Field(default=0.0, ge=0.0, le=1.0)
    server_error_statuses: list[int] = Field(default_factory=lambda: [502, 503])
    # Search is eventually consistent: a write shows in search results some seconds later, reads by id see it at
    # once (https://blog.sequin.io/building-a-sync-on-hubspots-api/; HubSpot gives no figure). Two seconds: the
    # low end of the "few seconds" integrators report, long enough that a client reading its writes back
    # through search must wait for them, as it must in production, short enough for a test suite.
    search_visibility_delay_ms: int = Field(default=2000, ge=0)
    # The private app's scopes: what the README asks for (contacts and their properties). Reads of other
    # types' properties, and of custom object schemas, answer 403 MISSING_SCOPES without theirs.
    token_scopes: list[str] = Field(default_factory=lambda: list(CONNECTOR_SCOPES))
    # More private-app tokens accepted beside the emulator's own: a test running several instances on one
    # emulator gives each its own token, as each customer's portal has its own. Calls in flight are watched
    # per token (instance_of in app.py).
    more_tokens: list[str] = Field(default_factory=list)
    # Batch update naming ids that are gone (archived, merged, never existed): whether HubSpot lists them in
    # `errors[].context.ids` is undocumented, and one community thread saw a 207 with no results and 0 errors.
    # Unkind by default: a 207 that leaves them out; True lists them under OBJECT_NOT_FOUND, as batch read does.
    batch_update_lists_missing_ids: bool = False
    # That thread's answer for every batch update: a 207 with no results and 0 errors, the updates carried out
    # ("after_writing") or not ("without_writing", a batch accepted and dropped); "off": the usual answer.
    batch_update_empty_answer: Literal["off", "after_writing", "without_writing"] = "off"
    # Contact ids a person deletes while an apply pass runs: each is archived as the next batch update naming
    # it arrives, after the pass has read it and before its update is carried out.
    archive_before_update: list[str] = Field(default_factory=list)
    # {"POST /crm/v3/objects/contacts/batch/read": n}: the next n calls of that route are carried out, then
    # answered 200 with an HTML page instead of their JSON (kit.html_in_place).
    html_answers: dict[str, int] = Field(default_factory=dict)
    garbled_answers: dict[str, int] = Field(default_factory=dict)  # likewise, a body that does not decode


def relaxed() -> HubSpotBehaviour:
    return HubSpotBehaviour(
        ten_secondly_limit=None, daily_limit=None, search_per_second=None, search_visibility_delay_ms=0
    )


class RateLimits:
    """Counts admitted calls; a refused (429) call consumes nothing, as with HubSpot's rolling windows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.ten_secondly: RollingWindow | None = None
        self.secondly: RollingWindow | None = None
        self.daily_limit: int | None = None
        self.send_retry_after = False
        self.daily_used = 0
        self._day = self._today()

    def configure(self, behaviour: HubSpotBehaviour) -> None:
        ten, search = behaviour.ten_secondly_limit, behaviour.search_per_second
        self.ten_secondly = RollingWindow(ten, 10.0, self._clock) if ten else None
        self.secondly = RollingWindow(search, 1.0, self._clock) if search else None
        self.daily_limit = behaviour.daily_limit or None
        self.send_retry_after = behaviour.send_retry_after

    def reset(self) -> None:
        for window in (self.ten_secondly, self.secondly):
            if window is not None:
                window.clear()
        self.daily_used = 0
        self._day = self._today()

    @staticmethod
    def _today() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d")

    def admit(self, *, search: bool, correlation_id: Callable[[], str]) -> Response | None:
        """None when the call may proceed (and is counted), else the 429 to answer."""
        if (
            self._today() != self._day
        ):  # the daily limit resets at midnight (UTC here; the portal's zone in life)
            self._day, self.daily_used = self._today(), 0
        if self.daily_limit is not None and self.daily_used >= self.daily_limit:
            midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
                days=1
            )
            wait = (midnight - datetime.now(UTC)).total_seconds()
            body = self._body("You have reached your daily limit.", "DAILY", correlation_id())
            body["requestId"] = body["correlationId"]
            return self._refuse(body, wait, {} if search else self.headers())
        window = self.secondly if search else self.ten_secondly
        if window is not None and not window.hit():
            if search:
                # Search is exempt from the ten-secondly limit and has its own (docs/hubspot.md#rate-limits).
                body = self._body("You have reached your secondly limit.", "SECONDLY", correlation_id())
                return self._refuse(body, window.seconds_until_free(), {})
            message = "You have reached your ten_secondly_rolling limit."
            body = self._body(message, "TEN_SECONDLY_ROLLING", correlation_id())
            body["groupName"] = f"publicapi:private-app-api-calls-ten-secondly:{PORTAL_ID}"
            return self._refuse(body, window.seconds_until_free(), self.headers())
        self.daily_used += 1
        return None

    def headers(self) -> dict[str, str]:
        """The rate-limit headers of non-search responses (a third-party summary says search sends none)."""
        headers: dict[str, str] = {}
        if self.daily_limit is not None:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily_limit - self.daily_used))
        if self.ten_secondly is not None:
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = "10000"
            headers["X-HubSpot-RateLimit-Max"] = str(self.ten_secondly.limit)
            headers["X-HubSpot-RateLimit-Remaining"] = str(self.ten_secondly.remaining())
        return headers

    @staticmethod
    def _body(message: str, policy: str, correlation_id: str) -> dict[str, str]:
        return {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id,
            "policyName": policy,
        }

    def _refuse(self, body: dict[str, str], wait_seconds: float, headers: dict[str, str]) -> Response:
        headers = {**headers, "X-HubSpot-Correlation-Id": body["correlationId"]}
        if self.send_retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(wait_seconds)))
        return json_response(body, status=429, headers=headers)
