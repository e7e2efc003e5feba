"""HubSpot-shaped error bodies: the exception handlers raise, and the one place that renders them."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connector.sandbox.kit import json_response

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
BATCH_LIMIT_MESSAGE = "The maximum number of inputs supported in a batch is {limit}. Please reduce the number of items and try again"


class HubSpotError(Exception):
    """An error answer. Key order follows HubSpot's bodies: status, message, correlationId, …, category."""

    def __init__(
        self,
        status: int,
        message: str,
        category: str | None = None,
        *,
        context: Mapping[str, Sequence[str]] | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        sub_category: str | None = None,
        links: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.context = context
        self.errors = errors
        self.sub_category = sub_category
        self.links = links

    def body(self, correlation_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "error", "message": self.message, "correlationId": correlation_id}
        if self.context is not None:
            body["context"] = {key: list(values) for key, values in self.context.items()}
        if self.errors is not None:
            body["errors"] = [dict(item) for item in self.errors]
        if self.links is not None:
            body["links"] = dict(self.links)
        if self.category is not None:
            body["category"] = self.category
        if self.sub_category is not None:
            body["subCategory"] = self.sub_category
        return body


def validation(message: str) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR")


def bad_json(detail: str) -> HubSpotError:
    return validation(f"Invalid input JSON: {detail}")


def missing_attributes(names: Sequence[str]) -> HubSpotError:
    return bad_json(f"some of required attributes are not set [{', '.join(names)}]")


def too_many_inputs(limit: int = 100) -> HubSpotError:
    return validation(BATCH_LIMIT_MESSAGE.format(limit=limit))


def not_found() -> HubSpotError:
    """The spec's Error schema requires `category` beside `correlationId` and `message`, on every error
    (e.g. PublicApiSpecs/CRM/Contacts/Rollouts/424/v3/contacts.json in HubSpot's public spec collection)."""
    return HubSpotError(404, "resource not found", "OBJECT_NOT_FOUND")


SCOPES_LINK = "https://developers.hubspot.com/scopes"


def missing_scopes(required: Sequence[str]) -> HubSpotError:
    """A token without the scope a call needs: 403 MISSING_SCOPES naming the scopes, any one of which does
    (https://developers.hubspot.com/docs/api-reference/error-handling)."""
    return HubSpotError(
        403,
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes "
        f"here: {SCOPES_LINK}.",
        "MISSING_SCOPES",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": list(required)},
            }
        ],
        links={"scopes": SCOPES_LINK},
    )


def invalid_property_values(problems: Sequence[Mapping[str, Any]]) -> HubSpotError:
    """One 400 for every bad value of the request, the items embedded as JSON in the message
    (docs/hubspot.md#error-bodies)."""
    embedded = json.dumps(list(problems), separators=(",", ":"), ensure_ascii=False)
    details = [
        {"message": item["message"], "code": item["error"], "context": {"propertyName": [item["name"]]}}
        for item in problems
    ]
    return HubSpotError(
        400, f"Property values were not valid: {embedded}", "VALIDATION_ERROR", errors=details
    )


class CorrelationIds:
    """UUID-shaped ids drawn from (seed, counter), so two runs with one seed log the same ids."""

    def __init__(self, seed: int):
        self.seed = seed
        self.count = 0

    def next(self) -> str:
        self.count += 1
        digest = hashlib.blake2b(f"{self.seed}:{self.count}".encode(), digest_size=16).digest()
        return str(uuid.UUID(bytes=digest, version=4))


def render(error: HubSpotError, correlation_id: str, headers: Mapping[str, str] | None = None) -> Response:
    merged = {"X-HubSpot-Correlation-Id": correlation_id, **(headers or {})}
    return json_response(error.body(correlation_id), status=error.status, headers=merged)


async def read_json(request: Request) -> Any:
    """The parsed body; HubSpot answers malformed JSON with a 400 that names the line and column."""
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except json.JSONDecodeError as exc:
        raise HubSpotError(
            400, f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError:
        raise HubSpotError(400, "Invalid input JSON: the body is not UTF-8") from None


def json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_json("the body must be a JSON object")
    return body
