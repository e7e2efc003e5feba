"""The HubSpot CRM v3 emulator: routes, bearer auth, rate limits and faults around every API call."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from connector.sandbox import credentials
from connector.sandbox.hubspot.associations import Associations
from connector.sandbox.hubspot.errors import AUTH_MESSAGE, CorrelationIds, HubSpotError, render
from connector.sandbox.hubspot.limits import PORTAL_ID, HubSpotBehaviour, RateLimits, relaxed
from connector.sandbox.hubspot.notes import NOTE_ID_START, NoteLinks, NoteRoutes, note_properties
from connector.sandbox.hubspot.objects import Endpoint, ObjectRoutes
from connector.sandbox.hubspot.properties import PropertyRoutes
from connector.sandbox.hubspot.schema import standard_properties
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
)

__all__ = ["HubSpotBehaviour", "HubSpotEmulator"]


class HubSpotEmulator(Emulator):
    """Contacts and companies of one portal, served as HubSpot's CRM v3 API (reference §5 checklist)."""

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
        props = PropertyRoutes(self.stores)
        table += [
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
            message = (
                "resource not found" if status == 404 else f"Method {request.method} is not allowed here"
            )
            return render(HubSpotError(status, message), self.correlation.next())

        app = Starlette(
            routes=[*self.admin_routes(), *self.api_routes()],
            exception_handlers={404: unknown, 405: unknown},
        )
        return StatsMiddleware(app, self.stats)

    def _guarded(self, handler: Endpoint, search: bool) -> Endpoint:
        """Auth, then limits (a 401 or 429 consumes nothing), then latency and faults, then the handler."""

        async def endpoint(request: Request) -> Response:
            self.requests_seen += 1
            number = self.requests_seen
            if request.headers.get("authorization") != f"Bearer {self.token}":
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
