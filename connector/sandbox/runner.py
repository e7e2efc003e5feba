"""Starts the three emulators, each on its own real HTTP server, and says where they are and what they accept."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType

from connector.sandbox import credentials
from connector.sandbox.hubspot.app import HubSpotEmulator
from connector.sandbox.kit import ServedApp
from connector.sandbox.lonescale.app import LoneScaleEmulator
from connector.sandbox.salesforce.app import SalesforceEmulator


@dataclass(frozen=True)
class SandboxPorts:
    hubspot: int = 0
    salesforce: int = 0
    lonescale: int = 0


@dataclass(frozen=True)
class SandboxEndpoints:
    """Base URLs and the credentials each emulator accepts, in the order `lonescale-sync sandbox` prints them."""

    hubspot: str
    salesforce: str
    lonescale: str
    lonescale_api_key: str
    hubspot_token: str
    salesforce_client_id: str
    salesforce_client_secret: str
    salesforce_username: str
    salesforce_private_key_path: str
    salesforce_refresh_token: str

    def as_lines(self) -> list[str]:
        return [f"{f.name}={getattr(self, f.name)}" for f in fields(self)]


class Sandbox:
    """All three emulators in this process. `with Sandbox(contacts=500) as sandbox: sandbox.endpoints.hubspot`."""

    def __init__(
        self,
        *,
        contacts: int = 200,
        seed: int = 1,
        realistic: bool = True,
        ports: SandboxPorts | None = None,
    ):
        self._tmp = tempfile.TemporaryDirectory(prefix="lonescale-sandbox-")
        key_path, public_pem = credentials.write_jwt_keypair(Path(self._tmp.name))
        self.private_key_path = key_path
        self.hubspot = HubSpotEmulator(
            contacts=contacts, seed=seed, realistic=realistic, token=credentials.HUBSPOT_TOKEN
        )
        self.salesforce = SalesforceEmulator(
            contacts=contacts,
            seed=seed,
            realistic=realistic,
            client_id=credentials.SALESFORCE_CLIENT_ID,
            client_secret=credentials.SALESFORCE_CLIENT_SECRET,
            username=credentials.SALESFORCE_USERNAME,
            jwt_public_key=public_pem,
        )
        self.lonescale = LoneScaleEmulator(
            seed=seed, realistic=realistic, api_key=credentials.LONESCALE_API_KEY
        )
        ports = ports or SandboxPorts()
        self._servers = {
            "hubspot": ServedApp(self.hubspot.asgi_app(), port=ports.hubspot, name="hubspot"),
            "salesforce": ServedApp(self.salesforce.asgi_app(), port=ports.salesforce, name="salesforce"),
            "lonescale": ServedApp(self.lonescale.asgi_app(), port=ports.lonescale, name="lonescale"),
        }
        self._endpoints: SandboxEndpoints | None = None

    @property
    def endpoints(self) -> SandboxEndpoints:
        if self._endpoints is None:
            raise RuntimeError("the sandbox is not started")
        return self._endpoints

    def start(self) -> SandboxEndpoints:
        urls = {}
        try:
            for name, server in self._servers.items():
                urls[name] = server.start()
        except Exception:
            self.stop()
            raise
        self.salesforce.base_url = urls["salesforce"]
        self._endpoints = SandboxEndpoints(
            hubspot=urls["hubspot"],
            salesforce=urls["salesforce"],
            lonescale=urls["lonescale"],
            lonescale_api_key=credentials.LONESCALE_API_KEY,
            hubspot_token=credentials.HUBSPOT_TOKEN,
            salesforce_client_id=credentials.SALESFORCE_CLIENT_ID,
            salesforce_client_secret=credentials.SALESFORCE_CLIENT_SECRET,
            salesforce_username=credentials.SALESFORCE_USERNAME,
            salesforce_private_key_path=str(self.private_key_path),
            salesforce_refresh_token=credentials.SALESFORCE_REFRESH_TOKEN,
        )
        return self._endpoints

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._tmp.cleanup()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
