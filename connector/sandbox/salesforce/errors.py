"""Salesforce REST error shapes: list bodies for the data API, objects for OAuth (docs/salesforce.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import Response

from connector.sandbox.kit import json_response

NOT_FOUND_MESSAGE = "The requested resource does not exist"


class SalesforceError(Exception):
    """One REST error; rendered as `[{"message","errorCode","fields"?}]` because the library indexes `[0]`."""

    def __init__(self, status: int, error_code: str, message: str, fields: Sequence[str] | None = None):
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = list(fields) if fields is not None else None

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]


class RecordError(Exception):
    """A per-record failure; collections report it as `{"statusCode","message","fields"}` (note: statusCode)."""

    def __init__(self, status_code: str, message: str, fields: Sequence[str] = ()):
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.fields = list(fields)

    def as_save_error(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}

    def as_rest_error(self, status: int = 400) -> SalesforceError:
        return SalesforceError(status, self.status_code, self.message, self.fields)


def error_response(error: SalesforceError, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(error.body(), status=error.status, headers=headers)


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    """OAuth errors are objects, not lists: simple-salesforce reads `.get('error')` (login.py token_login)."""
    return json_response({"error": error, "error_description": description}, status=status)


def not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


def invalid_session() -> SalesforceError:
    return SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
