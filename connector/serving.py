"""Serving an ASGI app with uvicorn on a background thread: the webhook in the daemon, the emulators in tests."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from connector.errors import ServerFailed


class ThreadedServer:
    """uvicorn on its own thread. Port 0 lets the OS choose; `start()` returns the base URL once it listens.

    uvicorn's asyncio server sets TCP_NODELAY, so small responses are not held back by Nagle's algorithm,
    and `stop()` is graceful: requests in flight finish (a webhook body is stored before its 2xx).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "server",
        http: str = "auto",
    ):
        # "auto": httptools (a dependency) when it imports, else h11; `http="h11"` is for measuring the
        # difference (bench/webhook_path.py): per request, httptools costs a fraction of h11's pure Python.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            http=http,
        )
        self._server = uvicorn.Server(config)
        self._sockets: list[socket.socket] | None = None
        self._thread = threading.Thread(target=self._serve, name=f"{name}-server", daemon=True)
        self.name, self.host, self.port = name, host, port

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start_on(self, sockets: list[socket.socket], timeout: float = 10.0) -> str:
        """Serve on sockets already bound (several addresses, one server); the first one's URL."""
        self._sockets = sockets
        host, self.port = sockets[0].getsockname()[:2]
        self.host = host
        return self.start(timeout)

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerFailed(
                    f"the {self.name} server cannot listen on {self.host}:{self.port}: {self._why()}"
                )
            if time.monotonic() > deadline:
                raise ServerFailed(f"the {self.name} server did not start within {timeout} s")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.base_url

    def _serve(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind; `start` says why, plainly
            self._server.run(sockets=self._sockets)

    def _why(self) -> str:
        """Why uvicorn could not bind (it logs the errno and exits its thread): the same bind, said plainly."""
        try:
            with socket.create_server((self.host, self.port)):
                return "the server stopped while starting"
        except OSError as exc:
            reasons = {
                errno.EADDRINUSE: "the address is already in use (another lonescale-sync, or another program)",
                errno.EACCES: "permission denied (ports below 1024 need privileges)",
                errno.EADDRNOTAVAIL: f"this machine has no address {self.host}",
            }
            return reasons.get(exc.errno or 0, exc.strerror or str(exc))

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.ident is not None:  # never started (a sibling failed first): nothing to join
            self._thread.join(timeout)
