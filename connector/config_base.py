"""What every configuration section shares: strict, frozen models, and the one check of an http(s) URL."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from connector.models import is_absolute_http_url


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def http_url(value: str) -> str:
    if not is_absolute_http_url(value):
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    return value.rstrip("/")
