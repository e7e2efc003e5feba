"""Webhook delivery: what is POSTed for a finished job, in which order, with retries, and the attempt log."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from connector.sandbox.kit import happens
from connector.sandbox.lonescale.jobs import Job
from connector.sandbox.lonescale.payloads import envelope

DELIVERIES_KEPT = 10_000
USER_AGENT = "LoneScale-Sandbox-Webhook/1.0"


@dataclass(frozen=True)
class Body:
    sequence: int  # position among the job's distinct bodies, in sending order
    payload: Any
    contact_index: int | None  # input position of the contact, for per-contact bodies
    duplicate: bool


def plan_bodies(job: Job, seed: int) -> list[Body]:
    """The bodies to POST, in order: originals (shuffled when `out_of_order`), then any duplicate copies."""
    behaviour = job.behaviour
    order = list(range(len(job.items)))
    if behaviour.out_of_order and len(order) > 1:
        random.Random(f"{seed}|order|{job.id}").shuffle(order)
        if order == sorted(order):  # a shuffle may keep the order; "out of order" must mean it
            order = order[1:] + order[:1]
    if behaviour.delivery == "per_job":
        custom = job.request.get("custom") if behaviour.echo_request_custom else None
        originals = [Body(0, envelope(job.id, [job.items[i] for i in order], custom), None, False)]
    else:
        originals = [Body(seq, job.items[i], i, False) for seq, i in enumerate(order)]
    copies = [
        Body(body.sequence, body.payload, body.contact_index, True)
        for body in originals
        if happens(behaviour.duplicate_share, seed, "duplicate", job.id, body.sequence)
        for _ in range(behaviour.duplicate_deliveries)
    ]
    return originals + copies


class DeliveryLog:
    """Every attempt, newest last: what tests assert on (`GET /__sandbox/deliveries`)."""

    def __init__(self) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=DELIVERIES_KEPT)

    def record(
        self, job: Job, body: Body | None, attempt: int, status: int | None, error: str | None, outcome: str
    ) -> None:
        self.entries.append(
            {
                "job_id": job.id,
                "url": job.request["webhook_url"],
                "sequence": body.sequence if body else None,
                "contact_index": body.contact_index if body else None,
                "duplicate": body.duplicate if body else False,
                "attempt": attempt,
                "status": status,
                "error": error,
                "outcome": outcome,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "elapsed_seconds": round(time.monotonic() - job.accepted_at, 4),
            }
        )

    def for_job(self, job_id: str | None) -> list[dict[str, Any]]:
        return [e for e in self.entries if job_id is None or e["job_id"] == job_id]


async def run_job(
    job: Job,
    seed: int,
    finish: Callable[[], bool],
    log: DeliveryLog,
    client: httpx.AsyncClient,
    spawn: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    """Waits until the job is due, finishes it, then makes each body's first attempt in order; retries run
    in their own tasks, so one failing payload does not hold back the rest of the job."""
    while not finish():
        await asyncio.sleep(max(0.001, job.ready_at - time.monotonic()))
    behaviour = job.behaviour
    if behaviour.webhook_lag_seconds:
        await asyncio.sleep(behaviour.webhook_lag_seconds)
    if happens(behaviour.webhook_missing_share, seed, "missing", job.id):
        log.record(job, None, 0, None, "not sent (webhook_missing_share)", "skipped")
        return
    await deliver(job, seed, log, client, spawn)


async def deliver(
    job: Job,
    seed: int,
    log: DeliveryLog,
    client: httpx.AsyncClient,
    spawn: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    """A finished job's bodies: each first attempt in order, retries in their own tasks."""
    for body in plan_bodies(job, seed):
        if await _attempt(job, body, 1, log, client):
            spawn(_retry(job, body, log, client))


async def _retry(job: Job, body: Body, log: DeliveryLog, client: httpx.AsyncClient) -> None:
    behaviour = job.behaviour
    for attempt in range(2, behaviour.delivery_max_attempts + 1):
        await asyncio.sleep(behaviour.delivery_backoff_seconds * 2 ** (attempt - 2))
        if not await _attempt(job, body, attempt, log, client):
            return


async def _attempt(job: Job, body: Body, attempt: int, log: DeliveryLog, client: httpx.AsyncClient) -> bool:
    """One POST; True when it should be tried again."""
    behaviour = job.behaviour
    content = json.dumps(body.payload, separators=(",", ":"), ensure_ascii=False).encode()
    status: int | None = None
    error: str | None = None
    try:
        response = await client.post(
            job.request["webhook_url"],
            content=content,
            headers={"content-type": "application/json", "user-agent": USER_AGENT},
            timeout=behaviour.receiver_timeout_seconds,
        )
        status = response.status_code
    except httpx.TimeoutException:
        error = f"timeout after {behaviour.receiver_timeout_seconds} s"
    except Exception as exc:  # any URL the schema accepts must not stop the emulator
        error = f"{type(exc).__name__}: {exc}"
    # Nothing is documented (docs/lonescale.md#webhook-delivery); we retry what a sender usually retries: 5xx,
    # 408, 429 and network failures. Other non-2xx answers are final: the receiver refused the payload.
    if status is not None and 200 <= status < 300:
        outcome = "delivered"
    elif status is not None and status < 500 and status not in (408, 429):
        outcome = "rejected"
    elif attempt >= behaviour.delivery_max_attempts:
        outcome = "gave_up"
    else:
        outcome = "retrying"
    log.record(job, body, attempt, status, error, outcome)
    return outcome == "retrying"


class Deliverer:
    """Background delivery tasks on the server's event loop, and the one HTTP client they share."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # No keep-alive: each attempt opens its own connection, as webhook senders do, and no idle
            # socket outlives the server's loop.
            self._client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
            self._loop = loop
        return self._client

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def cancel_all(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for task in tasks:
            if running is not None and task.get_loop() is running:
                task.cancel()
            elif not task.get_loop().is_closed():
                task.get_loop().call_soon_threadsafe(task.cancel)
