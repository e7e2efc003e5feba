"""The `[lonescale]` table, and `[instances.lonescale]`, what one instance asks of LoneScale differently."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from connector.config_base import Section, http_url
from connector.models import EnrichmentType
from connector.request_custom import RequestCustom


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


class InstanceLoneScaleSettings(Section):
    """`[instances.lonescale]`: what one instance asks of LoneScale differently from `[lonescale]`."""

    custom: RequestCustom = Field(default_factory=RequestCustom)
