"""The LoneScale API emulator: routes, auth, limits, credits and the admin routes tests inspect it with."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.sandbox import credentials
from connector.sandbox.kit import (
    ADMIN_PREFIX,
    Emulator,
    RollingWindow,
    StatsMiddleware,
    happens,
    json_response,
)
from connector.sandbox.lonescale.behaviour import LoneScaleBehaviour, TriggerFault, relaxed_behaviour
from connector.sandbox.lonescale.delivery import Deliverer, DeliveryLog, deliver, run_job
from connector.sandbox.lonescale.jobs import Account, Job, JobBook, Preset
from connector.sandbox.lonescale.schema import RequestRejected, parse_json, validate_enrichment_request

REJECTIONS_KEPT = 200
SANDBOX_USER = {
    "id": "usr_sandbox_0001",
    "firstName": "Sandbox",
    "lastName": "User",
    "email": "sandbox@lonescale-sync.test",
}


def error_body(status: int, message: str, error: str) -> Response:
    """NestJS's HttpException shape, which every documented LoneScale error uses
    (docs/lonescale.md#error-bodies)."""
    return json_response({"message": message, "error": error, "statusCode": status}, status)


# What a gateway answers when its upstream is too slow (nginx's default page): HTML, not JSON.
GATEWAY_TIMEOUT_PAGE = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)

ERRORS = {
    400: ("Bad request", "Bad request"),
    401: ("Invalid API Key", "Unauthorized"),
    403: ("User has no enrichment credits", "Forbidden"),
    413: ("request entity too large", "Payload Too Large"),
    429: ("ThrottlerException: Too Many Requests", "Too Many Requests"),
}


class ConnectionReset(Response):
    """No answer at all: the connection is reset (TCP RST) once the request was read. ASGI has no message
    for that, so this reaches the transport of the uvicorn h11 cycle that owns `receive`; SO_LINGER 0 makes
    the close a reset rather than an orderly FIN. Nothing is sent, so stats count the call as a 500."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
        if transport is None:
            raise RuntimeError("the reset fault needs uvicorn's h11 server (ServedApp)")
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        transport.abort()
        await receive()  # uvicorn's http.disconnect, once the loop has closed the socket


@dataclass
class State:
    """Everything a reset throws away; background tasks keep a reference to the state they started in."""

    book: JobBook
    account: Account
    log: DeliveryLog = field(default_factory=DeliveryLog)
    rejections: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=REJECTIONS_KEPT))
    presets: dict[str, Preset] = field(default_factory=dict)


class LoneScaleEmulator(Emulator):
    """`POST /trigger/enrich` → webhook deliveries, `GET /trigger/run/{id}` polling, `GET /users` credits."""

    behaviour_model = LoneScaleBehaviour
    behaviour: LoneScaleBehaviour

    def __init__(
        self,
        *,
        seed: int = 1,
        realistic: bool = True,
        api_key: str = credentials.LONESCALE_API_KEY,
        contacts: int = 0,
    ):
        self.api_key = api_key
        self.deliverer = Deliverer()
        self.limiter: RollingWindow | None = None
        super().__init__(contacts=contacts, seed=seed, realistic=realistic)
        self.on_behaviour_changed()

    # -- Emulator hooks ----------------------------------------------------------------------------
    def default_behaviour(self) -> LoneScaleBehaviour:
        return LoneScaleBehaviour() if self.realistic else relaxed_behaviour()

    def reset_data(self) -> None:
        self.deliverer.cancel_all()
        self.state = State(
            JobBook(self.seed),
            Account(self.behaviour.enrichment_credits, self.behaviour.contact_credits),
        )
        self._credits_applied = (self.behaviour.enrichment_credits, self.behaviour.contact_credits)
        if self.limiter is not None:
            self.limiter.clear()

    def on_behaviour_changed(self) -> None:
        limit = self.behaviour.rate_limit_per_minute
        if limit is None:
            self.limiter = None
        elif self.limiter is None or self.limiter.limit != limit:
            self.limiter = RollingWindow(limit, 60.0)
        credits = (self.behaviour.enrichment_credits, self.behaviour.contact_credits)
        if getattr(self, "state", None) is not None and credits != self._credits_applied:
            # Setting a credit knob sets the balance, so a test can start a job on an almost empty account.
            self.state.account.enrichment_credits, self.state.account.contact_credits = credits
            self._credits_applied = credits

    def seed_records(self, records: list[dict[str, Any]]) -> list[str]:
        """Known people: `{"match": {contact keys}, "found": bool, "missing": [types], "fields": {camelCase}}`."""
        parsed = [Preset.from_record(record) for record in records]  # all valid, or none stored
        self.state.presets.update(parsed)
        return [identity for identity, _ in parsed]

    # -- API ---------------------------------------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        return [
            Route("/trigger/enrich", self.enrich, methods=["POST"]),
            Route("/trigger/run/{id}", self.run_status, methods=["GET"]),
            Route("/users", self.users, methods=["GET"]),
        ]

    async def enrich(self, request: Request) -> Response:
        raw = await request.body()
        state, behaviour = self.state, self.behaviour
        refused = self._guard(request)
        if refused is not None:
            return refused
        if behaviour.max_body_bytes is not None and len(raw) > behaviour.max_body_bytes:
            return self._reject(request, 413, f"body of {len(raw)} bytes exceeds {behaviour.max_body_bytes}")
        try:
            body = validate_enrichment_request(parse_json(raw, request.headers.get("content-type")))
        except RequestRejected as exc:
            return self._reject(request, 400, str(exc))
        if behaviour.refuse_all_with is not None:
            self._note(request, 400, f"refuse_all_with: {behaviour.refuse_all_with}")
            refusal = {"message": [behaviour.refuse_all_with], "error": "Bad Request", "statusCode": 400}
            return json_response(refusal, 400)
        limit = behaviour.max_contacts_per_request
        if limit is not None and len(body["contacts"]) > limit:
            return self._reject(request, 400, f"{len(body['contacts'])} contacts exceed the limit of {limit}")
        if state.account.enrichment_credits <= 0:
            return self._reject(request, 403, "no enrichment credits left")
        job = state.book.accept(body, behaviour)
        self.deliverer.spawn(self._run(job, state))
        if behaviour.trigger_answer_seconds:
            await asyncio.sleep(behaviour.trigger_answer_seconds)
        fault, taken = behaviour.trigger_fault, len(state.book.jobs)
        if (
            fault != "none"
            and taken >= behaviour.trigger_fault_from
            and happens(behaviour.trigger_fault_share, self.seed, "trigger_fault", job.id)
        ):
            return self._lost_answer(job, fault)
        if behaviour.start_response == "string":
            return json_response(f"Enrichment started for {len(job.contacts)} contacts")
        return json_response({"id": job.id, "status": "processing"})

    @staticmethod
    def _lost_answer(job: Job, fault: TriggerFault) -> Response:
        """The job is accepted and will run, be billed and call its webhook; only its answer goes wrong."""
        job.fault = fault
        if fault == "gateway_timeout":
            return Response(GATEWAY_TIMEOUT_PAGE, status_code=504, media_type="text/html")
        if fault == "no_id":
            return json_response({"status": "processing"})
        return ConnectionReset()

    async def run_status(self, request: Request) -> Response:
        state, behaviour = self.state, self.behaviour
        run_id = request.path_params["id"]
        barred = behaviour.run_route != "served" and happens(
            behaviour.run_route_share, self.seed, "run_route", run_id
        )
        if barred and behaviour.run_route == "not_found":  # no route: Express answers before any guard
            self._note(request, 404, "run_route=not_found")
            return error_body(404, f"Cannot GET {request.url.path}", "Not Found")
        refused = self._guard(request)
        if refused is not None:
            return refused
        if barred:  # a NestJS guard's refusal, after the API key was accepted
            self._note(request, 403, "run_route=forbidden")
            return error_body(403, "Forbidden resource", "Forbidden")
        job = state.book.jobs.get(run_id)
        if job is None:
            self._note(request, 404, "unknown run id")
            return error_body(404, "Run not found", "Not Found")
        if not state.book.complete_if_due(job, state.account, state.presets):
            return json_response({"status": "processing"})
        return json_response({"status": "finished", "contacts": job.items})

    async def users(self, request: Request) -> Response:
        refused = self._guard(request)
        if refused is not None:
            return refused
        account = self.state.account
        plan = {"contactCredits": account.contact_credits, "enrichmentCredits": account.enrichment_credits}
        # An array, as documented (docs/lonescale.md#credits).
        return json_response([{**SANDBOX_USER, "plan": plan}])

    async def _run(self, job: Job, state: State) -> None:
        def finish() -> bool:
            return state.book.complete_if_due(job, state.account, state.presets)

        await run_job(job, self.seed, finish, state.log, self.deliverer.client(), self.deliverer.spawn)

    def _guard(self, request: Request) -> Response | None:
        """Auth, then the rate limit; both before the body is looked at, as NestJS guards run before pipes."""
        if request.headers.get("x-api-key") != self.api_key:
            return self._reject(request, 401, "missing or wrong x-api-key")
        if self.limiter is not None and not self.limiter.hit():
            response = self._reject(request, 429, f"more than {self.limiter.limit} requests in 60 s")
            if self.behaviour.retry_after_header:
                response.headers["retry-after"] = str(max(1, math.ceil(self.limiter.seconds_until_free())))
            return response
        return None

    def _reject(self, request: Request, status: int, reason: str) -> Response:
        self._note(request, status, reason)
        message, error = ERRORS[status]
        return error_body(status, message, error)

    def _note(self, request: Request, status: int, reason: str) -> None:
        self.state.rejections.append(
            {
                "method": request.method,
                "path": request.url.path,
                "status": status,
                "reason": reason,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "monotonic": time.monotonic(),
            }
        )

    # -- admin -------------------------------------------------------------------------------------
    def admin_routes(self) -> list[BaseRoute]:
        async def rejections(request: Request) -> Response:
            return json_response({"rejections": list(self.state.rejections)})

        async def deliveries(request: Request) -> Response:
            log = self.state.log.for_job(request.query_params.get("job_id"))
            return json_response({"deliveries": log, "pending_tasks": self.deliverer.pending})

        async def jobs(request: Request) -> Response:
            account = self.state.account
            return json_response(
                {
                    "jobs": [job.summary() for job in self.state.book.jobs.values()],
                    "enrichment_credits": account.enrichment_credits,
                    "credits_spent": account.spent,
                }
            )

        async def deliver_late(request: Request) -> Response:
            # A finished job's webhooks sent (again) now, whatever its delivery knobs said: LoneScale's queue
            # catching up hours later, after the connector gave the job up.
            body = await request.json()
            state = self.state
            job = state.book.jobs.get(str(body.get("job_id")))
            if job is None:
                return json_response({"error": "no such job"}, 404)
            if not state.book.complete_if_due(job, state.account, state.presets):
                return json_response({"error": "the job has not finished yet"}, 409)
            self.deliverer.spawn(
                deliver(job, self.seed, state.log, self.deliverer.client(), self.deliverer.spawn)
            )
            return json_response({"job_id": job.id})

        async def set_credits(request: Request) -> Response:
            # Unlike the behaviour knobs (initial values), this sets the balance even to the same number.
            body = await request.json()
            account = self.state.account
            account.enrichment_credits = int(body.get("enrichment_credits", account.enrichment_credits))
            account.contact_credits = int(body.get("contact_credits", account.contact_credits))
            return json_response({"enrichment_credits": account.enrichment_credits})

        return [
            *super().admin_routes(),
            Route(f"{ADMIN_PREFIX}/credits", set_credits, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/rejections", rejections, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/deliveries", deliveries, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/jobs", jobs, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/deliver", deliver_late, methods=["POST"]),
        ]

    def asgi_app(self) -> ASGIApp:
        async def nest_http_error(request: Request, exc: Exception) -> Response:
            # Express/NestJS answer unknown routes with `Cannot GET /path` in the usual error body.
            # A known path with another method is also "Cannot GET" there: Express routes by method and path.
            assert isinstance(exc, HTTPException)
            if exc.status_code in (404, 405):
                return error_body(404, f"Cannot {request.method} {request.url.path}", "Not Found")
            return error_body(exc.status_code, str(exc.detail), str(exc.detail))

        app = Starlette(
            routes=[*self.admin_routes(), *self.api_routes()],
            exception_handlers={HTTPException: nest_http_error},
        )
        return StatsMiddleware(app, self.stats)
