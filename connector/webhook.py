"""The webhook LoneScale calls: authenticate the job's token, store the raw body durably, then answer 2xx.

LoneScale documents no signature, retry policy or expected status for webhooks (lonescale-api.md §6), so
the URL carries an unguessable per-job token, compared in constant time against its stored hash. Nothing
is applied here: the body goes to the inbox and `apply_results` drains it, so the answer is fast and a
duplicate delivery is a no-op; deliveries arriving together share one commit (connector.ingest). A body
we cannot use is answered 4xx and kept for a person to inspect. No input, however malformed, earns a 5xx;
the token (in the query string) never reaches a log line.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.ingest import GroupCommit
from connector.lonescale import Payload, PayloadError, parse_payload
from connector.store import Arrival, Store, sha256

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhooks/lonescale/{job_id}"
# Ten times our largest job (lonescale.batch_size ≤ 1000): more is a sender's bug, and refusing it before
# building a result per item bounds the time and memory one delivery costs.
MAX_RESULTS = 10_000
# A body this small (a few dozen results) is parsed in well under a millisecond: cheaper on the event loop
# than the hop to a worker thread. Larger ones still go to a thread, so megabytes never stall the loop.
INLINE_EXAMINE_BYTES = 16_384
# Jobs whose token hash is remembered: more than are ever awaiting results at once.
KNOWN_JOBS = 4_096


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


class TokenHashes:
    """Job id → its token's hash, for the jobs seen lately: a job's token never changes, so a delivery for a
    known job needs no database read. Only jobs that exist are remembered (a refused id is looked up every
    time: it may be a job not yet created), and the least recently used is forgotten past `size`. Used from
    the event loop only."""

    def __init__(self, size: int = KNOWN_JOBS):
        self._hashes: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def get(self, job_id: str) -> str | None:
        digest = self._hashes.get(job_id)
        if digest is not None:
            self._hashes.move_to_end(job_id)
        return digest

    def remember(self, job_id: str, digest: str) -> None:
        self._hashes[job_id] = digest
        self._hashes.move_to_end(job_id)
        if len(self._hashes) > self._size:
            self._hashes.popitem(last=False)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python reads NaN/Infinity; JSON (and LoneScale) has none


def examine(body: bytes, content_encoding: str, max_results: int) -> Payload:
    """The payload, or Unusable. Runs on a worker thread unless the body is small: parsing megabytes must
    not stall the event loop."""
    if content_encoding not in ("", "identity"):
        # LoneScale documents no compression (§6): keep the bytes as they came rather than guess and inflate.
        raise Unusable(415, f"content-encoding {shown(content_encoding)} is not supported")
    try:
        data = json.loads(body, parse_constant=_not_json)
    # ValueError covers bad JSON, bad UTF-8, NaN and a number past int's digit limit; RecursionError, nesting.
    except (ValueError, RecursionError) as exc:
        raise Unusable(400, f"not JSON: {exc}") from exc
    if not isinstance(data, list | dict):  # parse_payload would read a JSON string as JSON text again
        raise Unusable(422, f"expected a JSON object or array, got {type(data).__name__}")
    lists = [data] if isinstance(data, list) else [v for v in data.values() if isinstance(v, list)]
    if max(map(len, lists), default=0) > max_results:
        raise Unusable(413, f"more than {max_results} results in one delivery")
    try:
        return parse_payload(data)
    except PayloadError as exc:
        raise Unusable(422, str(exc)) from exc


def create_app(store: Store, *, max_body_bytes: int = 5_000_000, max_results: int = MAX_RESULTS) -> Starlette:
    intake = GroupCommit(store)
    known = TokenHashes()

    def answer(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        body = {"status": "error" if status >= 400 else "ok", "message": message}
        return JSONResponse(body, status_code=status, headers=headers)

    async def token_hash(job_id: str) -> str | None:
        digest = known.get(job_id)
        # We issue UUIDs only; a control character (PostgreSQL refuses NUL) is an unknown job, not a query.
        if digest is None and job_id.isprintable():
            # The store is synchronous: keep it off the event loop.
            job = await run_in_threadpool(store.job, job_id)
            if job is not None:
                digest = job.token_sha256
                known.remember(job_id, digest)
        return digest

    async def receive(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        token = request.query_params.get("token", "")
        where = f"job {shown(job_id)}, from {request.client.host if request.client else '?'}"
        digest = await token_hash(job_id)
        # One answer for an unknown job and a wrong token, so the endpoint tells a prober nothing. (A known
        # id answers a little faster than an unknown one, but ids are random UUIDs: useless without a token.)
        if digest is None or not hmac.compare_digest(sha256(token), digest):
            log.warning("webhook refused 401: unknown job or wrong token (%s)", where)
            return answer(401, "unknown job or wrong token")
        try:
            body = await read_limited(request, max_body_bytes)
        except TooLarge:  # not kept: keeping it would undo the limit
            log.warning("webhook refused 413: body over %d bytes (%s)", max_body_bytes, where)
            return answer(413, f"body larger than {max_body_bytes} bytes")
        except ClientDisconnect:
            log.warning("webhook gave up: the client went away mid-body (%s)", where)
            return answer(400, "client went away mid-body")
        encoding = request.headers.get("content-encoding", "").strip().lower()
        try:
            if len(body) <= INLINE_EXAMINE_BYTES:
                payload = examine(body, encoding, max_results)
            else:
                payload = await run_in_threadpool(examine, body, encoding, max_results)
        except Unusable as exc:
            await intake.keep(Arrival(job_id, body, "invalid", str(exc)))
            log.warning("webhook refused %d, body kept for inspection (%s): %s", exc.status, where, exc)
            return answer(exc.status, f"unusable payload: {exc}")
        fresh = await intake.keep(Arrival(job_id, body))
        outcome = "stored" if fresh else "duplicate"  # an identical body again: acknowledged, ignored
        log.debug("webhook %s (%s): %d result(s)", outcome, where, len(payload.results))
        return answer(200, outcome)

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(store.job, "healthz")  # a real query: a broken database makes this 503
        except Exception as exc:  # any failure at all means unhealthy
            return answer(503, f"store unavailable: {type(exc).__name__}")
        return answer(200, "ok")

    async def refused(request: Request, exc: Exception) -> Response:
        """A wrong path or method: JSON and a log line like every other refusal (the path holds no token)."""
        assert isinstance(exc, HTTPException)  # the only class it is registered for
        log.warning("webhook refused %d: %s %s", exc.status_code, request.method, shown(request.url.path))
        return answer(exc.status_code, exc.detail, exc.headers)  # a 405 keeps its Allow header

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: refused},
    )
