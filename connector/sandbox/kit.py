"""What every emulator shares: a real HTTP server per app, call statistics, admin routes, deterministic chance."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.sandbox.holders import Holders
from connector.serving import ThreadedServer

ADMIN_PREFIX = "/__sandbox"


# --------------------------------------------------------------------------- deterministic chance


def chance(seed: int, *parts: object) -> float:
    """A number in [0, 1) fixed by the seed and the parts, so failure shares repeat run after run."""
    key = json.dumps([seed, *[str(p) for p in parts]]).encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def happens(share: float, seed: int, *parts: object) -> bool:
    """True for about `share` of the distinct `parts`, always the same ones for a given seed."""
    return share > 0 and chance(seed, *parts) < share


# --------------------------------------------------------------------------- rate limits


class RollingWindow:
    """A rolling-window request counter, as HubSpot's TEN_SECONDLY_ROLLING and search limits behave."""

    def __init__(self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._hits: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._hits and self._hits[0] <= now - self.window_seconds:
            self._hits.popleft()

    def hit(self) -> bool:
        """Count one request; False when the window is already full (the request is then not counted)."""
        now = self._clock()
        self._expire(now)
        if len(self._hits) >= self.limit:
            return False
        self._hits.append(now)
        return True

    def remaining(self) -> int:
        self._expire(self._clock())
        return max(0, self.limit - len(self._hits))

    def seconds_until_free(self) -> float:
        now = self._clock()
        self._expire(now)
        if len(self._hits) < self.limit:
            return 0.0
        return max(0.0, self._hits[0] + self.window_seconds - now)

    def clear(self) -> None:
        self._hits.clear()


# --------------------------------------------------------------------------- call statistics


@dataclass(frozen=True)
class Overlap:
    """A call that began while another was still being answered: two clients of one org or portal at once."""

    running: str  # "PATCH /services/data/v59.0/composite/sobjects" — the call already in flight
    started: str  # the call that began beside it
    at: float  # seconds since the emulator started


@dataclass
class CallStats:
    """Calls counted by (method, route template, status): what benchmarks and tests compare against minimums.

    It also watches calls in flight: `overlaps` are any two calls at once on the emulator (one process
    pipelines two batch calls of an instance); `holders` keys them by instance and holding process, where two
    processes at once on one instance break the cluster's promise (holders.py)."""

    counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: dict[int, str] = field(default_factory=dict)  # call number → "METHOD /path"
    overlaps: list[Overlap] = field(default_factory=list)
    most_in_flight: int = 0
    holders: Holders = field(default_factory=Holders)
    _calls: int = 0
    _started: float = field(default_factory=time.monotonic)

    def begin(self, call: str, instance: str | None = None, holder: str = "") -> int:
        """`instance`: the emulator's key of the CRM instance the call's credentials name (None: none);
        `holder`: who makes the call, its User-Agent."""
        with self.lock:
            self._calls += 1
            at = round(time.monotonic() - self._started, 4)
            if self.in_flight:
                running = next(iter(self.in_flight.values()))
                self.overlaps.append(Overlap(running, call, at))
            self.holders.begin(self._calls, call, instance, holder, at)
            self.in_flight[self._calls] = call
            self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
            return self._calls

    def end(self, number: int) -> None:
        with self.lock:
            self.in_flight.pop(number, None)
            self.holders.end(number)

    def record(self, method: str, route: str, status: int) -> None:
        with self.lock:
            self.counts[(method, route, status)] += 1

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            items = sorted(self.counts.items())
        return [
            {"method": method, "route": route, "status": status, "count": count}
            for (method, route, status), count in items
        ]

    def concurrency(self) -> dict[str, Any]:
        with self.lock:
            return {
                "in_flight": len(self.in_flight),
                "most_in_flight": self.most_in_flight,
                "overlaps": [vars(o) for o in self.overlaps[:100]],
                "overlap_count": len(self.overlaps),
                **self.holders.report(),
            }

    def clear(self) -> None:
        with self.lock:
            self.counts.clear()
            self.overlaps.clear()
            self.holders.clear()
            self.most_in_flight = len(self.in_flight)


InstanceOf = Callable[[Headers], str | None]


def no_instance(headers: Headers) -> str | None:
    return None


class StatsMiddleware:
    """Counts every API call by the real API's path template; admin routes are not counted. `instance_of`
    reads which CRM instance a call's credentials name, for the per-instance watch of calls in flight."""

    def __init__(self, app: ASGIApp, stats: CallStats, instance_of: InstanceOf = no_instance):
        self.app = app
        self.stats = stats
        self.instance_of = instance_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        status = 500
        headers = Headers(scope=scope)
        call = f"{scope['method']} {scope['path']}"
        number = self.stats.begin(call, self.instance_of(headers), headers.get("user-agent", ""))

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self.stats.end(number)  # answered: the client may send its next call now
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.stats.end(number)
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            self.stats.record(scope["method"], template, status)


# --------------------------------------------------------------------------- emulator base


class Behaviour(BaseModel):
    """Base of each emulator's tunables; unknown keys are refused so a typo in a test fails loudly."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Emulator:
    """One emulated API: its state, its behaviour, its statistics, and the admin routes to steer it.

    Subclasses implement `api_routes()`, `reset_data()` and `seed_records()`; state changes happen on the
    server's event loop thread, so handlers that do not await mid-update need no lock.
    """

    behaviour_model: type[Behaviour] = Behaviour

    def __init__(self, *, contacts: int = 200, seed: int = 1, realistic: bool = True):
        self.contacts = contacts
        self.seed = seed
        self.realistic = realistic
        self.stats = CallStats()
        self.started_cpu = time.process_time()
        self.behaviour = self.default_behaviour()
        self.reset_data()

    # -- to implement ------------------------------------------------------------------------------
    def api_routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def reset_data(self) -> None:
        """Rebuild the seeded data set from (contacts, seed)."""
        raise NotImplementedError

    def seed_records(self, records: list[dict[str, Any]]) -> list[str]:
        """Add or replace records from a test; returns their ids."""
        raise NotImplementedError

    def default_behaviour(self) -> Behaviour:
        """Realistic limits by default; `realistic=False` relaxes them."""
        return self.behaviour_model()

    def on_behaviour_changed(self) -> None:
        """Hook for emulators whose rate limiters depend on behaviour values."""

    def instance_of(self, headers: Headers) -> str | None:
        """Which CRM instance a call's credentials name (several may share one emulator); None: none."""
        return None

    # -- admin -------------------------------------------------------------------------------------
    def admin_routes(self) -> list[BaseRoute]:
        async def stats(request: Request) -> Response:
            return JSONResponse(
                {
                    "calls": self.stats.snapshot(),
                    "process_cpu_seconds": round(time.process_time() - self.started_cpu, 4),
                    "pid": os.getpid(),
                    "concurrency": self.stats.concurrency(),
                }
            )

        async def clear_stats(request: Request) -> Response:
            self.stats.clear()
            return Response(status_code=204)

        async def reset(request: Request) -> Response:
            body = await _json_or_empty(request)
            self.contacts = int(body.get("contacts", self.contacts))
            self.seed = int(body.get("seed", self.seed))
            self.behaviour = self.default_behaviour()
            self.on_behaviour_changed()
            self.reset_data()
            self.stats.clear()
            return Response(status_code=204)

        async def behaviour(request: Request) -> Response:
            if request.method == "POST":
                body = await _json_or_empty(request)
                try:
                    merged = {**self.behaviour.model_dump(), **body}
                    self.behaviour = self.behaviour_model.model_validate(merged)
                except ValidationError as exc:
                    return JSONResponse({"error": json.loads(exc.json())}, status_code=400)
                self.on_behaviour_changed()
            return JSONResponse(self.behaviour.model_dump(mode="json"))

        async def records(request: Request) -> Response:
            body = await _json_or_empty(request)
            items = body.get("records")
            if not isinstance(items, list):
                return JSONResponse({"error": "body must be {'records': [...]}"}, status_code=400)
            try:
                ids = self.seed_records(items)
            except (KeyError, ValueError, TypeError) as exc:
                return JSONResponse({"error": f"bad record: {exc!r}"}, status_code=400)
            return JSONResponse({"ids": ids})

        return [
            Route(f"{ADMIN_PREFIX}/stats", stats, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/stats", clear_stats, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}/reset", reset, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/behaviour", behaviour, methods=["GET", "POST"]),
            Route(f"{ADMIN_PREFIX}/records", records, methods=["POST"]),
        ]

    def asgi_app(self) -> ASGIApp:
        app = Starlette(routes=[*self.admin_routes(), *self.api_routes()])
        return StatsMiddleware(app, self.stats, self.instance_of)


async def _json_or_empty(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


# What a proxy, load balancer or maintenance window in front of an API serves in place of its JSON, with a 200:
# clients that parse every 2xx as JSON meet it as a decoding error, not as an HTTP error.
MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    b"<body><h1>We'll be back soon</h1><p>Scheduled maintenance is in progress.</p></body></html>"
)


def html_in_place(pending: dict[str, int], request: Request) -> Response | None:
    """The maintenance page for this call, if `pending` (`{"METHOD /route/template": n}`, a behaviour knob)
    still owes this route some: the call is carried out first, so a write may have landed (the unkind reading
    of an answer that cannot be read). Each page served counts one down."""
    if not _owed(pending, request):
        return None
    return Response(MAINTENANCE_PAGE, status_code=200, media_type="text/html")


def garbled_in_place(pending: dict[str, int], request: Request) -> Response | None:
    """As `html_in_place`, but a 200 whose body does not decode as its Content-Encoding says (a proxy that
    mangled a compressed answer): HTTP clients fail while reading it, after the call was carried out."""
    if not _owed(pending, request):
        return None
    headers = {"Content-Encoding": "gzip"}
    return Response(b'{"not": "gzip"}', status_code=200, headers=headers, media_type="application/json")


def _owed(pending: dict[str, int], request: Request) -> bool:
    route = getattr(request.scope.get("route"), "path", None)
    key = f"{request.method} {route}"
    if pending.get(key, 0) <= 0:
        return False
    pending[key] -= 1
    return True


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Compact JSON with exact status and headers; every emulator answers through this."""
    body = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=dict(headers or {}), media_type="application/json")


Handler = Callable[[Request], Awaitable[Response]]


# --------------------------------------------------------------------------- a real server per app


class ServedApp(ThreadedServer):
    """An emulator on a real socket at 127.0.0.1 (the only product module the sandbox uses is this runner)."""

    def __init__(self, app: ASGIApp, *, port: int = 0, name: str = "sandbox"):
        super().__init__(app, host="127.0.0.1", port=port, name=name)
