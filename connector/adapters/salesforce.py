"""Salesforce REST through simple-salesforce: SOQL pull on SystemModstamp, collection reads and writes.

Quirks handled here: no timeouts and https-only URLs in the library (docs/salesforce.md#client-setup: solved
by the session in `salesforce_session`); login flows always post to `https://{domain}.salesforce.com`, and a
JWT's audience is not the host it is posted to (docs/salesforce.md#auth, `salesforce_login`); there is no
composite method, and `composite/sobjects` answers 200 with per-record failures, whose errors say `statusCode`
where single-record errors say `errorCode` (docs/salesforce.md#sobject-collections). The library parses
every 2xx body as JSON and raises requests' JSONDecodeError when it is not (an HTML page a proxy serves),
and its own error handling indexes bodies it expects to be lists (docs/salesforce.md#library-errors): `_call`
turns each of these into a connector error, and the answers' shapes are read inside the call, so an
unexpected one is one too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceRefusedRequest,
)

from connector import fencing
from connector.adapters.base import ServerClock, Window
from connector.adapters.salesforce_login import SalesforceCredentials, login, login_route
from connector.adapters.salesforce_session import build_session
from connector.adapters.salesforce_tasks import create_in_batches, maybe_processed, task_record
from connector.adapters.salesforce_values import DescribedField, sendable, soql_datetime, to_salesforce_value
from connector.adapters.salesforce_writes import save_result, write_in_rounds
from connector.errors import AuthError, ConnectorError, QuotaExhausted, RequestRejected, RetriableError
from connector.models import CrmRecord, FieldInfo, FieldUpdate, FollowUp, RecordRef, WriteResult
from connector.retry import DEFAULT_POLICY, Answered, RetryPolicy, call_with_retry, unheard

T = TypeVar("T")
log = logging.getLogger(__name__)

QUERY_BATCH = 2000  # Sforce-Query-Options maximum (docs/salesforce.md#query-and-paging)
READ_BATCH = 2000  # composite/sobjects/{object} retrieve takes 2,000 ids
# UNABLE_TO_LOCK_ROW clears on retry (docs/salesforce.md#error-bodies); a record with a refused field goes
# again too.
LOCK_RETRIES = 2
DESCRIBE_TTL = 3600.0  # seconds a describe is trusted: one call an hour, and a field changed in Setup is seen
# Whatever the library raises while reading an answer it did not expect: its own parsing (`result.json()[0]`
# on a 401, `json_response['access_token']` at login) and ours, done inside the call (see `_call`).
UNEXPECTED_SHAPE = (KeyError, IndexError, TypeError, AttributeError, ValueError)
# REQUEST_LIMIT_EXCEEDED is one errorCode for the day's allocation and for concurrency limits (too many
# requests at once, too many long ones at once); only the message says which (SalesforceLabs/OrgCheck#181 and
# #432, mautic/mautic#5006). Only the daily cap waits for tomorrow.
DAILY_CAP = "TotalRequests"
__all__ = ["SalesforceAdapter", "SalesforceCredentials"]


def parse_datetime(value: str) -> datetime:
    """'2020-03-11T11:49:59.000+0000' → aware UTC datetime. `fromisoformat` (Python 3.11 reads `+0000`) is
    forty times cheaper than `strptime`, and is asked once per record pulled."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:  # Salesforce always gives the offset; a time without one is not a moment
        raise ValueError(f"no UTC offset in {value!r}")
    return moment.astimezone(UTC)


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parents (`"Account": {"Name": …}`, or null) become dotted keys (`Account.Name`)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        # `type(...) is dict` first: the ABC check alone is a visible share of a large pull's CPU.
        if type(value) is dict or isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class SalesforceAdapter:
    def __init__(
        self,
        name: str,
        credentials: SalesforceCredentials,
        *,
        instance_url: str,
        login_url: str | None = None,
        object_name: str = "Contact",
        changed_field: str = "SystemModstamp",
        api_version: str = "62.0",
        timeout: tuple[float, float] = (5.0, 60.0),
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        answered: Answered = unheard,
    ):
        self.name = name
        self.object, self.changed = object_name, changed_field  # the mapping's `object` and `changed_field`
        self._policy = retry_policy
        login_url = login_url or instance_url
        domain, reroute = login_route(login_url)
        session = build_session(instance_url, login_url, timeout=timeout, reroute=reroute)
        self.server_clock = ServerClock()
        self.unique_field: str | None = None  # no standard Contact or Lead field is unique
        session.hooks["response"].append(
            lambda response, **_: self.server_clock.observe(response.headers.get("Date"))
        )
        # Every answer on the session (logins and token refreshes too), as a hook: a call of the SDK may
        # make several requests (a query's pages), each one an API call Salesforce counts.
        session.hooks["response"].append(lambda response, **_: answered(response.status_code))
        self._connect: Callable[[], Salesforce] = lambda: login(credentials, domain, session, api_version)
        self._sf: Salesforce | None = None
        self._connecting = threading.Lock()
        self._described: tuple[float, dict[str, DescribedField]] | None = None  # (when, own fields)
        self._describing = threading.Lock()
        self.api_usage: tuple[int, int] | None = None

    def close(self) -> None:
        if self._sf is not None:
            self._sf.session.close()

    # -- calls -----------------------------------------------------------------------------------------
    def _call(self, what: str, operation: Callable[[Salesforce], T], *, idempotent: bool = True) -> T:
        """`operation` through the retry loop, every exception it can meet translated. Reading the answer's
        shape belongs inside `operation`: a KeyError there is an answer we did not expect, not a bug elsewhere."""

        def attempt() -> T:
            sent = False  # whether the operation itself went out (a login that times out made nothing)
            fencing.check()  # right before the call: our lease still holds
            try:
                sf = self._session()
                sent = True
                result = operation(sf)
                usage = sf.api_usage.get("api-usage")
                if usage is not None:
                    self.api_usage = (usage.used, usage.total)
                return result
            except requests.exceptions.JSONDecodeError as exc:  # a 2xx whose body is not JSON
                raise self._unreadable(
                    what, f"a body that is not JSON: {exc.doc[:80]!r}", sent, idempotent
                ) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                if sent and not idempotent and maybe_processed(exc):
                    # The request went out and no answer came back: Salesforce may have created the records,
                    # and a second POST would create them twice.
                    raise ConnectorError(
                        f"Salesforce {what}: {type(exc).__name__} after the request was sent; not retried, "
                        "as the records may exist already"
                    ) from exc
                raise RetriableError(f"Salesforce {what}: {type(exc).__name__}") from exc
            except requests.RequestException as exc:  # an answer that broke off, or would not decode
                raise self._unreadable(
                    what, f"an answer it could not read ({type(exc).__name__})", sent, idempotent
                ) from exc
            except SalesforceAuthenticationFailed as exc:
                if isinstance(exc.code, int) and (exc.code < 300 or exc.code >= 500):
                    # The library's code for a token answer that is not JSON: its HTTP status, not an
                    # OAuth error such as invalid_grant (simple-salesforce login.py, token_login).
                    raise RetriableError(
                        f"Salesforce login answered {exc.code} with a body that is not JSON"
                    ) from exc
                description = exc.content.decode(errors="replace") if isinstance(exc.content, bytes) else ""
                raise AuthError(f"Salesforce login refused: {exc.code}: {description}") from exc
            except SalesforceExpiredSession as exc:  # the library already re-logged in and gave up
                self._sf = None
                raise AuthError(f"Salesforce session refused: {_first_message(exc.content)}") from exc
            except SalesforceRefusedRequest as exc:
                if "REQUEST_LIMIT_EXCEEDED" in str(exc.content):
                    if DAILY_CAP in str(exc.content):
                        raise QuotaExhausted(
                            f"Salesforce daily API limit reached: {_first_message(exc.content)}"
                        ) from exc
                    # Refused before it was carried out, so a retry after a pause is safe even for a create.
                    raise RetriableError(
                        f"Salesforce {what}: a concurrency limit: {_first_message(exc.content)}"
                    ) from exc
                raise RequestRejected(
                    f"Salesforce {what} refused: {_first_message(exc.content)}", exc.status
                ) from exc
            except SalesforceError as exc:
                if exc.status >= 500:
                    raise RetriableError(f"Salesforce {what} failed with {exc.status}") from exc
                raise RequestRejected(
                    f"Salesforce {what}: {_first_message(exc.content)}", exc.status
                ) from exc
            except UNEXPECTED_SHAPE as exc:
                detail = f"an answer of an unexpected shape ({type(exc).__name__}: {exc})"
                raise self._unreadable(what, detail, sent, idempotent) from exc

        return call_with_retry(
            attempt, what=f"Salesforce {what}", policy=self._policy, refresh_credentials=self._reset
        )

    @staticmethod
    def _unreadable(what: str, detail: str, sent: bool, idempotent: bool) -> ConnectorError:
        """An answer that cannot be read: worth another try, unless it may have created records."""
        if sent and not idempotent:
            return ConnectorError(
                f"Salesforce {what} answered with {detail}; not retried, as the records may exist already"
            )
        return RetriableError(f"Salesforce {what} answered with {detail}")

    def _reset(self) -> None:
        self._sf = None

    def _session(self) -> Salesforce:
        """The logged-in client, logging in once however many batches ask at the same moment."""
        with self._connecting:
            if self._sf is None:
                self._sf = self._connect()
            return self._sf

    # -- the seam --------------------------------------------------------------------------------------
    def check(self) -> None:
        self._call("access check", lambda sf: sf.query(f"SELECT Id FROM {self.object} LIMIT 1"))

    def describe(self, fields: Sequence[str]) -> dict[str, FieldInfo]:
        described = self._own_fields(fresh=True)
        result: dict[str, FieldInfo] = {}
        for name in fields:
            relation, _, parent_field = name.partition(".")
            if not parent_field:
                if name.lower() in described:
                    result[name] = described[name.lower()].info()
                continue
            link = next(
                (
                    f
                    for f in described.values()
                    if f.relationship and f.relationship.lower() == relation.lower()
                ),
                None,
            )
            parent = self._describe(link.references) if link and link.references else {}
            if parent_field.lower() in parent:
                info = parent[parent_field.lower()].info()
                result[name] = FieldInfo(name, info.type, writable=False, length=info.length)
        return result

    def _own_fields(self, *, fresh: bool = False) -> dict[str, DescribedField]:
        """The object's fields by lower-case name, described once an hour however many batches ask."""
        with self._describing:
            now = time.monotonic()
            if fresh or self._described is None or now - self._described[0] > DESCRIBE_TTL:
                self._described = (now, self._describe(self.object))
            return self._described[1]

    def _describe(self, object_name: str) -> dict[str, DescribedField]:
        def fields(sf: Salesforce) -> dict[str, DescribedField]:
            body = sf.restful(f"sobjects/{object_name}/describe")
            return {
                field["name"].lower(): DescribedField.from_describe(field) for field in (body or {})["fields"]
            }

        return self._call(f"describe {object_name}", fields)

    def pull_changed(self, window: Window, fields: Sequence[str]) -> Iterator[CrmRecord]:
        changed = self.changed
        selected = list(dict.fromkeys(["Id", changed, *fields]))
        where = f"{changed} >= {soql_datetime(window.start)} AND {changed} < {soql_datetime(window.end)}"
        if self.object == "Lead":
            where += (
                " AND IsConverted = false"  # converted leads cannot be updated (CANNOT_UPDATE_CONVERTED_LEAD)
            )
        soql = f"SELECT {', '.join(selected)} FROM {self.object} WHERE {where} ORDER BY {changed}, Id"
        headers = {"Sforce-Query-Options": f"batchSize={QUERY_BATCH}"}
        records, next_url = self._call("query", lambda sf: self._page(sf.query(soql, headers=headers)))
        while True:
            yield from records
            if next_url is None:
                return
            records, next_url = self._call(
                "query page",
                lambda sf, url=next_url: self._page(  # type: ignore[misc]
                    sf.query_more(url, identifier_is_url=True, headers=headers)
                ),
            )

    def _page(self, page: Mapping[str, Any]) -> tuple[list[CrmRecord], str | None]:
        records = []
        for record in page["records"]:
            flat = flatten(record)
            changed = parse_datetime(flat[self.changed])
            records.append(CrmRecord(RecordRef(self.name, self.object, flat["Id"]), changed, flat))
        return records, None if page.get("done", True) else str(page["nextRecordsUrl"])

    def read_current(self, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        wanted = list(dict.fromkeys(["Id", *fields]))
        current: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(ids), READ_BATCH):
            chunk = list(ids[start : start + READ_BATCH])
            records = self._call(
                "collection read",
                lambda sf, c=chunk: _records(  # type: ignore[misc]
                    sf.restful(
                        f"composite/sobjects/{self.object}", method="POST", json={"ids": c, "fields": wanted}
                    )
                ),
            )
            current.update((record["Id"], record) for record in records)
        return current

    def write_back(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """Values the describe says cannot fit are not sent; fields Salesforce refuses are dropped and the
        rest of their record sent again (salesforce_writes.py); each refusal is reported with its reason."""
        fields = self._own_fields() if updates else {}
        return write_in_rounds(
            updates, self._write_batch, lambda values: sendable(values, fields, self.object), LOCK_RETRIES + 1
        )

    def _write_batch(self, batch: list[FieldUpdate]) -> list[Mapping[str, Any]]:
        records = [
            {
                "attributes": {"type": self.object},
                "id": u.ref.id,
                **{k: to_salesforce_value(v) for k, v in u.values.items()},
            }
            for u in batch
        ]
        body = {"allOrNone": False, "records": records}
        return self._call(
            "collection update",
            lambda sf: _save_results(sf.restful("composite/sobjects", method="PATCH", json=body), len(batch)),
        )

    # -- follow-ups ------------------------------------------------------------------------------------
    def create_follow_ups(self, follow_ups: Sequence[FollowUp]) -> list[WriteResult]:
        """One Task per follow-up, 200 per call; one result each, in order; locked rows retried."""
        return create_in_batches(follow_ups, self._create_tasks, LOCK_RETRIES)

    def _create_tasks(self, batch: Sequence[FollowUp]) -> list[WriteResult]:
        body = {"allOrNone": False, "records": [task_record(follow_up) for follow_up in batch]}
        answer = self._call(
            "task create",
            lambda sf: _save_results(sf.restful("composite/sobjects", method="POST", json=body), len(batch)),
            idempotent=False,  # an answer we cannot read is not retried: the Tasks may exist
        )
        return [save_result(f.ref, item) for f, item in zip(batch, answer, strict=True)]


def _records(answer: Any) -> list[dict[str, Any]]:
    """A collection read's records, flattened; unknown and deleted ids come back as null entries."""
    if not isinstance(answer, list):
        raise TypeError(f"a collection read answered {answer!r:.200}, not a list")
    return [flatten(record) for record in answer if record is not None]


def _save_results(answer: Any, expected: int) -> list[Mapping[str, Any]]:
    """One SaveResult object per record sent, or the answer is not one we can trust."""
    if (
        not isinstance(answer, list)
        or len(answer) != expected
        or not all(isinstance(i, Mapping) for i in answer)
    ):
        raise TypeError(f"answered {answer!r:.200}, not one result per record")
    return answer


def _first_message(content: Any) -> str:
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return f"{content[0].get('errorCode', '')}: {content[0].get('message', '')}"
    return str(content)[:300]
