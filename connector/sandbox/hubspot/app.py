"""The HubSpot CRM v3 emulator: routes, bearer auth, rate limits and faults around every API call."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.sandbox import credentials
from connector.sandbox.hubspot.associations import Associations
from connector.sandbox.hubspot.catalog import object_type, unstored_properties
from connector.sandbox.hubspot.errors import (
    AUTH_MESSAGE,
    CorrelationIds,
    HubSpotError,
    missing_scopes,
    not_found,
    render,
)
from connector.sandbox.hubspot.limits import PORTAL_ID, HubSpotBehaviour, RateLimits, relaxed
from connector.sandbox.hubspot.notes import NOTE_ID_START, NoteLinks, NoteRoutes, note_properties
from connector.sandbox.hubspot.objects import Endpoint, ObjectRoutes
from connector.sandbox.hubspot.properties import PropertyRoutes
from connector.sandbox.hubspot.schema import PropertyDef, standard_properties
from connector.sandbox.hubspot.seed import from_test, reset_moment, seeded
from connector.sandbox.hubspot.store import ObjectStore
from connector.sandbox.hubspot.times import to_ms
from connector.sandbox.kit import (
    Behaviour,
    Emulator,
    StatsMiddleware,
    chance,
    garbled_in_place,
    happens,
    html_in_place,
    json_response,
)

__all__ = ["HubSpotBehaviour", "HubSpotEmulator"]


class HubSpotEmulator(Emulator):
    """Contacts and companies of one portal, served as HubSpot's CRM v3 API (docs/hubspot.md)."""

    behaviour_model = HubSpotBehaviour

    def __init__(
        self,
        *,
        contacts: int = 200,
        seed: int = 1,
        realistic: bool = True,
        token: str = credentials.HUBSPOT_TOKEN,
    ):
        self.token = token
        self.portal_id = PORTAL_ID
        self.limits = RateLimits()
        self.correlation = CorrelationIds(seed)
        self.requests_seen = 0
        self.contacts_store = ObjectStore("contacts", {}, unique_property="email")
        self.companies_store = ObjectStore("companies", {})
        self.stores = {"contacts": self.contacts_store, "companies": self.companies_store}
        self.associations = Associations(self.contacts_store, self.companies_store)
        # Notes are served beside `stores`, not in it: the properties API and test seeding stay as they were.
        self.notes_store = ObjectStore("notes", {})
        self.note_links = NoteLinks()
        # Property definitions of the standard types kept without records (deals, tickets, calls, …).
        self.unstored_schemas: dict[str, dict[str, PropertyDef]] = {}
        super().__init__(contacts=contacts, seed=seed, realistic=realistic)
        self.on_behaviour_changed()

    # -- the Emulator contract --------------------------------------------------------------------
    def default_behaviour(self) -> Behaviour:
        return HubSpotBehaviour() if self.realistic else relaxed()

    @property
    def settings(self) -> HubSpotBehaviour:
        assert isinstance(self.behaviour, HubSpotBehaviour)
        return self.behaviour

    def on_behaviour_changed(self) -> None:
        self.limits.configure(self.settings)
        for store in (*self.stores.values(), self.notes_store):
            store.delay_ms = self.settings.search_visibility_delay_ms

    def reset_data(self) -> None:
        now = reset_moment()
        contacts, companies = seeded(self.contacts, self.seed, now)
        for store, records in ((self.contacts_store, contacts), (self.companies_store, companies)):
            store.schema.clear()
            store.schema.update(standard_properties(store.object_type, to_ms(now) - 5 * 365 * 86_400_000))
            store.load(records)
        self.notes_store.schema.clear()
        self.notes_store.schema.update(note_properties(to_ms(now) - 5 * 365 * 86_400_000))
        for name, definitions in unstored_properties(to_ms(now) - 5 * 365 * 86_400_000).items():
            self.unstored_schemas.setdefault(name, {}).clear()
            self.unstored_schemas[name].update(definitions)
        self.notes_store.load([])
        self.notes_store.next_id = NOTE_ID_START
        self.note_links.clear()
        self.correlation = CorrelationIds(self.seed)
        self.requests_seen = 0
        self.limits.reset()

    def seed_records(self, records: list[dict[str, Any]]) -> list[str]:
        ids = []
        for item in records:
            store = self.stores[str(item.get("objectType", "contacts"))]
            record = from_test(store, item, store.write_ms())
            store.put(record)
            ids.append(str(record.id))
        return ids

    # -- routing ----------------------------------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        table: list[tuple[str, str, Endpoint, bool]] = []
        for store in self.stores.values():
            table += ObjectRoutes(store, self.associations, self.portal_id, lambda: self.settings).handlers()
        table += NoteRoutes(
            self.notes_store, self.contacts_store, self.note_links, self.associations, self.portal_id
        ).handlers()
        schemas = {
            **{name: store.schema for name, store in self.stores.items()},
            "notes": self.notes_store.schema,
            **self.unstored_schemas,
        }
        props = PropertyRoutes(schemas, lambda: self.settings.token_scopes)
        table += [
            ("GET", "/crm/v3/schemas", self.custom_schemas, False),
            ("GET", "/crm-object-schemas/v3/schemas", self.custom_schemas, False),
            ("GET", "/properties/v2/{objectType}/properties", props.legacy_list, False),
            ("GET", "/companies/v2/properties", props.legacy_companies, False),
            ("GET", "/crm/v3/properties/{objectType}", props.get_all, False),
            ("POST", "/crm/v3/properties/{objectType}", props.create, False),
            ("GET", "/crm/v3/properties/{objectType}/{propertyName}", props.get_by_name, False),
            ("PATCH", "/crm/v3/properties/{objectType}/{propertyName}", props.update, False),
            ("DELETE", "/crm/v3/properties/{objectType}/{propertyName}", props.archive, False),
            (
                "POST",
                "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read",
                self.associations.v4_batch_read,
                False,
            ),
        ]
        return [
            Route(path, self._guarded(handler, search), methods=[method])
            for method, path, handler, search in table
        ]

    def asgi_app(self) -> ASGIApp:
        async def unknown(request: Request, exc: Exception) -> Response:
            status = getattr(exc, "status_code", 404)
            if status == 404:
                return render(not_found(), self.correlation.next())
            message = f"Method {request.method} is not allowed here"
            return render(HubSpotError(status, message, "VALIDATION_ERROR"), self.correlation.next())

        app = Starlette(
            routes=[*self.admin_routes(), *self.api_routes()],
            exception_handlers={404: unknown, 405: unknown},
        )
        return StatsMiddleware(_PluralTypeNames(app), self.stats, self.instance_of)

    def instance_of(self, headers: Headers) -> str | None:
        """The bearer token names the instance: by a digest, as the stats must not show a secret."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return token_key(token.strip()) if scheme.lower() == "bearer" and token.strip() else None

    async def custom_schemas(self, request: Request) -> Response:
        """`GET /crm/v3/schemas`: the portal's custom object types; this portal has none (custom objects are
        an Enterprise feature). Needs a custom-schema scope, as the spec's security lists."""
        needed = ("crm.schemas.custom.read", "crm.objects.custom.read")
        if not set(self.settings.token_scopes) & set(needed):
            raise missing_scopes(needed)
        return json_response({"results": []})

    def _guarded(self, handler: Endpoint, search: bool) -> Endpoint:
        """Auth, then limits (a 401 or 429 consumes nothing), then latency and faults, then the handler."""

        async def endpoint(request: Request) -> Response:
            self.requests_seen += 1
            number = self.requests_seen
            accepted = {f"Bearer {token}" for token in (self.token, *self.settings.more_tokens)}
            if request.headers.get("authorization") not in accepted:
                error = HubSpotError(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")
                return render(error, self.correlation.next())
            refusal = self.limits.admit(search=search, correlation_id=self.correlation.next)
            if refusal is not None:
                return refusal
            headers = {} if search else self.limits.headers()
            settings = self.settings
            if settings.latency_ms:
                await asyncio.sleep(settings.latency_ms / 1000)
            correlation_id = self.correlation.next()
            if happens(settings.server_error_share, self.seed, "server-error", number):
                statuses = settings.server_error_statuses or [502]
                status = statuses[int(chance(self.seed, "server-error-status", number) * len(statuses))]
                return render(HubSpotError(status, "internal error"), correlation_id, headers)
            try:
                response = await handler(request)
            except HubSpotError as error:
                return render(error, correlation_id, headers)
            broken = html_in_place(settings.html_answers, request)
            response = broken or garbled_in_place(settings.garbled_answers, request) or response
            response.headers.update({**headers, "X-HubSpot-Correlation-Id": correlation_id})
            return response

        return endpoint


def token_key(token: str) -> str:
    """How the call statistics name the instance a token belongs to: a digest, never the token."""
    return "token-" + hashlib.blake2b(token.encode(), digest_size=6).hexdigest()


# Where a path names object types: /crm/v3/objects/T…, /crm/v4/objects/T/{id}/associations/T,
# /crm/v4/associations/T/T/…
TYPE_PLACES = {("v3", "objects"): (4,), ("v4", "objects"): (4, 7), ("v4", "associations"): (4, 5)}


class _PluralTypeNames:
    """Clients name object types by plural, singular or id (`contacts`, `contact`, `0-1`) on the objects,
    search and associations routes; each is served as its plural, the name the routes are registered under.
    The scope is changed in place, so the call statistics see the route template it matched."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/crm/"):
            parts = scope["path"].split("/")
            for index in TYPE_PLACES.get((parts[2], parts[3]) if len(parts) > 4 else ("", ""), ()):
                kind = object_type(parts[index]) if index < len(parts) else None
                if kind is not None:
                    parts[index] = kind.name
            path = "/".join(parts)
            if path != scope["path"]:
                scope["path"], scope["raw_path"] = path, path.encode()
        await self.app(scope, receive, send)
