"""The request-level `custom` a user configures for `POST /trigger/enrich` (`[lonescale] custom`).

The published EnrichmentCustomOptions (docs/lonescale.md#the-request-schema) is an open object: `id` (the
record or request id in the source system), `provider` (the downstream data provider, e.g. "lonescale"),
`enrichment_type` (that provider's own mode, e.g. "phone"; not the request's top-level list) and any further
key, each declared one a string. The connector owns `id`: every request carries its job's id there, and the
webhook checks an echoed one against the job its URL names. So the file may set any key but `id` (and
`contact_id`, which names a contact in each contact's own `custom`), and every value is a string, as
LoneScale's schema types the declared ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RequestCustom(BaseModel):
    """`provider` and `enrichment_type` as the published schema names them, any further key passed through."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, str] = Field(init=False)  # every further key a string too

    id: Any = None  # refused: the connector sets it
    # Refused: it names a contact, in each contact's own custom. Echoed at a one-contact envelope it would be
    # read as that contact's (connector.lonescale.parse_result) and match no one.
    contact_id: Any = None
    provider: str | None = None  # the downstream data provider LoneScale is to use, e.g. "lonescale"
    enrichment_type: str | None = None  # that provider's mode, e.g. "phone" (not the top-level list)

    @field_validator("id")
    @classmethod
    def _id_is_ours(cls, value: Any) -> Any:
        raise ValueError(
            f"id = {value!r} cannot be set: each request's custom.id is its job's id (the connector's own, "
            "which the webhook checks results against); remove it"
        )

    @field_validator("contact_id")
    @classmethod
    def _contact_id_is_a_contacts(cls, value: Any) -> Any:
        raise ValueError(
            f"contact_id = {value!r} cannot be set here: it names one contact, in each contact's own custom "
            "(the CRM record's id, set by the connector); remove it"
        )

    def configured(self) -> dict[str, str]:
        """What the file set, as sent (unset keys left out)."""
        return {k: v for k, v in self.model_dump(exclude={"id", "contact_id"}).items() if v is not None}
