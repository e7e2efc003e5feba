"""Fixtures: each emulator on its own real server (OS-chosen port), once per session, reset before each test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from connector.sandbox import credentials
from connector.sandbox.control import SandboxControl
from connector.sandbox.kit import Emulator, ServedApp

SANDBOX_CONTACTS = 300
SANDBOX_SEED = 7


@dataclass
class Served:
    """An emulator serving on a real socket: its base URL, its admin client, and the in-process object."""

    url: str
    control: SandboxControl
    emulator: Any

    def fresh(self) -> Served:
        self.control.reset(contacts=SANDBOX_CONTACTS, seed=SANDBOX_SEED)
        return self


def _serve(emulator: Emulator, name: str) -> Iterator[Served]:
    server = ServedApp(emulator.asgi_app(), name=name)
    url = server.start()
    emulator.base_url = url  # type: ignore[attr-defined]
    control = SandboxControl(url)
    try:
        yield Served(url, control, emulator)
    finally:
        control.close()
        server.stop()


@pytest.fixture(scope="session")
def jwt_private_key_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    path, public_pem = credentials.write_jwt_keypair(tmp_path_factory.mktemp("jwt"))
    return str(path), public_pem


@pytest.fixture(scope="session")
def _hubspot_server() -> Iterator[Served]:
    from connector.sandbox.hubspot.app import HubSpotEmulator

    emulator = HubSpotEmulator(
        contacts=SANDBOX_CONTACTS, seed=SANDBOX_SEED, realistic=True, token=credentials.HUBSPOT_TOKEN
    )
    yield from _serve(emulator, "hubspot")


@pytest.fixture(scope="session")
def _salesforce_server(jwt_private_key_path: tuple[str, bytes]) -> Iterator[Served]:
    from connector.sandbox.salesforce.app import SalesforceEmulator

    emulator = SalesforceEmulator(
        contacts=SANDBOX_CONTACTS,
        seed=SANDBOX_SEED,
        realistic=True,
        client_id=credentials.SALESFORCE_CLIENT_ID,
        client_secret=credentials.SALESFORCE_CLIENT_SECRET,
        username=credentials.SALESFORCE_USERNAME,
        jwt_public_key=jwt_private_key_path[1],
    )
    yield from _serve(emulator, "salesforce")


@pytest.fixture(scope="session")
def _lonescale_server() -> Iterator[Served]:
    from connector.sandbox.lonescale.app import LoneScaleEmulator

    emulator = LoneScaleEmulator(seed=SANDBOX_SEED, realistic=True, api_key=credentials.LONESCALE_API_KEY)
    yield from _serve(emulator, "lonescale")


@pytest.fixture
def hubspot_sandbox(_hubspot_server: Served) -> Served:
    """The HubSpot emulator, reset to its seeded data and realistic defaults."""
    return _hubspot_server.fresh()


@pytest.fixture
def salesforce_sandbox(_salesforce_server: Served) -> Served:
    """The Salesforce emulator, reset to its seeded data and realistic defaults."""
    return _salesforce_server.fresh()


@pytest.fixture
def lonescale_sandbox(_lonescale_server: Served) -> Served:
    """The LoneScale emulator, reset to realistic defaults and full credits."""
    return _lonescale_server.fresh()


# The end-to-end `pipeline` fixture (store + webhook + LoneScale client) and `instance` (once per CRM), shared
# by several test files.
from tests.support import instance, pipeline  # noqa: E402, F401

POSTGRES = os.environ.get("LONESCALE_SYNC_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL on SQLite and, when LONESCALE_SYNC_TEST_POSTGRES_URL names a database, on PostgreSQL in a
    schema of its own, so tests never see each other's rows."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if not POSTGRES:
        pytest.skip("set LONESCALE_SYNC_TEST_POSTGRES_URL to run the store tests on PostgreSQL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as db:
        db.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES else "?"
    yield f"{POSTGRES}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as db:
        db.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
