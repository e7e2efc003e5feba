"""Serving an ASGI app with uvicorn on a background thread: the webhook in the daemon, the emulators in tests."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.types import ASGIApp


class ThreadedServer:
    """uvicorn on its own thread. Port 0 lets the OS choose; `start()` returns the base URL once it listens.

    uvicorn's asyncio server sets TCP_NODELAY, so small responses are not held back by Nagle's algorithm,
    and `stop()` is graceful: requests in flight finish (a webhook body is stored before its 2xx).
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, name: str = "server"):
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"{name}-server", daemon=True)
        self.name, self.host, self.port = name, host, port

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(
                    f"the {self.name} server failed to start ({self.host}:{self.port} in use?)"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} server did not start within {timeout} s")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.base_url

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.ident is not None:  # never started (a sibling failed first): nothing to join
            self._thread.join(timeout)
