"""Crash safety: `lonescale-sync run` SIGKILLed at points of a cycle, then restarted, loses nothing and repeats nothing.

One daemon runs a Salesforce and a HubSpot instance against the emulators. Each kill point is reached by
observable state (the store's tables, the emulators' own books) or by a relay: a reverse proxy on a real
socket in front of LoneScale, a CRM or the daemon's webhook, which can hold one request, before or after the
upstream saw it, so the kill lands while that call is in flight. The daemon is then restarted on the same
config, store and webhook port, left to finish, stopped with SIGTERM, and one more `sync` per instance runs.

What must hold after every crash:
- no result lost: every contact LoneScale accepted has its result applied (or the CRM's refusal recorded);
- no field written twice: each field is journaled once per job, every write that reached the CRM is
  journaled, and the CRM saw no more writes than the journal shows (the batch in flight at the kill may
  reach it once more);
- no contact enriched twice, except those of the one job per instance whose trigger POST was in flight.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.cli import main
from connector.demo import free_port
from connector.lonescale import LoneScaleClient
from connector.mapping import WritePolicy, load_mapping
from connector.models import JobStatus
from connector.overdue import GRACE, settle_overdue
from connector.redact import Secret
from connector.sandbox import credentials
from connector.sender import JOB_DEADLINE
from connector.serving import ThreadedServer
from connector.store import Store, schema
from tests.conftest import Served
from tests.support import SANDBOX_ENV, create_status_fields

ROOT = Path(__file__).resolve().parent.parent
ENV = SANDBOX_ENV
CONTACTS = 100  # per CRM
BATCH_SIZE = 25  # contacts per LoneScale job: a few jobs per instance and cycle
MAPPINGS = {"sf": "salesforce-contact.toml", "hs": "hubspot-contacts.toml"}
WRITE_ROUTES = {  # (relay, method, path) of each CRM's batch write
    "hs": ("hubspot", "POST", "/crm/v3/objects/contacts/batch/update"),
    "sf": ("salesforce", "PATCH", "/services/data/v62.0/composite/sobjects"),
}
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding",
              "content-encoding"}  # fmt: skip


# --------------------------------------------------------------------------- a relay that can hold one call


@dataclass(frozen=True)
class Hold:
    """Hold the `nth` request matching (method, path) until released; `forward`: after the upstream answered
    (a write has landed, a job was accepted), else before it saw anything (the relay then answers 502)."""

    method: str
    path: str
    forward: bool
    nth: int = 1
    body: Callable[[bytes], bool] = lambda body: True  # only requests whose body passes count


class Relay:
    """A reverse proxy on a real socket, in front of an emulator or the daemon's webhook. It logs every call
    that got an upstream answer, can slow each call down, and can hold one call while the test kills."""

    def __init__(self, name: str, target: str, *, delay: float = 0.0):
        self.name, self.target, self.delay = name, target.rstrip("/"), delay
        self.hold: Hold | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        self.held_body: bytes | None = None
        self.log: list[tuple[str, str, int, bytes]] = []  # (method, path, upstream status, request body)
        self._matches = 0
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None  # made on the server's loop, at the first call
        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        app = Starlette(routes=[Route("/{path:path}", self._relay, methods=methods)])
        self._server = ThreadedServer(app, name=f"relay-{name}")
        self.url = self._server.start()

    def stop(self) -> None:
        self.release.set()
        self._server.stop()

    def landed(self, method: str, path: str) -> list[bytes]:
        """Bodies of the calls that reached the upstream and got a 2xx."""
        with self._lock:
            return [b for m, p, s, b in self.log if m == method and p == path and 200 <= s < 300]

    def _claim_hold(self, method: str, path: str, body: bytes) -> Hold | None:
        with self._lock:
            rule = self.hold
            if rule is None or (rule.method, rule.path) != (method, path) or not rule.body(body):
                return None
            self._matches += 1
            return rule if self._matches == rule.nth else None

    async def _wait_for_release(self, body: bytes) -> None:
        self.held_body = body
        self.held.set()
        deadline = time.monotonic() + 60
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def _relay(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        hold = self._claim_hold(request.method, path, body)
        if hold is not None and not hold.forward:
            await self._wait_for_release(body)
            return Response(b"relay: held, never forwarded", status_code=502)
        if self.delay:
            await asyncio.sleep(self.delay)
        url = self.target + path + (f"?{request.url.query}" if request.url.query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
        try:
            upstream = await self._client.request(request.method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # the daemon is down: LoneScale should retry
            return Response(f"relay: {type(exc).__name__}".encode(), status_code=502)
        with self._lock:
            self.log.append((request.method, path, upstream.status_code, body))
        if hold is not None:
            await self._wait_for_release(body)
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)


# --------------------------------------------------------------------------- the daemon and what it left


def write_config(
    directory: Path,
    relays: dict[str, Relay],
    webhook_port: int,
    instances: tuple[str, ...] = ("sf", "hs"),
    full_jobs: bool = False,
) -> Path:
    """`full_jobs`: jobs of BATCH_SIZE contacts from the first run (`assume_custom_echoed`), for a test that
    needs one job to stand for many contacts; otherwise one contact per job until the echo is seen."""
    sections = {
        "sf": f"""
[[instances]]
name = "sf"
crm = "salesforce"
mapping = "{ROOT / "mappings" / MAPPINGS["sf"]}"
settle = "0s"
schedule = "every 1h"

[instances.salesforce]
instance_url = "{relays["salesforce"].url}"
client_id_env = "SF_ID"
client_secret_env = "SF_SECRET"
""",
        "hs": f"""
[[instances]]
name = "hs"
crm = "hubspot"
mapping = "{ROOT / "mappings" / MAPPINGS["hs"]}"
settle = "0s"
schedule = "every 1h"

[instances.hubspot]
base_url = "{relays["hubspot"].url}"
access_token_env = "HS_TOKEN"
""",
    }
    path = directory / "lonescale-sync.toml"
    path.write_text(
        f"""
[lonescale]
base_url = "{relays["lonescale"].url}"
api_key_env = "LS_KEY"
enrichment_type = ["email", "phone", "profile"]
batch_size = {BATCH_SIZE}
assume_custom_echoed = {"true" if full_jobs else "false"}

[webhook]
listen = "127.0.0.1:{webhook_port}"
public_url = "{relays["webhook"].url}"

[status]  # the status page beside the daemon, on a port of its own
listen = "127.0.0.1:{free_port()}"

[store]
url = "sqlite:///{directory / "state.db"}"
"""
        + "".join(sections[name] for name in instances)
    )
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=ENV)
    return result.exit_code, f"{result.output}{result.exception or ''}"


@dataclass
class AtKill:
    """What the store and the relays showed the moment the daemon died."""

    in_flight: dict[str, set[str]]  # instance → job ids whose trigger POST had not completed
    inbox: int  # webhook bodies stored
    landed: list[tuple[str, str, set[str]]]  # record writes the CRMs had taken
    held_batch: set[tuple[str, str]]  # (instance, record id) of the CRM batch write the relay held
    held_writes: set[tuple[str, str]]  # …when that batch landed and only its answer was held
    last_run: int


@dataclass
class World:
    directory: Path
    config: Path
    store: Store
    lonescale: Served
    relays: dict[str, Relay]
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    # -- the daemon ------------------------------------------------------------------------------------
    def start(self) -> None:
        log = self.directory / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "run", "--config", str(self.config)],
                env={**os.environ, **ENV},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None  # down: a wait from now on watches the world, not a daemon

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs if log.exists())

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.process.returncode}) before {what}\n{self.tail()}"
                )
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}\n{self.tail()}")

    # -- the store -------------------------------------------------------------------------------------
    def rows(self, table: Any, *where: Any) -> list[dict[str, Any]]:
        with self.store.database.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(select(table).where(*where))]

    def count(self, table: Any, *where: Any) -> int:
        with self.store.database.engine.connect() as db:
            return int(db.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    def instance_of_job(self) -> dict[str, str]:
        return {job["id"]: job["instance"] for job in self.rows(schema.jobs)}

    def in_flight(self) -> dict[str, set[str]]:
        """Jobs stored whose send did not complete: still `pending`, or sent but their records not yet
        remembered as sent (the two steps after a successful POST)."""
        states = {(s["instance"], s["record_id"]): s for s in self.rows(schema.record_state)}
        contacts: dict[str, list[str]] = defaultdict(list)
        for contact in self.rows(schema.job_contacts):
            contacts[contact["job_id"]].append(contact["record_id"])
        flying: dict[str, set[str]] = defaultdict(set)
        for job in self.rows(schema.jobs):
            if job["status"] == "failed":  # refused by LoneScale: its contacts went in smaller jobs
                continue
            created = aware(job["created_at"])
            remembered = all(
                (sent := sent_at(states.get((job["instance"], record)), job["enrichment_types"])) is not None
                and sent >= created
                for record in contacts[job["id"]]
            )
            if job["status"] == "pending" or not remembered:
                flying[job["instance"]].add(job["id"])
        return dict(flying)

    def last_run(self) -> int:
        with self.store.database.engine.connect() as db:
            return int(db.execute(select(func.max(schema.runs.c.id))).scalar_one() or 0)

    # -- LoneScale's side ------------------------------------------------------------------------------
    def accepted(self) -> list[tuple[str, str]]:
        """(our job id, record id) of every contact LoneScale accepted, from the emulator's own book."""
        pairs = []
        for job in list(self.lonescale.emulator.state.book.jobs.values()):
            ours = re.search(r"/webhooks/lonescale/([^/?]+)", job.request["webhook_url"])
            assert ours, job.request["webhook_url"]
            pairs += [(ours.group(1), contact["custom"]["contact_id"]) for contact in job.contacts]
        return pairs

    def lonescale_idle(self) -> bool:
        book = self.lonescale.emulator.state.book
        return (
            all(job.finished for job in list(book.jobs.values()))
            and not self.lonescale.emulator.deliverer.pending
        )

    # -- the CRMs' side --------------------------------------------------------------------------------
    def landed_writes(self) -> list[tuple[str, str, set[str]]]:
        """(instance, record id, fields) of every record write that reached a CRM, in order."""
        writes = []
        for instance, (relay, method, path) in WRITE_ROUTES.items():
            for body in self.relays[relay].landed(method, path):
                writes += record_writes(instance, body)
        return writes


def aware(moment: datetime | str) -> datetime:
    moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def sent_at(state: dict[str, Any] | None, kinds: list[str]) -> datetime | None:
    """When the store last remembered this record as sent for these types (either record_state layout:
    one `last_sent_at`, or a `types` map of type → {"sent_at"})."""
    if state is None:
        return None
    if state.get("last_sent_at") is not None:
        return aware(state["last_sent_at"])
    types = state.get("types") or {}
    moments = [types.get(kind, {}).get("sent_at") for kind in kinds]
    return min(aware(m) for m in moments) if moments and all(moments) else None


def record_writes(instance: str, body: bytes) -> list[tuple[str, str, set[str]]]:
    data = json.loads(body)
    if instance == "hs":
        return [(instance, item["id"], set(item["properties"])) for item in data["inputs"]]
    return [
        (instance, item.get("id") or item["Id"], set(item) - {"attributes", "id", "Id"})
        for item in data["records"]
    ]


@contextmanager
def open_world(directory: Path, lonescale: Served, salesforce: Served, hubspot: Served,
               instances: tuple[str, ...] = ("sf", "hs"), full_jobs: bool = False) -> Iterator[World]:  # fmt: skip
    """Relays in front of every emulator and of the daemon's webhook, a config for `instances` (checked, with
    the status fields created: Salesforce's by its admin in Setup, HubSpot's by `check --create-missing`),
    and the store; everything stopped afterwards."""
    salesforce.control.reset(contacts=CONTACTS, seed=7)
    create_status_fields(salesforce)
    hubspot.control.reset(contacts=CONTACTS, seed=7)
    relays: dict[str, Relay] = {}
    store: Store | None = None
    world: World | None = None
    try:
        relays["lonescale"] = Relay("lonescale", lonescale.url)
        relays["salesforce"] = Relay("salesforce", salesforce.url)
        relays["hubspot"] = Relay("hubspot", hubspot.url)
        webhook_port = free_port()
        relays["webhook"] = Relay("webhook", f"http://127.0.0.1:{webhook_port}")
        # Salesforce hands out its instance URL at login; make it the relay's, so every REST call passes it.
        salesforce.control.configure(instance_url=relays["salesforce"].url)
        config = write_config(directory, relays, webhook_port, instances, full_jobs)
        code, output = cli("check", "--config", str(config), "--create-missing")
        assert code == 0, output
        store = Store(f"sqlite:///{directory / 'state.db'}")
        world = World(directory, config, store, lonescale, relays)
        yield world
    finally:
        if world is not None and world.process is not None and world.process.poll() is None:
            world.process.kill()
            world.process.wait()
        for relay in relays.values():
            relay.stop()
        if store is not None:
            store.close()


@pytest.fixture
def world(
    tmp_path: Path, lonescale_sandbox: Served, salesforce_sandbox: Served, hubspot_sandbox: Served
) -> Iterator[World]:
    with open_world(tmp_path, lonescale_sandbox, salesforce_sandbox, hubspot_sandbox) as opened:
        yield opened


# --------------------------------------------------------------------------- the kill points


@dataclass(frozen=True)
class KillPoint:
    name: str
    reached: Callable[[World], bool]
    lonescale: dict[str, Any] = field(default_factory=dict)
    hold: tuple[str, Hold] | None = None  # (relay, what it holds)
    webhook_delay: float = 0.0  # seconds the webhook relay adds to each delivery
    check: Callable[[World, AtKill], None] = lambda world, at: None  # the kill landed where it says


def fills_a_field(instance: str) -> Callable[[bytes], bool]:
    """A batch write that fills at least one mapped field (not only the connector's own status fields)."""
    fields = {rule.field for rule in load_mapping(ROOT / "mappings" / MAPPINGS[instance]).write_back}
    return lambda body: any(written & fields for _, _, written in record_writes(instance, body))


def held(relay: str) -> Callable[[World], bool]:
    return lambda world: world.relays[relay].held.is_set()


def syncs_done_before_any_webhook(world: World) -> bool:
    runs = world.rows(schema.runs, schema.runs.c.kind == "sync")
    return len(runs) == 2 and all(r["status"] == "succeeded" for r in runs)


def no_webhook_yet(world: World, at: AtKill) -> None:
    assert at.inbox == 0 and not at.in_flight, "killed after every trigger, before the first webhook"


def some_webhooks_stored(world: World) -> bool:
    return world.count(schema.inbox) >= 15


def some_not_all_webhooks(world: World, at: AtKill) -> None:
    assert 0 < at.inbox < len(world.accepted()), "killed with some webhooks stored, others still to come"


def held_job(world: World) -> str:
    """Our job id, from the webhook URL in the trigger the LoneScale relay held."""
    body = world.relays["lonescale"].held_body
    assert body is not None
    found = re.search(r"/webhooks/lonescale/([^/?]+)", json.loads(body)["webhook_url"])
    assert found
    return found.group(1)


def trigger_never_reached_lonescale(world: World, at: AtKill) -> None:
    job = held_job(world)
    assert job in set().union(*at.in_flight.values()), "the held job was stored, its send unfinished"
    assert job not in {j for j, _ in world.accepted()}, "LoneScale never saw the held trigger"


def trigger_accepted_by_lonescale(world: World, at: AtKill) -> None:
    job = held_job(world)
    assert job in set().union(*at.in_flight.values()), "the held job was stored, its send unfinished"
    assert job in {j for j, _ in world.accepted()}, "LoneScale accepted the job whose answer was held"


def write_landed_unanswered(world: World, at: AtKill) -> None:
    assert at.held_writes, "a CRM batch write landed and its answer was held"
    journal = schema.write_journal
    pending = {(r["instance"], r["record_id"]) for r in world.rows(journal, journal.c.outcome == "pending")}
    assert at.held_writes <= pending, "the held batch was journaled ahead, as pending, before the CRM saw it"


def write_never_landed(world: World, at: AtKill) -> None:
    assert at.held_batch and not at.held_writes, "a CRM batch write was held before the CRM saw it"
    landed = {(instance, record) for instance, record, _ in at.landed}
    assert not at.held_batch & landed, "none of the held batch's records had been written"


# --------------------------------------------------------------------------- the test


def snapshot(world: World, point: KillPoint) -> AtKill:
    held_batch: set[tuple[str, str]] = set()
    if point.hold is not None:
        relay = world.relays[point.hold[0]]
        for instance, (name, _, _) in WRITE_ROUTES.items():
            if name == relay.name and relay.held_body is not None:
                held_batch = {(i, r) for i, r, _ in record_writes(instance, relay.held_body)}
    landed_unanswered = point.hold is not None and point.hold[1].forward
    return AtKill(
        world.in_flight(), world.count(schema.inbox), world.landed_writes(), held_batch,
        held_batch if landed_unanswered else set(), world.last_run(),
    )  # fmt: skip


def finished(world: World, at: AtKill) -> bool:
    if not world.lonescale_idle():
        return False
    if world.count(schema.inbox, schema.inbox.c.status == "new"):
        return False
    restarted = world.rows(schema.runs, schema.runs.c.kind == "sync", schema.runs.c.id > at.last_run)
    if {r["instance"] for r in restarted if r["status"] != "running"} != {"sf", "hs"}:
        return False
    waiting = {
        (c["job_id"], c["record_id"])
        for c in world.rows(schema.job_contacts, schema.job_contacts.c.status == "waiting")
    }
    return not waiting & set(world.accepted())


TRIGGER = ("POST", "/trigger/enrich")
KILL_POINTS = [
    KillPoint(
        "trigger POST held before LoneScale saw it",
        held("lonescale"),
        hold=("lonescale", Hold(*TRIGGER, forward=False, nth=3)),
        check=trigger_never_reached_lonescale,
    ),
    KillPoint(
        "trigger POST accepted, answer not yet read",
        held("lonescale"),
        hold=("lonescale", Hold(*TRIGGER, forward=True, nth=3)),
        check=trigger_accepted_by_lonescale,
    ),
    KillPoint(
        "after every trigger, before any webhook",
        syncs_done_before_any_webhook,
        lonescale={"webhook_delay_seconds": 5.0},
        check=no_webhook_yet,
    ),
    KillPoint(
        "while webhooks arrive",
        some_webhooks_stored,
        webhook_delay=0.1,
        check=some_not_all_webhooks,
    ),
    KillPoint(
        "HubSpot batch write held before the CRM saw it",
        held("hubspot"),
        hold=("hubspot", Hold(*WRITE_ROUTES["hs"][1:], forward=False, body=fills_a_field("hs"))),
        check=write_never_landed,
    ),
    KillPoint(
        "HubSpot batch write landed, answer not yet read",
        held("hubspot"),
        hold=("hubspot", Hold(*WRITE_ROUTES["hs"][1:], forward=True, body=fills_a_field("hs"))),
        check=write_landed_unanswered,
    ),
    KillPoint(
        "Salesforce batch write landed, answer not yet read",
        held("salesforce"),
        hold=("salesforce", Hold(*WRITE_ROUTES["sf"][1:], forward=True, body=fills_a_field("sf"))),
        check=write_landed_unanswered,
    ),
]


@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: p.name)
def test_a_killed_daemon_restarts_without_losing_or_repeating_anything(
    world: World, point: KillPoint
) -> None:
    world.lonescale.control.configure(
        delivery_backoff_seconds=0.05, delivery_max_attempts=20, **point.lonescale
    )
    world.relays["webhook"].delay = point.webhook_delay
    if point.hold is not None:
        relay, hold = point.hold
        world.relays[relay].hold = hold

    world.start()
    world.wait_until(f"the kill point: {point.name}", lambda: point.reached(world), timeout=60)
    world.kill()
    at = snapshot(world, point)
    point.check(world, at)
    for relay in world.relays.values():  # the held call fails (502) or answers a dead client
        relay.release.set()
        relay.hold = None
        relay.delay = 0.0

    world.start()  # same config, same store, same webhook port
    world.wait_until("the restarted daemon to apply every result", lambda: finished(world, at), timeout=90)
    assert world.terminate() == 0, world.tail()
    for instance in ("sf", "hs"):  # what the next scheduled sync would send
        code, output = cli("sync", instance, "--config", str(world.config))
        assert code == 0, output

    instance_of = world.instance_of_job()
    accepted = world.accepted()

    # No result lost: each contact LoneScale accepted got its result applied (or the CRM's refusal recorded).
    contacts = {(c["job_id"], c["record_id"]): c for c in world.rows(schema.job_contacts)}
    unresolved = [
        (pair, contacts[pair]["status"] if pair in contacts else "unknown to the store")
        for pair in accepted
        if pair not in contacts or contacts[pair]["status"] not in ("applied", "rejected", "superseded")
    ]
    assert not unresolved, f"results LoneScale delivered but never applied: {unresolved[:5]}"
    inbox = Counter(row["status"] for row in world.rows(schema.inbox))
    assert set(inbox) == {"applied"}, f"every stored webhook applied: {inbox}"
    gave_up = [
        d
        for d in world.lonescale.control.admin("deliveries")["deliveries"]
        if d["outcome"] in ("gave_up", "rejected")
    ]
    assert not gave_up, f"LoneScale could not deliver: {gave_up[:3]}"
    # …and no contact dropped: a record in any stored job reached LoneScale, or waits in the job killed
    # mid-POST (uncertain: it is never re-posted). Past its grace that job expires into `failures`, its
    # contacts kept in cooldown: it may have been billed, so only a person sends them again.
    reached = {(instance_of[job], record) for job, record in accepted}
    stored = {(instance_of[job], record) for job, record in contacts}
    uncertain = {r["id"] for r in world.rows(schema.jobs, schema.jobs.c.status == JobStatus.UNCERTAIN.value)}
    parked = {(instance_of[job], record) for job, record in contacts if job in uncertain}
    assert stored <= reached | parked, (
        f"records stored in a job but never sent: {sorted(stored - reached)[:5]}"
    )
    if parked - reached:
        client = LoneScaleClient(world.lonescale.url, Secret(credentials.LONESCALE_API_KEY))
        late = settle_overdue(
            world.store, client, now=lambda: datetime.now(UTC) + JOB_DEADLINE + GRACE + timedelta(minutes=1)
        )
        client.close()
        assert uncertain <= {job for job, _ in late.expired}, "the uncertain job expires after its grace"
        for instance, record in parked - reached:
            assert world.store.ledger.states(instance, [record])[record]["types"], "kept in cooldown"

    # No contact enriched twice, except in the one job per instance whose trigger POST was in flight.
    assert all(len(jobs) <= 1 for jobs in at.in_flight.values()), (
        f"one trigger in flight per instance: {at.in_flight}"
    )
    excused = {
        (instance_of[job], record) for job, record in contacts if job in set().union(*at.in_flight.values())
    }
    sends = Counter((instance_of[job], record) for job, record in accepted)
    twice = {key: n for key, n in sends.items() if n > (2 if key in excused else 1)}
    assert not twice, f"records LoneScale enriched more than once: {dict(list(twice.items())[:5])}"

    # No field written twice: once per job in the journal; every write the CRM took is journaled; the CRM
    # took no more writes than the journal shows, but for the batch in flight at the kill, re-sent once.
    journal = world.rows(schema.write_journal, schema.write_journal.c.outcome == "written")
    per_job = Counter((row["job_id"], row["record_id"], row["field"]) for row in journal)
    assert not [k for k, n in per_job.items() if n > 1], (
        f"fields journaled twice for one job: {[k for k, n in per_job.items() if n > 1][:5]}"
    )
    journaled = Counter((row["instance"], row["record_id"], row["field"]) for row in journal)
    landed = Counter((i, r, f) for i, r, fields in world.landed_writes() for f in fields)
    unjournaled = sorted(key for key in landed if not journaled[key])
    assert not unjournaled, f"fields written to the CRM but never journaled: {unjournaled[:5]}"
    extra = {
        k: (n, journaled[k]) for k, n in landed.items() if n > journaled[k] + ((k[0], k[1]) in at.held_writes)
    }
    assert not extra, (
        f"fields the CRM took more often than journaled (landed, journaled): {dict(list(extra.items())[:5])}"
    )
    for instance, mapping_file in MAPPINGS.items():  # fill_empty: a field once filled is never written again
        rules = load_mapping(ROOT / "mappings" / mapping_file).write_back
        filled = {rule.field for rule in rules if rule.policy is WritePolicy.FILL_EMPTY}
        again = [k for k, n in journaled.items() if k[0] == instance and k[2] in filled and n > 1]
        assert not again, f"fill_empty fields written more than once: {again[:5]}"
