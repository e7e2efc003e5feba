"""The webhook's one hot route served ahead of Starlette's middleware and router.

Per-contact deliveries come thousands a second (issue 14), and each passes through Starlette's error and
exception middleware, its router's matching of every route and its request-response wrapper before our
handler runs: a visible share of a delivery's CPU (bench/webhook_path.py). `FrontRoute` recognises a POST to
the webhook's path itself and calls the handler with a plain `Request`; everything else (another method or
path, `/healthz`, a mounted root path) goes to the app as before, which keeps its JSON 404s and 405s. An
exception in the handler is answered 500 by uvicorn, as Starlette's ServerErrorMiddleware answers it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request, str], Awaitable[Response]]


class FrontRoute:
    """`POST {prefix}{job_id}` to `handler(request, job_id)`; any other request to `app`. A job id is what
    Starlette's `{job_id}` matches: one non-empty path segment."""

    def __init__(self, prefix: str, handler: Handler, app: ASGIApp):
        self.prefix, self.handler, self.app = prefix, handler, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            if path.startswith(self.prefix):
                job_id = path[len(self.prefix) :]
                if job_id and "/" not in job_id:
                    response = await self.handler(Request(scope, receive), job_id)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
