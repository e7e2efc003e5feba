"""The Salesforce REST emulator: behaviour knobs, the request pipeline (auth, limits, faults) and the routes."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.sandbox import credentials
from connector.sandbox.kit import (
    Behaviour,
    Emulator,
    StatsMiddleware,
    garbled_in_place,
    happens,
    html_in_place,
    json_response,
)
from connector.sandbox.salesforce import oauth, writes
from connector.sandbox.salesforce.errors import SalesforceError, error_response, invalid_session, oauth_error
from connector.sandbox.salesforce.inserts import CollectionCreate
from connector.sandbox.salesforce.org import custom_fields
from connector.sandbox.salesforce.query import Cursor
from connector.sandbox.salesforce.rest import Context, RestApi
from connector.sandbox.salesforce.schema import SObjectSpec
from connector.sandbox.salesforce.store import INTEGRATION_USER_ID, Store, now_s
from connector.sandbox.salesforce.writes import Commit, ValidationRule

DAY_SECONDS = 86_400.0
MAX_OPEN_CURSORS = 500  # memory bound; Salesforce keeps cursors 2 days, simple-salesforce reads each once
_VERSION = re.compile(r"v(\d{2})\.0")
MIN_VERSION, MAX_VERSION = 31, 66
# REQUEST_LIMIT_EXCEEDED is one errorCode for the daily cap and for transient concurrency limits; only the
# message tells them apart (SalesforceLabs/OrgCheck#181 and #432, mautic/mautic#5006).
DAILY_CAP = "TotalRequests Limit exceeded."
CONCURRENT_REQUESTS = "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
CONCURRENT_LONG_TXN = "ConcurrentPerOrgLongTxn Limit exceeded"


class SalesforceBehaviour(Behaviour):
    # Enterprise base allocation (docs/salesforce.md#limits).
    daily_api_limit: int = Field(default=100_000, ge=0)
    token_ttl_seconds: float = Field(default=7_200.0, gt=0)  # the default 2-hour session timeout
    lock_row_share: float = Field(
        default=0.0, ge=0, le=1
    )  # share of collection records failing UNABLE_TO_LOCK_ROW
    server_error_share: float = Field(default=0.0, ge=0, le=1)  # share of REST calls answered 503
    latency_ms: float = Field(default=0.0, ge=0)  # added before every REST and OAuth answer
    min_query_batch_size: int = Field(default=200, ge=1, le=2000)  # Sforce-Query-Options clamp floor
    instance_url: str | None = None  # None: the emulator's own base URL
    expire_tokens: bool = False  # an action: setting it true invalidates every current token once
    validation_rules: list[ValidationRule] = Field(default_factory=list)  # the org's own (writes.py)
    # {"PATCH /services/data/{version}/composite/sobjects": n}: the next n calls of that route are carried out,
    # then answered 200 with an HTML page instead of their JSON (kit.html_in_place).
    html_answers: dict[str, int] = Field(default_factory=dict)
    garbled_answers: dict[str, int] = Field(default_factory=dict)  # likewise, a body that does not decode
    # The org's Experience Cloud site URLs: each is a JWT audience too, besides login and test (oauth.py).
    experience_cloud_sites: list[str] = Field(default_factory=list)
    # The next n REST calls are refused 403 REQUEST_LIMIT_EXCEEDED by a concurrency limit, not the daily cap:
    # too many requests at once, or too many long (20 s and more) ones at once in the org. Counted down.
    concurrent_request_refusals: int = Field(default=0, ge=0)
    long_transaction_refusals: int = Field(default=0, ge=0)
    # Updates through the API are stamped when made and committed this many seconds later, as a long
    # transaction's are: until then queries and reads see the record as it was, and records written meanwhile
    # are seen first with later stamps; then it appears with its earlier SystemModstamp
    # (https://salesforce.stackexchange.com/questions/234824).
    long_transaction_seconds: float = Field(default=0.0, ge=0)
    # More connected apps (client id → consumer secret) beside the emulator's own: each an instance of its own
    # when a test runs several on one emulator. Calls in flight are watched per app (instance_of).
    more_connected_apps: dict[str, str] = Field(default_factory=dict)


ApiHandler = Callable[[Request, Context], Awaitable[Response]]


class DailyUsage:
    """API calls in the last 24 hours, the count Sforce-Limit-Info reports."""

    def __init__(self) -> None:
        self._calls: deque[float] = deque()

    def used(self) -> int:
        horizon = time.monotonic() - DAY_SECONDS
        while self._calls and self._calls[0] <= horizon:
            self._calls.popleft()
        return len(self._calls)

    def hit(self, limit: int) -> bool:
        if self.used() >= limit:
            return False
        self._calls.append(time.monotonic())
        return True


class SalesforceEmulator(Emulator):
    behaviour_model = SalesforceBehaviour
    behaviour: SalesforceBehaviour

    def __init__(
        self,
        *,
        contacts: int = 200,
        seed: int = 1,
        realistic: bool = True,
        client_id: str = credentials.SALESFORCE_CLIENT_ID,
        client_secret: str = credentials.SALESFORCE_CLIENT_SECRET,
        username: str = credentials.SALESFORCE_USERNAME,
        jwt_public_key: bytes | None = None,
    ):
        self.credentials = oauth.Credentials(client_id, client_secret, username, jwt_public_key)
        self.base_url = "http://127.0.0.1"
        self.api = RestApi(self)
        super().__init__(contacts=contacts, seed=seed, realistic=realistic)

    # -- state ---------------------------------------------------------------------------------------
    def default_behaviour(self) -> SalesforceBehaviour:
        if self.realistic:
            return SalesforceBehaviour()
        return SalesforceBehaviour(
            daily_api_limit=1_000_000_000, token_ttl_seconds=10 * DAY_SECONDS, min_query_batch_size=1
        )

    def reset_data(self) -> None:
        self.store = Store(self.seed)
        self.loaded_at = now_s()
        self.store.seed(self.contacts, self.seed, self.loaded_at)
        self.tokens = oauth.TokenBook(self.seed)
        self.usage = DailyUsage()
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()
        self.cursor_serial = 0
        self.lock_attempts: Counter[str] = Counter()
        self.request_serials: Counter[tuple[str, str]] = Counter()
        self.last_stamp = self.loaded_at
        self.in_flight: list[tuple[float, SObjectSpec, str, dict[str, Any], datetime]] = []

    def on_behaviour_changed(self) -> None:
        if self.behaviour.expire_tokens:
            self.tokens.expire_all()
            self.behaviour.expire_tokens = False

    def seed_records(self, records: list[dict[str, Any]]) -> list[str]:
        return self.api.seed(records)

    def stamp(self) -> datetime:
        """A write time, to the second, that never goes backwards; one call's records share it."""
        self.last_stamp = max(now_s(), self.last_stamp)
        return self.last_stamp

    def committer(self) -> Commit:
        """How this call's updates are written: at once, or held as a long transaction's (behaviour)."""
        stamp, delay = self.stamp(), self.behaviour.long_transaction_seconds

        def commit(spec: SObjectSpec, record_id: str, changes: dict[str, Any]) -> None:
            if delay <= 0:
                writes.apply(self.store, spec, record_id, changes, stamp, INTEGRATION_USER_ID)
            else:
                self.in_flight.append((time.monotonic() + delay, spec, record_id, changes, stamp))

        return commit

    def settle_in_flight(self) -> None:
        """Commit the held updates whose transaction has ended, with the stamp they were given."""
        now = time.monotonic()
        due = [entry for entry in self.in_flight if entry[0] <= now]
        self.in_flight = [entry for entry in self.in_flight if entry[0] > now]
        for _, spec, record_id, changes, stamp in due:
            writes.apply(self.store, spec, record_id, changes, stamp, INTEGRATION_USER_ID)

    def locked(self, record_id: str) -> bool:
        self.lock_attempts[record_id] += 1
        return happens(
            self.behaviour.lock_row_share, self.seed, "lock", record_id, self.lock_attempts[record_id]
        )

    def open_cursor(self, cursor: Cursor) -> str:
        self.cursor_serial += 1
        locator = f"01g{self.seed % 10_000:04d}{self.cursor_serial:011d}"
        self.cursors[locator] = cursor
        while len(self.cursors) > MAX_OPEN_CURSORS:
            self.cursors.popitem(last=False)
        return locator

    @property
    def instance_url(self) -> str:
        return self.behaviour.instance_url or self.base_url

    def limit_header(self) -> dict[str, str]:
        # simple-salesforce parses with re.match, so api-usage must come first (docs/salesforce.md#limits).
        return {"Sforce-Limit-Info": f"api-usage={self.usage.used()}/{self.behaviour.daily_api_limit}"}

    # -- pipeline ------------------------------------------------------------------------------------
    def rest(self, handler: ApiHandler, *, counted: bool = True) -> Callable[[Request], Awaitable[Response]]:
        """Latency, version, token, daily limit and injected faults, in that order, around one handler."""

        async def endpoint(request: Request) -> Response:
            if self.behaviour.latency_ms:
                await asyncio.sleep(self.behaviour.latency_ms / 1000)
            version = request.path_params.get("version", "")
            try:
                match = _VERSION.fullmatch(version)
                if not match or not MIN_VERSION <= int(match.group(1)) <= MAX_VERSION:
                    raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
                if not self.tokens.valid(_bearer(request.headers)):
                    raise invalid_session()
                self.settle_in_flight()
                self._concurrency_refusal()
                if counted and not self.usage.hit(self.behaviour.daily_api_limit):
                    raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", DAILY_CAP)
                key = (request.method, str(request.url.path) + "?" + str(request.url.query))
                self.request_serials[key] += 1
                if happens(
                    self.behaviour.server_error_share, self.seed, "503", *key, self.request_serials[key]
                ):
                    raise SalesforceError(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
                response = await handler(request, Context(version))
                response = (
                    html_in_place(self.behaviour.html_answers, request)
                    or garbled_in_place(self.behaviour.garbled_answers, request)
                    or response
                )
            except SalesforceError as error:
                response = error_response(error)
                if error.status == 401:
                    response.headers["WWW-Authenticate"] = "Token"
            response.headers.update(self.limit_header())
            return response

        return endpoint

    def _concurrency_refusal(self) -> None:
        behaviour = self.behaviour
        for knob, message in (
            ("concurrent_request_refusals", CONCURRENT_REQUESTS),
            ("long_transaction_refusals", CONCURRENT_LONG_TXN),
        ):
            left = getattr(behaviour, knob)
            if left > 0:
                setattr(behaviour, knob, left - 1)
                raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", message)

    async def token(self, request: Request) -> Response:
        if self.behaviour.latency_ms:
            await asyncio.sleep(self.behaviour.latency_ms / 1000)
        form = oauth.parse_form(await request.body())
        try:
            app = oauth.authenticate(
                form,
                request.headers.get("authorization"),
                oauth.connected_apps(self.credentials, self.behaviour.more_connected_apps),
                self.behaviour.experience_cloud_sites,
            )
        except oauth.OAuthFailure as failure:
            return oauth_error(failure.error, failure.description, failure.status)
        access_token = self.tokens.issue(self.behaviour.token_ttl_seconds, app.client_id)
        body = oauth.token_body(access_token, self.instance_url, self.tokens.org_id, app.client_secret)
        return json_response(body)

    def instance_of(self, headers: Headers) -> str | None:
        """A token changes with each login; the connected app it was issued to names the instance."""
        return self.tokens.app_of(_bearer(headers))

    async def resources(self, request: Request, context: Context) -> Response:
        """`GET /services/data/vNN.0`: the version's resource directory, where clients discover the rest."""
        base = f"/services/data/{context.version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite", "search", "tooling", "recent")
        return json_response({name: f"{base}/{name}" for name in names})

    def admin_routes(self) -> list[BaseRoute]:
        async def fields(request: Request) -> Response:
            """Setup's New Custom Field, for an admin in a test: `{"sobject", "fields": [CustomField]}`."""
            body = await request.json()
            try:
                name, raw = str(body["sobject"]), body["fields"]
                created = self.store.add_fields(name, custom_fields(raw))
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                return json_response({"error": f"Setup refused the fields: {exc}"}, status=400)
            return json_response({"sobject": name, "created": created})

        return [*super().admin_routes(), Route("/__sandbox/fields", fields, methods=["POST"])]

    async def versions(self, request: Request) -> Response:
        seasons = ("Winter", "Spring", "Summer")  # v59.0 was Winter '24; three releases a year
        return json_response(
            [
                {
                    "label": f"{seasons[(number - 59) % 3]} '{24 + (number - 59) // 3}",
                    "url": f"/services/data/v{number}.0",
                    "version": f"{number}.0",
                }
                for number in range(MIN_VERSION, MAX_VERSION + 1)
            ]
        )

    def api_routes(self) -> list[BaseRoute]:
        api = self.api
        data = "/services/data/{version}"
        routes = [
            Route("/services/oauth2/token", self.token, methods=["POST"]),
            Route("/services/data", self.versions, methods=["GET"]),
            Route(f"{data}", self.rest(self.resources), methods=["GET"]),
            Route(f"{data}/limits", self.rest(api.limits), methods=["GET"]),
            Route(f"{data}/query", self.rest(api.query), methods=["GET"]),
            Route(f"{data}/queryAll", self.rest(api.query_all), methods=["GET"]),
            Route(f"{data}/query/{{locator}}", self.rest(api.query_more), methods=["GET"]),
            Route(f"{data}/queryAll/{{locator}}", self.rest(api.query_more), methods=["GET"]),
            Route(f"{data}/sobjects", self.rest(api.describe_global), methods=["GET"]),
            Route(f"{data}/sobjects/{{sobject}}/describe", self.rest(api.describe), methods=["GET"]),
            Route(f"{data}/sobjects/{{sobject}}/updated", self.rest(api.updated), methods=["GET"]),
            Route(f"{data}/sobjects/{{sobject}}/deleted", self.rest(api.deleted), methods=["GET"]),
            Route(f"{data}/sobjects/{{sobject}}", self.rest(api.sobject_root), methods=["GET", "POST"]),
            Route(
                f"{data}/sobjects/{{sobject}}/{{record_id}}",
                self.rest(api.record),
                methods=["GET", "PATCH", "DELETE"],
            ),
            Route(f"{data}/composite/sobjects", self.rest(api.update_collection), methods=["PATCH"]),
            Route(f"{data}/composite/sobjects", self.rest(CollectionCreate(self)), methods=["POST"]),
            Route(f"{data}/composite/sobjects/{{sobject}}", self.rest(api.retrieve), methods=["GET", "POST"]),
        ]

        async def elsewhere(request: Request, context: Context) -> Response:
            """Any other resource, whatever the method, is NOT_FOUND; one of the above with a method it does not
            take is METHOD_NOT_ALLOWED, as Salesforce answers ("Allowed are HEAD,GET")."""
            path = request.url.path
            allowed = sorted({m for r in routes if r.path_regex.match(path) for m in r.methods or ()})
            if allowed:
                listing = ",".join(allowed)
                raise SalesforceError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"HTTP Method '{request.method}' not allowed. Allowed are {listing}",
                )
            return await api.not_found(request, context)

        every_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]  # a function endpoint takes GET only
        fallback = self.rest(elsewhere, counted=False)
        return [
            *routes,
            Route(f"{data}/{{rest:path}}", fallback, methods=every_method),
            Route("/services/data/{rest:path}", fallback, methods=every_method),  # no version: NOT_FOUND
        ]

    def asgi_app(self) -> ASGIApp:
        app = Starlette(
            routes=[*self.admin_routes(), *self.api_routes()],
            exception_handlers={HTTPException: _http_exception},  # type: ignore[dict-item]
        )
        return StatsMiddleware(_StripTrailingSlash(app), self.stats, self.instance_of)


def _bearer(headers: Headers) -> str:
    header = headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "oauth") else ""


async def _http_exception(request: Request, exc: HTTPException) -> Response:
    """Starlette's own 404/405 answers, in Salesforce's list shape so the library can read them."""
    if exc.status_code == 405:
        allowed = exc.headers.get("Allow", "") if exc.headers else ""
        error = SalesforceError(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
        )
    else:
        error = SalesforceError(exc.status_code, "NOT_FOUND", "The requested resource does not exist")
    return error_response(error)


class _StripTrailingSlash:
    """`query/` and `query` are one resource (simple-salesforce adds the slash), so stats see one template.

    The scope is changed in place: StatsMiddleware reads the matched route from the same dict.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope["path"] = scope["path"].rstrip("/") or "/"
            raw: bytes | None = scope.get("raw_path")
            if raw:
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)
