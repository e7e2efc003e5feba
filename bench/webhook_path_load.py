"""The load child of bench/webhook_path.py: prebuilt POSTs on keep-alive sockets, from a process of its own.

`python -m bench.webhook_path_load --url U --requests R.jsonl --concurrency C` reads R (one `[path, body]`
a line), builds every request's bytes first, then keeps C connections busy, each sending its next request as
soon as the previous answer is complete (asyncio protocols, no HTTP library: the client must cost little
beside the server it loads). Prints one JSON line: wall seconds of the load, latencies, statuses, and this
process's own CPU, so a reader can see the client was not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 120.0


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"user-agent: LoneScale-Bench/1.0\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive connection: send, read the whole answer (Content-Length framed), send the next."""

    def __init__(self, requests: list[bytes], order: Iterator[int], latencies: list[float],
                 statuses: dict[int, int], done: asyncio.Future[None]):  # fmt: skip
        self.requests, self.order, self.latencies, self.statuses = requests, order, latencies, statuses
        self.done, self.buffer, self.started = done, b"", 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send_next()

    def send_next(self) -> None:
        assert self.transport is not None
        index = next(self.order, None)
        if index is None:
            self.transport.close()
            if not self.done.done():
                self.done.set_result(None)
            return
        self.started = time.perf_counter()
        self.transport.write(self.requests[index])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        marker = head.find(b"content-length:")
        length = 0
        if marker >= 0:
            line_end = head.find(b"\r\n", marker)
            length = int(head[marker + 15 : line_end if line_end >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        self.latencies.append(time.perf_counter() - self.started)
        status = int(self.buffer[9:12])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.buffer = self.buffer[end + 4 + length :]
        self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run_load(url: str, items: list[tuple[str, bytes]], concurrency: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [request_bytes(host, port, path, body) for path, body in items]
    order = iter(range(len(requests)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    dones = [loop.create_future() for _ in range(concurrency)]
    cpu0 = _cpu()
    started = time.perf_counter()
    for done in dones:

        def factory(done: asyncio.Future[None] = done) -> Connection:
            return Connection(requests, order, latencies, statuses, done)

        await loop.create_connection(factory, host, port)
    await asyncio.wait_for(asyncio.gather(*dones), TIMEOUT + len(requests) / 100)
    elapsed = time.perf_counter() - started
    cpu = _cpu() - cpu0
    ordered = sorted(latencies)

    def percentile(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2) if ordered else -1.0

    return {
        "sent": len(requests),
        "answered": len(latencies),
        "elapsed_seconds": round(elapsed, 3),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else -1.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "client_cpu_seconds": round(cpu, 3),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_path_load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    items = []
    with args.requests.open(encoding="utf-8") as lines:
        for line in lines:
            path, body = json.loads(line)
            items.append((path, body.encode()))
    print(json.dumps(asyncio.run(run_load(args.url, items, args.concurrency))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
