"""A cluster on one machine, for the cluster tests and the cluster benchmark: the store in a PostgreSQL schema of
its own, N HubSpot portals and N Salesforce orgs (connector/sandbox/portals.py: one emulator each, one event
loop for all), the LoneScale emulator, a TCP load balancer in front of the webhook receivers, and the
connector's processes (`work`, `serve`) started, killed, frozen and stopped as real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import create_engine, text

from connector.sandbox import credentials
from connector.sandbox.control import SandboxControl
from connector.sandbox.hubspot.app import HubSpotEmulator
from connector.sandbox.portals import Portals
from connector.sandbox.salesforce.app import SalesforceEmulator
from connector.store import Store
from tests.support import SANDBOX_ENV, create_status_fields
from tests.test_commands import cli

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Balancer:
    """A TCP load balancer on a real socket, as in front of webhook replicas: each connection goes to the next
    receiver that accepts it (one refusing connections, dead, is skipped), and is relayed byte for byte. A
    receiver killed mid-request breaks its connections, as a real one would."""

    def __init__(self, backends: list[int]):
        self.backends = list(backends)
        self.port = free_port()
        self._turn = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="balancer", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.backends)):
            port = self.backends[next(self._turn) % len(self.backends)]
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            with contextlib.suppress(OSError):
                sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass
class Process:
    role: str  # "work" or "serve"
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None  # a receiver's

    @property
    def pid(self) -> int:
        return self.popen.pid

    def said(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    """What a cluster test works with. `hubspot[i]`/`salesforce[i]` are instance `hs-i`/`sf-i`'s CRM."""

    root: Path
    store_url: str
    store: Store
    hubspot: list[HubSpotEmulator]
    salesforce: list[SalesforceEmulator]
    urls: dict[str, str]  # instance → its CRM's base URL
    lonescale: Any  # tests.conftest.Served
    balancer: Balancer
    processes: list[Process] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.root / "cluster.toml"

    @property
    def instances(self) -> list[str]:
        return list(self.urls)

    def control(self, instance: str) -> SandboxControl:
        return SandboxControl(self.urls[instance])

    def emulator(self, instance: str) -> Any:
        kind, index = instance.split("-")
        return (self.hubspot if kind == "hs" else self.salesforce)[int(index)]

    # -- processes ------------------------------------------------------------------------------------
    def start(self, role: str, *options: str) -> Process:
        log = self.root / f"{role}-{len(self.processes)}.log"
        port = free_port() if role == "serve" else None
        if role == "run":  # a worker and a receiver: it listens where the config's [webhook] says
            port = int(tomllib.loads(self.config.read_text())["webhook"]["listen"].rpartition(":")[2])
        args = [
            sys.executable,
            "-m",
            "connector.cli",
            "--log-level",
            "info",
            role,
            "--config",
            str(self.config),
        ]
        if role == "serve":
            args += ["--listen", f"127.0.0.1:{port}"]
        with log.open("wb") as sink:
            popen = subprocess.Popen([*args, *options], cwd=self.root, env={**os.environ, **SANDBOX_ENV},
                                     stdout=subprocess.DEVNULL, stderr=sink)  # fmt: skip
        process = Process(role, popen, log, port)
        self.processes.append(process)
        if port is not None:
            self.balancer.backends.append(port)
            self.until(f"receiver on {port} answers", lambda: self.healthy(port))
        return process

    def healthy(self, port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def until(self, what: str, check: Callable[[], T], timeout: float = 60.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            for process in self.processes:
                code = process.popen.poll()
                if code not in (None, 0, -signal.SIGKILL):
                    raise AssertionError(
                        f"{process.role} {process.pid} exited {code}:\n{process.said()[-3000:]}"
                    )
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)
                    process.popen.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.popen.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.popen.kill()

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.store.database.engine.begin() as db:
            result = db.execute(text(query), params)
            return list(result) if result.returns_rows else []


def write_cluster_config(
    cluster: Cluster,
    *,
    schedule: str = "every 1h",
    extra: str = "",
    batch_size: int = 50,
    lonescale_extra: str = "",
    stall_timeout: str = "6s",
    lease_ttl: str = "12s",
) -> None:
    """`extra` goes in `[cluster]`, `lonescale_extra` in `[lonescale]` (the benchmark's `assume_custom_echoed`);
    the short stall timeout and lease suit the chaos tests, the benchmark lengthens them on a loaded machine."""
    parts = [
        f"""
[lonescale]
base_url = "{cluster.lonescale.url}"
api_key_env = "LS_KEY"
enrichment_type = ["email", "phone"]
batch_size = {batch_size}
{lonescale_extra}

[webhook]
listen = "127.0.0.1:{free_port()}"
public_url = "{cluster.balancer.url}"

[status]
enabled = false

[store]
url = "{cluster.store_url}"

[cluster]
enabled = true
tick_seconds = 1
stall_timeout = "{stall_timeout}"
lease_ttl = "{lease_ttl}"
{extra}
"""
    ]
    for name, url in cluster.urls.items():
        crm = "hubspot" if name.startswith("hs-") else "salesforce"
        mapping = (
            ROOT / "mappings" / ("hubspot-contacts.toml" if crm == "hubspot" else "salesforce-contact.toml")
        )
        parts.append(f"""
[[instances]]
name = "{name}"
crm = "{crm}"
mapping = "{mapping}"
settle = "0s"
schedule = "{schedule}"
""")
        if crm == "hubspot":
            parts.append(f'[instances.hubspot]\nbase_url = "{url}"\naccess_token_env = "HS_TOKEN"\n')
        else:
            parts.append(
                f'[instances.salesforce]\ninstance_url = "{url}"\nclient_id_env = "SF_ID"\n'
                'client_secret_env = "SF_SECRET"\n'
            )
    cluster.config.write_text("".join(parts))


@contextlib.contextmanager
def cluster_world(
    root: Path, postgres: str, lonescale: Any, *, pairs: int, contacts: int, realistic: bool = True
) -> Iterator[Cluster]:
    """`pairs` HubSpot portals and as many Salesforce orgs, `contacts` each, on a fresh schema."""
    schema = f"c_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres)
    with admin.begin() as db:
        db.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in postgres else "?"
    url = f"{postgres}{separator}options=-csearch_path%3D{schema}"
    hubspot = [HubSpotEmulator(contacts=contacts, seed=100 + i, realistic=realistic, token=credentials.HUBSPOT_TOKEN)
               for i in range(pairs)]  # fmt: skip
    salesforce = [
        SalesforceEmulator(
            contacts=contacts,
            seed=200 + i,
            realistic=realistic,
            client_id=credentials.SALESFORCE_CLIENT_ID,
            client_secret=credentials.SALESFORCE_CLIENT_SECRET,
            username=credentials.SALESFORCE_USERNAME,
        )
        for i in range(pairs)
    ]
    hs_portals, sf_orgs = (
        Portals(hubspot, name="hubspot"),
        Portals(salesforce, name="salesforce", first_host=130),
    )
    hs_urls, sf_urls = hs_portals.start(), sf_orgs.start()
    balancer = Balancer([])
    store = Store(url)
    urls = {f"hs-{i}": u for i, u in enumerate(hs_urls)} | {f"sf-{i}": u for i, u in enumerate(sf_urls)}
    cluster = Cluster(root, url, store, hubspot, salesforce, urls, lonescale, balancer)
    try:
        for name in cluster.instances:
            if name.startswith("sf-"):
                create_status_fields(_Served(cluster.urls[name], cluster.emulator(name)))
        write_cluster_config(cluster)
        code, output = cli("db", "upgrade", "--config", str(cluster.config))  # our tables and procrastinate's
        assert code == 0 and "procrastinate's schema" in output, output
        # As an admin does once per CRM: the connector's status properties created in each portal.
        code, output = cli("check", "--config", str(cluster.config), "--create-missing")
        assert code == 0, output
        yield cluster
    finally:
        cluster.stop_all()
        store.close()
        balancer.close()
        hs_portals.stop()
        sf_orgs.stop()
        with admin.begin() as db:
            db.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@dataclass
class _Served:
    """What tests.support.create_status_fields reads of a served emulator: its admin client."""

    url: str
    emulator: Any

    @property
    def control(self) -> SandboxControl:
        return SandboxControl(self.url)
