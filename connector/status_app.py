"""The status page's app: GET /status (HTML), /status.json (the same StatusReport), /healthz. Read-only.

It is served on a port of its own (`[status] listen`, loopback by default), never on the webhook's, which
LoneScale must reach from the internet. With `[status] token_env`, every route but /healthz asks for
`Authorization: Bearer <token>` and answers 401 without it. Other routes (the daemon's /metrics) are added
through `routes`."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.config import Config
from connector.redact import Secret
from connector.status import build_status
from connector.status_page import render
from connector.store import Store

OPEN_PATHS = ("/healthz",)  # a load balancer's probe carries no token


class _BearerToken:
    """401 for a request without the configured token (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: Secret):
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
            if not hmac.compare_digest(given.encode(), self.token.reveal().encode()):
                response = PlainTextResponse(
                    "a token is required: send Authorization: Bearer <the value of [status] token_env>",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="lonescale-sync status"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_status_app(store: Store, config: Config, *, routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    """The status app over `store`, for `config`'s instances; `routes` are served beside it, behind the same
    token."""

    async def page(request: Request) -> Response:
        report = await run_in_threadpool(build_status, store, config)
        return HTMLResponse(render(report), headers={"Cache-Control": "no-store"})

    async def as_json(request: Request) -> Response:
        report = await run_in_threadpool(build_status, store, config)
        return Response(report.model_dump_json(indent=2), media_type="application/json",
                        headers={"Cache-Control": "no-store"})  # fmt: skip

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def home(request: Request) -> Response:
        return RedirectResponse("/status")

    app = Starlette(routes=[Route("/", home), Route("/status", page), Route("/status.json", as_json),
                            Route("/healthz", healthz), *routes])  # fmt: skip
    token_env = config.settings.status.token_env
    return _BearerToken(app, config.secret(token_env)) if token_env else app
