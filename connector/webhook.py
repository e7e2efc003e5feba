"""The webhook LoneScale calls: authenticate the job's token, store the raw body durably, then answer 2xx.

LoneScale documents no signature, retry policy or expected status for webhooks (lonescale-api.md §6), so
the URL carries an unguessable per-job token, compared in constant time against its stored hash. Nothing
is applied here: the body goes to the inbox and `apply_results` drains it, so the answer is fast and a
duplicate delivery is a no-op. A body we cannot use is answered 4xx and kept for a person to inspect.
"""

from __future__ import annotations

import hmac
import json
import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.lonescale import PayloadError, parse_payload
from connector.store import Store, sha256

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhooks/lonescale/{job_id}"


class TooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all (Content-Length may lie or lack)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(store: Store, *, max_body_bytes: int = 5_000_000) -> Starlette:
    def answer(status: int, message: str) -> Response:
        return JSONResponse(
            {"status": "error" if status >= 400 else "ok", "message": message}, status_code=status
        )

    async def receive(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        token = request.query_params.get("token", "")
        job = await run_in_threadpool(
            store.job, job_id
        )  # the store is synchronous: keep it off the event loop
        # One answer for an unknown job and a wrong token, so the endpoint tells a prober nothing.
        if job is None or not hmac.compare_digest(sha256(token), job.token_sha256):
            log.warning(
                "webhook refused: unknown job or wrong token (job %s, from %s)", job_id, request.client
            )
            return answer(401, "unknown job or wrong token")
        try:
            body = await read_limited(request, max_body_bytes)
        except TooLarge:
            log.warning("webhook refused: body over %d bytes (job %s)", max_body_bytes, job_id)
            return answer(413, f"body larger than {max_body_bytes} bytes")
        except ClientDisconnect:
            return answer(400, "client went away mid-body")
        try:
            payload = parse_payload(body)
        except (PayloadError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            await run_in_threadpool(store.store_delivery, job_id, body, "invalid", str(exc))
            log.warning("webhook body kept for inspection, not applied (job %s): %s", job_id, exc)
            return answer(422 if isinstance(exc, PayloadError) else 400, f"unusable payload: {exc}")
        fresh = await run_in_threadpool(store.store_delivery, job_id, body)
        log.debug(
            "webhook %s: job %s, %d result(s)",
            "stored" if fresh else "duplicate ignored",
            job_id,
            len(payload.results),
        )
        return answer(200, "stored" if fresh else "duplicate")

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(store.job, "healthz")  # a real query: a broken database makes this 503
        except Exception as exc:  # any failure at all means unhealthy
            return answer(503, f"store unavailable: {type(exc).__name__}")
        return answer(200, "ok")

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
