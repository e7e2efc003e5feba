"""The TOML configuration: validated at start, every problem reported at once with its key path; frozen after.

Secrets never sit in the file: it names environment variables (`api_key_env = "LONESCALE_API_KEY"`), and the
values are read into `Secret`s that mask themselves in every repr and log line.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from connector.config_base import Section, http_url
from connector.config_serving import StatusSettings, WebhookSettings
from connector.config_store import ClusterSettings, StoreSettings
from connector.durations import parse_duration
from connector.errors import ConfigError
from connector.mapping import FieldMapping, load_mapping
from connector.models import EnrichmentType, is_absolute_http_url
from connector.problems import pydantic_problems, validate_toml
from connector.redact import Secret
from connector.request_custom import RequestCustom
from connector.schedules import trigger_for


class LoneScaleSettings(Section):
    base_url: str = "https://public-api.lonescale.com"
    api_key_env: str = "LONESCALE_API_KEY"
    enrichment_type: list[EnrichmentType] = Field(
        default_factory=lambda: [EnrichmentType.EMAIL], min_length=1
    )
    detect_job_change: bool = False
    # Jobs hold one contact each until a delivery shows that LoneScale's results carry each contact's
    # `custom` back (connector.batching); true skips that wait. Only for an account LoneScale has confirmed.
    assume_custom_echoed: bool = False
    batch_size: int = Field(default=100, ge=1, le=1000)
    # Sent as every request's `custom`, beside its `id` (our job id); an instance's own keys win over these.
    custom: RequestCustom = Field(default_factory=RequestCustom)
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # LoneScale does not publish its prices (docs/lonescale.md#credits): these estimates drive projections
    # only.
    credits_per_type: dict[EnrichmentType, float] = Field(
        default_factory=lambda: {
            EnrichmentType.EMAIL: 1.0,
            EnrichmentType.PHONE: 10.0,
            EnrichmentType.PROFILE: 1.0,
        }
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("enrichment_type")
    @classmethod
    def _unique(cls, value: list[EnrichmentType]) -> list[EnrichmentType]:
        if len(set(value)) != len(value):
            raise ValueError("each enrichment type may appear once (the API requires uniqueItems)")
        return value

    @model_validator(mode="after")
    def _job_change_needs_profile(self) -> LoneScaleSettings:
        if self.detect_job_change and EnrichmentType.PROFILE not in self.enrichment_type:
            raise ValueError(
                "detect_job_change needs 'profile' in enrichment_type (LoneScale ignores it otherwise)"
            )
        return self


class HubSpotSettings(Section):
    base_url: str = "https://api.hubapi.com"
    access_token_env: str = "HUBSPOT_ACCESS_TOKEN"
    # The portal's burst limit for private apps (docs/hubspot.md#rate-limits): 100 per 10 s on Free and
    # Starter, 190 on Professional and Enterprise, 250 with the API limit increase pack. Any count is taken:
    # a portal whose quota other integrations share may leave them part of it.
    requests_per_10s: int = Field(default=100, ge=1, le=1000)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return http_url(value)


class SalesforceSettings(Section):
    instance_url: str
    auth: Literal["client_credentials", "jwt"] = "client_credentials"
    login_url: str | None = None  # default: instance_url (client credentials must use the My Domain host)
    client_id_env: str = "SALESFORCE_CLIENT_ID"
    client_secret_env: str | None = "SALESFORCE_CLIENT_SECRET"
    username: str | None = None
    private_key_path: Path | None = None
    # The JWT's audience, never the host the token is posted to: "login" (production orgs), "test" (sandbox
    # orgs) or an Experience Cloud site's URL (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm).
    jwt_audience: str = "login"
    api_version: str = "62.0"

    @model_validator(mode="before")
    @classmethod
    def _object_is_the_mappings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "object" in data:
            raise ValueError(
                '`object` is the mapping\'s to say (`object = "Lead"` in mappings/salesforce-lead.toml): '
                "remove it here"
            )
        return data

    @field_validator("instance_url", "login_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("jwt_audience")
    @classmethod
    def _audience(cls, value: str) -> str:
        if value in ("login", "test"):
            return value
        if not (value.startswith("https://") and is_absolute_http_url(value)):
            raise ValueError(f"{value!r} is not 'login', 'test' or an https:// Experience Cloud site URL")
        if (urlsplit(value).hostname or "").endswith(".salesforce.com"):
            # Salesforce refuses a My Domain or login URL as audience ("audience is invalid").
            raise ValueError(f"{value!r} is not a JWT audience: use 'login' (production) or 'test' (sandbox)")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2,3}\.0", value):
            raise ValueError(f"{value!r} is not an API version such as '62.0' (no leading 'v')")
        return value

    @model_validator(mode="after")
    def _jwt_fields(self) -> SalesforceSettings:
        if self.auth == "jwt" and not (self.username and self.private_key_path):
            raise ValueError("auth = 'jwt' needs username and private_key_path")
        return self


class BudgetSettings(Section):
    """What one instance may spend: caps and cooldowns (docs/architecture.md#nothing-paid-twice)."""

    # Contacts sent to LoneScale in one run, and in one calendar month (UTC); None = no cap.
    max_contacts_per_run: int | None = Field(default=1000, ge=1)
    max_contacts_per_month: int | None = Field(default=None, ge=1)
    # A contact is sent again for a type only after this long; after a "not found", after `not_found_cooldown`.
    cooldown: str = "90d"
    not_found_cooldown: str = "30d"
    # Send a contact only for the types whose mapped target fields are empty in the CRM.
    only_missing: bool = True

    @field_validator("cooldown", "not_found_cooldown")
    @classmethod
    def _at_least_a_day(cls, value: str) -> str:
        # A shorter cooldown would re-send every unfound contact on every run: credits burnt in a loop.
        if parse_duration(value) < timedelta(days=1):
            raise ValueError(f"{value!r} is shorter than a day")
        return value

    @property
    def cooldown_delta(self) -> timedelta:
        return parse_duration(self.cooldown)

    @property
    def not_found_delta(self) -> timedelta:
        return parse_duration(self.not_found_cooldown)


class InstanceLoneScaleSettings(Section):
    """`[instances.lonescale]`: what one instance asks of LoneScale differently from `[lonescale]`."""

    custom: RequestCustom = Field(default_factory=RequestCustom)


class InstanceSettings(Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
    crm: Literal["salesforce", "hubspot"]
    mapping: Path
    schedule: str = "every 15m"
    start_date: datetime | None = None
    lookback: str = "5m"
    settle: str = "1m"
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    hubspot: HubSpotSettings | None = None
    salesforce: SalesforceSettings | None = None
    lonescale: InstanceLoneScaleSettings | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        trigger_for(value)  # the scheduler's own parser: what passes here is what the daemon runs
        return value

    @field_validator("lookback", "settle")
    @classmethod
    def _durations(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("start_date")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _crm_section(self) -> InstanceSettings:
        if self.crm == "salesforce" and self.salesforce is None:
            raise ValueError(
                "crm = 'salesforce' needs an [instances.salesforce] table (instance_url at least)"
            )
        if self.crm == "hubspot" and self.salesforce is not None:
            raise ValueError("crm = 'hubspot' cannot take an [instances.salesforce] table")
        if self.crm == "salesforce" and self.hubspot is not None:
            raise ValueError("crm = 'salesforce' cannot take an [instances.hubspot] table")
        return self

    @property
    def hubspot_settings(self) -> HubSpotSettings:
        return self.hubspot or HubSpotSettings()

    def request_custom(self, lonescale: LoneScaleSettings) -> dict[str, str]:
        """The `custom` this instance's requests carry, but for `id`: `[lonescale] custom`, with this
        instance's `[instances.lonescale] custom` keys winning key by key."""
        own = self.lonescale.custom.configured() if self.lonescale else {}
        return {**lonescale.custom.configured(), **own}


class Settings(Section):
    lonescale: LoneScaleSettings = Field(default_factory=LoneScaleSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    instances: list[InstanceSettings] = Field(min_length=1)

    @field_validator("instances")
    @classmethod
    def _unique_names(cls, value: list[InstanceSettings]) -> list[InstanceSettings]:
        names = [instance.name for instance in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"instance names must be unique; repeated: {', '.join(duplicates)}")
        return value


class Config:
    """Validated settings plus the secrets they name, read once from the environment, and each instance's
    mapping (read and checked with the settings, so their problems are listed together)."""

    def __init__(
        self,
        settings: Settings,
        secrets: Mapping[str, Secret],
        path: Path | None,
        mappings: Mapping[str, FieldMapping] | None = None,
    ):
        self.settings = settings
        self.secrets = dict(secrets)
        self.path = path
        self.mappings = dict(mappings or {})  # instance name → its mapping

    def secret(self, env: str) -> Secret:
        return self.secrets[env]

    def store_url(self) -> str:
        """`[store] url`, or the value of the variable `url_env` names (its password registered as a secret)."""
        store = self.settings.store
        return store.url if store.url_env is None else self.secret(store.url_env).reveal()

    def resolve(self, path: Path) -> Path:
        """A path from the file, relative to the file's folder."""
        base = self.path.parent if self.path else Path.cwd()
        return path if path.is_absolute() else base / path

    def mapping(self, settings: InstanceSettings) -> FieldMapping:
        known = self.mappings.get(settings.name)
        return known if known is not None else load_mapping(self.resolve(settings.mapping))

    def __repr__(self) -> str:
        return f"Config(path={self.path}, instances={[i.name for i in self.settings.instances]})"


def _url_passwords(url: str) -> list[str]:
    """The password in a database URL as written and percent-decoded (a driver's message may hold either)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []  # the store reports a URL it cannot read, with the fix
    return [password, unquote(password)] if password else []


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _environment_problems(
    raw: dict[str, Any], env: Mapping[str, str], base: Path, credentials: bool = True
) -> tuple[list[str], dict[str, Secret]]:
    """Variables that are not set and files that do not exist, read from the raw file so they are reported
    beside schema errors rather than after them. Without `credentials`, only the variables a reader of the
    store needs (the store's URL, the status page's token): `status` reads no CRM and no LoneScale."""
    problems: list[str] = []
    secrets: dict[str, Secret] = {}

    def need(path: str, name: Any) -> None:
        if not isinstance(name, str) or not name:
            return
        value = env.get(name)
        if not value:
            problems.append(f"{path}: environment variable {name} is not set")
        else:
            secrets[name] = Secret(value, env=name)

    def exists(path: str, value: Any) -> None:
        if isinstance(value, str) and value:
            file = Path(value) if Path(value).is_absolute() else base / value
            if not file.is_file():
                problems.append(f"{path}: file {file} does not exist")

    store_url_env = _table(raw.get("store")).get("url_env")
    need("store.url_env", store_url_env)
    if isinstance(store_url_env, str) and store_url_env in secrets:
        for password in _url_passwords(secrets[store_url_env].reveal()):
            Secret(password, env=store_url_env)  # masked alone too: a driver may print it without the URL
    cluster = _table(raw.get("cluster"))
    if cluster.get("enabled") is True:
        written = _table(raw.get("store")).get("url", StoreSettings.model_fields["url"].default)
        url = secrets[store_url_env].reveal() if store_url_env in secrets else written
        if isinstance(url, str) and not url.startswith("postgresql"):
            # Several processes share the store: SQLite has one writer and lives on one machine's disk.
            problems.append(
                f"cluster.enabled: true needs a PostgreSQL store; [store] url is {url.split(':', 1)[0]}:…: "
                "set it to postgresql+psycopg://user@host/db, or leave [cluster] out for one process"
            )
    need("status.token_env", _table(raw.get("status")).get("token_env"))
    defaults = LoneScaleSettings.model_fields["api_key_env"].default
    if credentials:
        need("lonescale.api_key_env", _table(raw.get("lonescale")).get("api_key_env", defaults))
    instances = raw.get("instances")
    for index, item in enumerate(instances if isinstance(instances, list) else []):
        prefix, instance = f"instances[{index}]", _table(item)
        exists(f"{prefix}.mapping", instance.get("mapping"))
        if not credentials:
            continue
        if instance.get("crm") == "hubspot":
            token_env = _table(instance.get("hubspot")).get(
                "access_token_env", HubSpotSettings.model_fields["access_token_env"].default
            )
            need(f"{prefix}.hubspot.access_token_env", token_env)
        elif instance.get("crm") == "salesforce":
            sf = _table(instance.get("salesforce"))
            fields = SalesforceSettings.model_fields
            need(
                f"{prefix}.salesforce.client_id_env", sf.get("client_id_env", fields["client_id_env"].default)
            )
            if sf.get("auth", "client_credentials") == "client_credentials":
                secret_env = sf.get("client_secret_env", fields["client_secret_env"].default)
                need(f"{prefix}.salesforce.client_secret_env", secret_env)
            else:
                exists(f"{prefix}.salesforce.private_key_path", sf.get("private_key_path"))
    return problems, secrets


def _mapping_problems(raw: dict[str, Any], base: Path) -> tuple[list[str], dict[str, FieldMapping]]:
    """Each instance's mapping, read now from the raw file (whatever else is wrong with it): its problems are
    listed beside the settings' own, in one pass."""
    problems: list[str] = []
    mappings: dict[str, FieldMapping] = {}
    instances = raw.get("instances")
    for index, item in enumerate(instances if isinstance(instances, list) else []):
        instance = _table(item)
        name = instance.get("mapping")
        if not isinstance(name, str) or not name:
            continue
        file = Path(name) if Path(name).is_absolute() else base / name
        if not file.is_file():
            continue  # said already, with the key's path
        where = f"instances[{index}].mapping ({file})"
        try:
            mapping = load_mapping(file)
        except ConfigError as exc:
            problems += [f"{where}: {problem}" for problem in exc.problems]
            continue
        crm = instance.get("crm")
        if crm in ("salesforce", "hubspot") and mapping.crm != crm:
            problems.append(f"{where}: a {mapping.crm} mapping for a {crm} instance")
            continue
        mappings[str(instance.get("name"))] = mapping
    return problems, mappings


def load_config(path: Path, env: Mapping[str, str] | None = None, *, credentials: bool = True) -> Config:
    """Read, validate and freeze the configuration and its mappings; raises ConfigError listing every problem
    found in all of them, each with its key path and the value found there. `credentials=False` is for a
    reader of the store (`status`): the CRMs' and LoneScale's variables need not be set."""
    env = os.environ if env is None else env
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"file {path} does not exist"], source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source=str(path)) from None
    problems, secrets = _environment_problems(raw, env, path.parent, credentials)
    found, mappings = _mapping_problems(raw, path.parent)
    try:
        settings = validate_toml(Settings, raw)
    except ValidationError as exc:
        problems = pydantic_problems(exc) + problems
    problems += found
    if problems:
        raise ConfigError(problems, source=str(path))
    return Config(settings, secrets, path, mappings)


__all__ = ["BudgetSettings", "ClusterSettings", "Config", "HubSpotSettings", "InstanceLoneScaleSettings",
           "InstanceSettings", "LoneScaleSettings", "SalesforceSettings", "Settings", "StatusSettings", "StoreSettings",
           "WebhookSettings", "load_config"]  # fmt: skip
