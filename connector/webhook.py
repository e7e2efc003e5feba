"""The webhook LoneScale calls: authenticate the job's token, store the raw body durably, then answer 2xx.

LoneScale documents no signature, retry policy or expected status for webhooks
(docs/lonescale.md#webhook-delivery), so the URL carries an unguessable per-job token, compared in constant
time against its stored hash. Nothing is applied here: the body goes to the inbox and `apply_results` drains
it, so the answer is fast and a duplicate delivery is a no-op; deliveries arriving together share one commit
(connector.ingest). A body we cannot use is answered 4xx and kept for a person to inspect. No input, however
malformed, earns a 5xx; the token (in the query string) never reaches a log line.

A token is not a licence to fill the disk: it retires `token_grace` after its job is done (410 Gone), and
each job may keep only so many bodies and bytes, sized from its contacts (429, 413). A refused body is not
stored, and nothing not stored is ever answered 2xx; a duplicate of a kept body is still a 200.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from connector import jsoncodec
from connector.ingest import GroupCommit
from connector.logs import log_context
from connector.lonescale import Payload, PayloadError, parse_payload
from connector.store import Arrival, Store, sha256
from connector.store.inbox import Wake
from connector.webhook_asgi import FrontRoute
from connector.webhook_jobs import TOKEN_GRACE, KnownJob, KnownJobs

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhooks/lonescale/{job_id}"
# Ten times our largest job (lonescale.batch_size ≤ 1000): more is a sender's bug, and refusing it before
# building a result per item bounds the time and memory one delivery costs.
MAX_RESULTS = 10_000
# A body this small (a few dozen results) is parsed in well under a millisecond: cheaper on the event loop
# than the hop to a worker thread. Larger ones still go to a thread, so megabytes never stall the loop.
INLINE_EXAMINE_BYTES = 16_384
# Hears each delivery once answered: (instance, outcome, status, seconds). Outcomes: stored, duplicate,
# refused. The runtime's metrics count them (connector.metrics.Metrics.delivered).
Delivered = Callable[[str, str, int, float], None]


def unheard(instance: str, outcome: str, status: int, seconds: float) -> None:
    """The default `Delivered`: nobody counts."""


class TooLarge(Exception):
    pass


class Unusable(Exception):
    """An authenticated body we will not apply: answered `status`, kept as `invalid` for a person."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def shown(value: str) -> str:
    """A caller-chosen string made fit for a log line: quoted, so `%0A` cannot forge a line, and cut short."""
    return repr(value[:80])


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all (Content-Length may lie or lack)."""
    declared = request.headers.get("content-length", "")
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses. A malformed length never gets
    # here (uvicorn answers it 400); the streamed count below is the limit that holds regardless.
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _span(delta: timedelta) -> str:
    """'8 d', '5 h', '40 min': a grace and an age as a log line needs them."""
    if delta.days:
        return f"{delta.days} d"
    return f"{delta.seconds // 3600} h" if delta.seconds >= 3600 else f"{delta.seconds // 60} min"


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python reads NaN/Infinity; JSON (and LoneScale) has none


def examine(body: bytes, content_encoding: str, max_results: int, job_id: str) -> Payload:
    """The payload for job `job_id`, or Unusable. Runs on a worker thread unless the body is small: parsing
    megabytes must not stall the event loop."""
    if content_encoding not in ("", "identity"):
        # LoneScale documents no compression (docs/lonescale.md#webhook-delivery): keep the bytes as they came
        # rather than guess and inflate.
        raise Unusable(415, f"content-encoding {shown(content_encoding)} is not supported")
    try:
        data = jsoncodec.loads(body, parse_constant=_not_json)
    # ValueError covers bad JSON, bad UTF-8, NaN and a number past int's digit limit; RecursionError, nesting.
    except (ValueError, RecursionError) as exc:
        raise Unusable(400, f"not JSON: {exc}") from exc
    if not isinstance(data, list | dict):  # parse_payload would read a JSON string as JSON text again
        raise Unusable(422, f"expected a JSON object or array, got {type(data).__name__}")
    lists = [data] if isinstance(data, list) else [v for v in data.values() if isinstance(v, list)]
    if max(map(len, lists), default=0) > max_results:
        raise Unusable(413, f"more than {max_results} results in one delivery")
    try:
        payload = parse_payload(data)
    except PayloadError as exc:
        raise Unusable(422, str(exc)) from exc
    # Each request carries its job's id as custom.id; echoed back naming another job, the body is that job's
    # (a delivery sent to the wrong URL): applied here, its results would land on this job's records.
    elsewhere = payload.not_for(job_id)
    if elsewhere is not None:
        raise Unusable(422, elsewhere)
    return payload


def answer(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    body = {"status": "error" if status >= 400 else "ok", "message": message}
    # The bytes starlette's JSONResponse would send, rendered by orjson (connector.jsoncodec).
    return Response(jsoncodec.dumps(body), status, headers, media_type="application/json")


# The two answers of nearly every delivery, rendered once. A Response is only read when sent (no background
# task, headers never changed after), so one instance serves every request.
STORED, DUPLICATE = answer(200, "stored"), answer(200, "duplicate")


def _token(query_string: bytes) -> str:
    """The `token` query parameter as Starlette's `request.query_params.get` reads it (the last one wins),
    without building its multi-dict for each delivery."""
    token = ""
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == "token":
            token = value
    return token


def _where(job_id: str, request: Request) -> str:
    """Who a log line is about: built only when a line is logged."""
    return f"job {shown(job_id)}, from {request.client.host if request.client else '?'}"


@dataclass
class _Heard:
    """What one delivery came to, for `Delivered`: its job's instance once authenticated, and its outcome."""

    instance: str = ""
    outcome: str = ""


class Webhook:
    """The app's handlers and what they share: the store, its group commit and the jobs seen lately."""

    def __init__(self, store: Store, max_body_bytes: int, max_results: int, token_grace: timedelta,
                 clock: Callable[[], datetime], delivered: Delivered = unheard, wake: Wake | None = None,
                 ):  # fmt: skip
        self.store, self.max_body_bytes, self.max_results = store, max_body_bytes, max_results
        self.token_grace, self.clock, self.delivered = token_grace, clock, delivered
        self.intake = GroupCommit(store.inbox, wake=wake)
        self.known = KnownJobs()
        self._looking: dict[str, asyncio.Future[KnownJob | None]] = {}

    async def receive(self, request: Request) -> Response:
        """The Starlette route's endpoint (FrontRoute answers the POSTs before it: connector.webhook_asgi)."""
        return await self.deliver(request, request.path_params["job_id"])

    async def deliver(self, request: Request, job_id: str) -> Response:
        """A delivery, answered; then heard by `delivered` with its outcome and how long the answer took."""
        started, heard = time.perf_counter(), _Heard()
        response = await self._receive(request, job_id, heard)
        outcome = heard.outcome or ("refused" if response.status_code >= 400 else "stored")
        self.delivered(heard.instance, outcome, response.status_code, time.perf_counter() - started)
        return response

    async def _receive(self, request: Request, job_id: str, heard: _Heard) -> Response:
        token = _token(request.scope["query_string"])
        now = self.clock()
        job = await self._known(job_id, now)
        # One answer for an unknown job and a wrong token, so the endpoint tells a prober nothing. (A known
        # id answers a little faster than an unknown one, but ids are random UUIDs: useless without a token.)
        if job is None or not hmac.compare_digest(sha256(token), job.digest):
            log.warning("webhook refused 401: unknown job or wrong token (%s)", _where(job_id, request))
            return answer(401, "unknown job or wrong token")
        heard.instance = job.instance  # authenticated: the job's instance may name the delivery
        if job.retired(now, self.token_grace):
            # 410, not 401: only the token's holder learns it, and a sender that retries would stop here.
            ago = _span(now - job.changed_at) if job.changed_at else "?"
            log.warning("webhook refused 410: job %s %s ago, its token retired after %s (%s)",
                        job.status.value, ago, _span(self.token_grace), _where(job_id, request))  # fmt: skip
            return answer(410, "the job is done and its token retired")
        try:
            body = await read_limited(request, self.max_body_bytes)
        except TooLarge:  # not kept: keeping it would undo the limit
            log.warning("webhook refused 413: body over %d bytes (%s)", self.max_body_bytes,
                        _where(job_id, request))  # fmt: skip
            return answer(413, f"body larger than {self.max_body_bytes} bytes")
        except ClientDisconnect:
            log.warning("webhook gave up: the client went away mid-body (%s)", _where(job_id, request))
            return answer(400, "client went away mid-body")
        over = job.over_cap(len(body))
        # Over a cap, a body already kept is still a duplicate: answered as ever, nothing new stored.
        if over is not None and not await run_in_threadpool(self._kept_before, job_id, body):
            log.warning("webhook refused %d, body not kept: %s; it has %d, %d bytes (%s)", over.status,
                        over.reason, job.kept, job.kept_bytes, _where(job_id, request))  # fmt: skip
            return answer(over.status, over.reason)
        held = over is None
        if held:
            job.hold(len(body))
        stored = False
        try:
            with log_context(job_id=job_id):  # an authenticated job: its id may name the log lines
                stored, response = await self._keep(request, job_id, job.instance, body)
        finally:
            job.settle(len(body), stored, held)
        if response.status_code == 200:
            heard.outcome = "stored" if stored else "duplicate"
        return response

    def _kept_before(self, job_id: str, body: bytes) -> bool:  # on a worker thread: hashing megabytes
        return self.store.inbox.has(job_id, sha256(body))

    def _look_up(self, job_id: str) -> KnownJob | None:  # on a worker thread: the store is synchronous
        job = self.store.jobs.get(job_id)
        return None if job is None else KnownJob.of(job, self.store.inbox.usage(job_id), self.clock())

    async def _known(self, job_id: str, now: datetime) -> KnownJob | None:
        job = self.known.get(job_id)
        if job is None:
            # We issue UUIDs only: a control character (PostgreSQL refuses NUL) is an unknown id, not a query.
            found = await self._first_look(job_id) if job_id.isprintable() else None
            return None if found is None else self.known.remember(job_id, found)
        if job.stale(now):
            job.read_at = now  # one read at a time: deliveries meanwhile go by what is known
            current = await run_in_threadpool(self.store.jobs.get, job_id)
            if current is not None:
                job.status, job.changed_at = current.status, current.updated_at
        return job

    async def _first_look(self, job_id: str) -> KnownJob | None:
        """One read of a job not remembered yet, shared by the deliveries that ask meanwhile: a job's first
        deliveries come together (LoneScale posts a finished job's contacts at once), and a read each was
        as many worker-thread hops and COUNT queries for the one answer."""
        pending = self._looking.get(job_id)
        if pending is None:
            pending = asyncio.ensure_future(run_in_threadpool(self._look_up, job_id))
            self._looking[job_id] = pending
            pending.add_done_callback(lambda _: self._looking.pop(job_id, None))
        # Shielded: one waiter cancelled (its client went away) must not cancel the read the others share.
        return await asyncio.shield(pending)

    async def _keep(self, request: Request, job_id: str, instance: str, body: bytes) -> tuple[bool, Response]:
        """Store the body (`invalid` if we cannot use it): whether it was fresh, and the answer."""
        encoding = request.headers.get("content-encoding", "").strip().lower()
        try:
            if len(body) <= INLINE_EXAMINE_BYTES:
                payload = examine(body, encoding, self.max_results, job_id)
            else:
                payload = await run_in_threadpool(examine, body, encoding, self.max_results, job_id)
        except Unusable as exc:
            fresh = await self.intake.keep(Arrival(job_id, body, "invalid", str(exc), instance))
            log.warning("webhook refused %d, body kept for inspection (%s): %s", exc.status,
                        _where(job_id, request), exc)  # fmt: skip
            return fresh, answer(exc.status, f"unusable payload: {exc}")
        fresh = await self.intake.keep(Arrival(job_id, body, instance=instance))
        # An identical body again: acknowledged, ignored.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("webhook %s (%s): %d result(s)", "stored" if fresh else "duplicate",
                      _where(job_id, request), len(payload.results))  # fmt: skip
        return fresh, (STORED if fresh else DUPLICATE)

    async def healthz(self, request: Request) -> Response:
        try:
            await run_in_threadpool(
                self.store.jobs.get, "healthz"
            )  # a real query: a broken database makes this 503
        except Exception as exc:  # any failure at all means unhealthy
            return answer(503, f"store unavailable: {type(exc).__name__}")
        return answer(200, "ok")

    async def refused(self, request: Request, exc: Exception) -> Response:
        """A wrong path or method: JSON like every other refusal. Only a request meant for the webhook (its path
        prefix) is logged as a refusal; scanners and probes of other paths are not worth a warning."""
        assert isinstance(exc, HTTPException)  # the only class it is registered for
        path = shown(request.url.path)
        if request.url.path.startswith(WEBHOOK_PATH.split("{", 1)[0]):
            log.warning("webhook refused %d: %s %s", exc.status_code, request.method, path)
        else:
            log.debug("answered %d to %s %s: not a route of ours", exc.status_code, request.method, path)
        return answer(exc.status_code, exc.detail, exc.headers)  # a 405 keeps its Allow header


def create_app(
    store: Store,
    *,
    max_body_bytes: int = 5_000_000,
    max_results: int = MAX_RESULTS,
    token_grace: timedelta = TOKEN_GRACE,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    delivered: Delivered = unheard,
    wake: Wake | None = None,
) -> ASGIApp:
    """`clock`: the time a token's grace is measured by (tests move it on rather than wait a week);
    `delivered` hears each delivery once answered (the runtime's metrics); `wake`, in the transaction that
    stores deliveries, the instances whose write-back they call for (a cluster's apply wake-ups)."""
    hook = Webhook(store, max_body_bytes, max_results, token_grace, clock, delivered, wake)
    app = Starlette(
        routes=[
            Route(WEBHOOK_PATH, hook.receive, methods=["POST"]),
            Route("/healthz", hook.healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: hook.refused},
    )
    # Starlette answers a path with one slash too many (`/webhooks/lonescale/<id>/`) with a bodiless 307 to
    # the path without it; a sender that follows it would re-POST, one that does not gets no JSON to read.
    # Like every other wrong path, it is a 404 in JSON.
    app.router.redirect_slashes = False
    return FrontRoute(WEBHOOK_PATH.split("{", 1)[0], hook.deliver, app)
