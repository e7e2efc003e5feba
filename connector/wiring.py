"""Builds what a configured instance needs to run: its adapter, its mapping, and the shared clients."""

from __future__ import annotations

from dataclasses import dataclass

from connector.adapters.base import CrmAdapter
from connector.adapters.hubspot import HubSpotAdapter
from connector.adapters.salesforce import SalesforceAdapter, SalesforceCredentials
from connector.config import Config, InstanceSettings
from connector.durations import parse_duration
from connector.lonescale import LoneScaleClient
from connector.mapping import FieldMapping
from connector.retry import Answered, unheard
from connector.store import Store


@dataclass
class Instance:
    settings: InstanceSettings
    mapping: FieldMapping
    adapter: CrmAdapter

    @property
    def name(self) -> str:
        return self.settings.name


def build_adapter(
    config: Config, settings: InstanceSettings, mapping: FieldMapping, answered: Answered = unheard
) -> CrmAdapter:
    """The instance's CRM adapter, reading the object and the changed-at field its mapping names;
    `answered` hears the status of each of its API calls' answers (the runtime's metrics)."""
    if settings.crm == "hubspot":
        hubspot = settings.hubspot_settings
        return HubSpotAdapter(
            settings.name,
            config.secret(hubspot.access_token_env).reveal(),
            base_url=hubspot.base_url,
            requests_per_10s=hubspot.requests_per_10s,
            changed_field=mapping.changed_field,
            answered=answered,
        )
    sf = settings.salesforce
    assert sf is not None  # guaranteed by config validation
    credentials = SalesforceCredentials(
        client_id=config.secret(sf.client_id_env).reveal(),
        client_secret=config.secret(sf.client_secret_env).reveal()
        if sf.auth == "client_credentials" and sf.client_secret_env
        else None,
        username=sf.username,
        private_key_path=config.resolve(sf.private_key_path)
        if sf.auth == "jwt" and sf.private_key_path
        else None,
        jwt_audience=sf.jwt_audience,
    )
    return SalesforceAdapter(
        settings.name,
        credentials,
        instance_url=sf.instance_url,
        login_url=sf.login_url,
        object_name=mapping.object,
        changed_field=mapping.changed_field,
        api_version=sf.api_version,
        answered=answered,
    )


def build_instance(config: Config, settings: InstanceSettings, answered: Answered = unheard) -> Instance:
    mapping = config.mapping(settings)
    return Instance(settings, mapping, build_adapter(config, settings, mapping, answered))


def build_lonescale(config: Config, answered: Answered = unheard) -> LoneScaleClient:
    settings = config.settings.lonescale
    return LoneScaleClient(
        settings.base_url,
        config.secret(settings.api_key_env),
        timeout=settings.timeout_seconds,
        answered=answered,
    )


def store_url(config: Config) -> str:
    url = config.store_url()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and config.path is not None:
        # A relative SQLite path is relative to the config file, not to wherever the daemon was started.
        url = f"sqlite:///{config.path.parent / url.removeprefix('sqlite:///')}"
    return url


def build_store(config: Config) -> Store:
    cluster = config.settings.cluster
    return (
        Store(store_url(config), lease_ttl=cluster.lease_delta)
        if cluster.enabled
        else Store(store_url(config))
    )


def durations(settings: InstanceSettings) -> tuple[float, float]:
    """(lookback, settle) in seconds."""
    return parse_duration(settings.lookback).total_seconds(), parse_duration(settings.settle).total_seconds()
