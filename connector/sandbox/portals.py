"""Many emulated orgs or portals on one server: each emulator on a loopback address of its own (127.0.0.2,
127.0.0.3, …, all on one port), so that a cluster test or benchmark of 20 or 200 CRM instances runs one event
loop rather than one server thread per instance.

Each emulator is a whole org or portal (its records, its limits, its calls in flight), reached at its own
base URL: the SDKs see distinct hosts, as with real orgs. Linux routes all of 127.0.0.0/8 to the loopback
interface, so the addresses need no setup; each gets its own listening socket (uvicorn serves a list of
sockets), and a request is routed by the address it arrived on (`scope["server"]`), not by a Host header a
client could set.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from connector.sandbox.kit import Emulator, ServedApp

FIRST_HOST = 2  # 127.0.0.1 stays for the single-emulator servers and the connector's own


class _ByAddress:
    def __init__(self, apps: dict[str, ASGIApp]):
        self._apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") or ("", 0)
        await self._apps[server[0]](scope, receive, send)


class Portals:
    """`emulators[i]` served at `urls[i]` once started."""

    def __init__(self, emulators: Sequence[Emulator], *, name: str = "portals", first_host: int = FIRST_HOST):
        if len(emulators) > 250 - first_host:
            raise ValueError(
                f"{len(emulators)} emulators: one loopback address each, at most {250 - first_host}"
            )
        self.emulators = list(emulators)
        self.hosts = [f"127.0.0.{first_host + i}" for i in range(len(emulators))]
        self._sockets = self._bind()
        self.port = self._sockets[0].getsockname()[1]
        self.urls = [f"http://{host}:{self.port}" for host in self.hosts]
        for emulator, url in zip(self.emulators, self.urls, strict=True):
            emulator.base_url = url  # type: ignore[attr-defined]  # what a token answer names as instance_url
        app = _ByAddress({h: e.asgi_app() for h, e in zip(self.hosts, self.emulators, strict=True)})
        self._server = ServedApp(app, name=name)

    def _bind(self) -> list[socket.socket]:
        """One port free on every address: the OS picks it on the first, the others take the same."""
        for _ in range(20):
            first = socket.create_server((self.hosts[0], 0))
            port = first.getsockname()[1]
            sockets = [first]
            try:
                sockets += [socket.create_server((host, port)) for host in self.hosts[1:]]
            except OSError:  # taken on one of them by someone else: try another port
                for sock in sockets:
                    sock.close()
                continue
            return sockets
        raise OSError("no port is free on every loopback address wanted")

    def start(self) -> list[str]:
        self._server.start_on(self._sockets)
        return self.urls

    def stop(self) -> None:
        self._server.stop()
        for sock in self._sockets:
            sock.close()
