"""An `[[instances]]` table: one CRM instance, its CRM's own settings, its schedule and its budget."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from connector.config_base import Section, http_url
from connector.config_lonescale import InstanceLoneScaleSettings, LoneScaleSettings
from connector.durations import parse_duration
from connector.models import is_absolute_http_url
from connector.schedules import trigger_for


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
