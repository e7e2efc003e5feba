"""`lonescale-sync serve`: the webhook alone, as one of several receivers behind a load balancer.

A receiver keeps no state of its own: each delivery is stored in the shared store (PostgreSQL for receivers on
several machines) before its 2xx, and whichever process writes back (`run`, or `apply`) finds it there. So
receivers may be added, restarted or killed at will: a delivery a receiver had not yet stored was never
acknowledged, and LoneScale's sender sees the failure (docs/lonescale.md#webhook-delivery says what it then does).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from connector.config import Config
from connector.errors import ServerFailed
from connector.serving import ThreadedServer
from connector.store.wakeups import wake_write_backs
from connector.webhook import create_app
from connector.wiring import build_store

log = logging.getLogger(__name__)


def serve_receiver(config: Config, stop: threading.Event | None = None, listen: str | None = None) -> None:
    """Serve the webhook until `stop` is set (by SIGTERM or SIGINT when run from the main thread); requests in
    flight are stored and answered before it returns."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info(
                "received %s: answering the requests in flight, then stopping", signal.Signals(signum).name
            )
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    settings = config.settings.webhook
    host, _, port = (listen or settings.listen).rpartition(":")
    store = build_store(config)
    try:
        wake = wake_write_backs if config.settings.cluster.enabled else None  # with each delivery's commit
        app = create_app(
            store, max_body_bytes=settings.max_body_bytes, token_grace=settings.token_grace_delta, wake=wake
        )
        server = ThreadedServer(app, host=host, port=int(port), name="webhook")
        try:
            url = server.start()
        except ServerFailed as exc:
            raise ServerFailed(f"{exc}: free it, or give another --listen host:port") from exc
        if wake is None:
            log.info("receiving webhooks on %s; the write-back runs wherever `run` or `apply` does", url)
        else:
            log.info("receiving webhooks on %s; each delivery wakes its write-back on a worker", url)
        try:
            stop.wait()
        finally:
            server.stop()
    finally:
        store.close()
    log.info("stopped cleanly")
