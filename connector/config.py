"""The TOML configuration: validated at start, every problem reported at once with its key path; frozen after.

Secrets never sit in the file: it names environment variables (`api_key_env = "LONESCALE_API_KEY"`), and the
values are read into `Secret`s that mask themselves in every repr and log line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, field_validator

from connector.config_base import Section
from connector.config_instance import BudgetSettings, HubSpotSettings, InstanceSettings, SalesforceSettings
from connector.config_lonescale import InstanceLoneScaleSettings, LoneScaleSettings
from connector.config_serving import StatusSettings, WebhookSettings
from connector.config_store import ClusterSettings, StoreSettings
from connector.errors import ConfigError
from connector.mapping import FieldMapping, load_mapping
from connector.problems import pydantic_problems, validate_toml
from connector.redact import Secret

__all__ = [
    "BudgetSettings", "ClusterSettings", "Config", "HubSpotSettings", "InstanceLoneScaleSettings",
    "InstanceSettings", "LoneScaleSettings", "SalesforceSettings", "Settings", "StatusSettings",
    "StoreSettings", "WebhookSettings", "load_config",
]  # fmt: skip


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
