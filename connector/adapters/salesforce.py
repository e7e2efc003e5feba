"""Salesforce REST through simple-salesforce: SOQL pull on SystemModstamp, collection reads and writes.

Quirks handled here (salesforce-api.md): no timeouts and https-only URLs in the library (§1.7, §4: solved by
the session in `salesforce_session`); login flows always post to `https://{domain}.salesforce.com` (§1.2);
there is no composite method, and `composite/sobjects` answers 200 with per-record failures (§1.4, §2.3);
per-record errors say `statusCode` where single-record errors say `errorCode` (§2.3).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceRefusedRequest,
)

from connector.adapters.base import ServerClock, Window, two_at_a_time
from connector.adapters.salesforce_session import build_session
from connector.adapters.salesforce_tasks import create_in_batches, maybe_processed, task_record
from connector.errors import AuthError, ConnectorError, QuotaExhausted, RequestRejected, RetriableError
from connector.models import (
    CrmRecord,
    FieldInfo,
    FieldUpdate,
    FollowUp,
    RecordRef,
    WriteOutcome,
    WriteResult,
)
from connector.retry import DEFAULT_POLICY, RetryPolicy, call_with_retry

T = TypeVar("T")
log = logging.getLogger(__name__)

QUERY_BATCH = 2000  # Sforce-Query-Options maximum (§2.1)
READ_BATCH = 2000  # composite/sobjects/{object} retrieve takes 2,000 ids
WRITE_BATCH = 200  # composite/sobjects update takes 200 records (§2.3)
LOCK_RETRIES = 2  # UNABLE_TO_LOCK_ROW clears on retry (§2.4)
SYNTHETIC_LOGIN = "lonescale-login"  # stands for a non-Salesforce login host (the sandbox): rerouted below


@dataclass(frozen=True)
class SalesforceCredentials:
    client_id: str
    client_secret: str | None = None  # client_credentials
    username: str | None = None  # jwt
    private_key_path: Path | None = None  # jwt


def soql_datetime(moment: datetime) -> str:
    """SOQL datetime literals take no quotes; keep milliseconds, which `format_soql` would drop (§1.7)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_datetime(value: str) -> datetime:
    """'2020-03-11T11:49:59.000+0000' → aware UTC datetime."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parents (`"Account": {"Name": …}`, or null) become dotted keys (`Account.Name`)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def to_salesforce_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return soql_datetime(value)
    return value


def login_route(login_url: str) -> tuple[str, dict[str, str]]:
    """The `domain` simple-salesforce wants, and a reroute for hosts that are not `*.salesforce.com`."""
    host = urlsplit(login_url).netloc
    if host.endswith(".salesforce.com"):
        return host.removesuffix(".salesforce.com"), {}
    return SYNTHETIC_LOGIN, {f"{SYNTHETIC_LOGIN}.salesforce.com": host}


class SalesforceAdapter:
    def __init__(
        self,
        name: str,
        credentials: SalesforceCredentials,
        *,
        instance_url: str,
        login_url: str | None = None,
        object_name: str = "Contact",
        api_version: str = "62.0",
        timeout: tuple[float, float] = (5.0, 60.0),
        retry_policy: RetryPolicy = DEFAULT_POLICY,
    ):
        self.name = name
        self.object = object_name
        self._policy = retry_policy
        login_url = login_url or instance_url
        domain, reroute = login_route(login_url)
        session = build_session(instance_url, login_url, timeout=timeout, reroute=reroute)
        self.server_clock = ServerClock()
        session.hooks["response"].append(
            lambda response, **_: self.server_clock.observe(response.headers.get("Date"))
        )
        self._connect: Callable[[], Salesforce] = lambda: self._login(
            credentials, domain, session, api_version
        )
        self._sf: Salesforce | None = None
        self._connecting = threading.Lock()
        self.api_usage: tuple[int, int] | None = None

    @staticmethod
    def _login(
        creds: SalesforceCredentials, domain: str, session: requests.Session, version: str
    ) -> Salesforce:
        if creds.private_key_path is not None:
            return Salesforce(
                username=creds.username,
                consumer_key=creds.client_id,
                privatekey_file=str(creds.private_key_path),
                domain=domain,
                session=session,
                version=version,
            )
        return Salesforce(
            consumer_key=creds.client_id,
            consumer_secret=creds.client_secret,
            domain=domain,
            session=session,
            version=version,
        )

    def close(self) -> None:
        if self._sf is not None:
            self._sf.session.close()

    # -- calls -----------------------------------------------------------------------------------------
    def _call(self, what: str, operation: Callable[[Salesforce], T], *, idempotent: bool = True) -> T:
        def attempt() -> T:
            sent = False  # whether the operation itself went out (a login that times out made nothing)
            try:
                sf = self._session()
                sent = True
                result = operation(sf)
                usage = sf.api_usage.get("api-usage")
                if usage is not None:
                    self.api_usage = (usage.used, usage.total)
                return result
            except (requests.ConnectionError, requests.Timeout) as exc:
                if sent and not idempotent and maybe_processed(exc):
                    # The request went out and no answer came back: Salesforce may have created the records,
                    # and a second POST would create them twice.
                    raise ConnectorError(
                        f"Salesforce {what}: {type(exc).__name__} after the request was sent; not retried, "
                        "as the records may exist already"
                    ) from exc
                raise RetriableError(f"Salesforce {what}: {type(exc).__name__}") from exc
            except SalesforceAuthenticationFailed as exc:
                raise AuthError(f"Salesforce login refused: {exc.code} {exc.message}") from exc
            except SalesforceExpiredSession as exc:  # the library already re-logged in and gave up
                self._sf = None
                raise AuthError(f"Salesforce session refused: {_first_message(exc.content)}") from exc
            except SalesforceRefusedRequest as exc:
                if "REQUEST_LIMIT_EXCEEDED" in str(exc.content):
                    raise QuotaExhausted(
                        f"Salesforce daily API limit reached: {_first_message(exc.content)}"
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

        return call_with_retry(
            attempt, what=f"Salesforce {what}", policy=self._policy, refresh_credentials=self._reset
        )

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
        described = self._describe(self.object)
        result: dict[str, FieldInfo] = {}
        for name in fields:
            relation, _, parent_field = name.partition(".")
            if not parent_field:
                if name.lower() in described:
                    result[name] = described[name.lower()][0]
                continue
            link = next(
                (info for info, rel, _ in described.values() if rel and rel.lower() == relation.lower()), None
            )
            target = described[link.name.lower()][2] if link else None
            parent = self._describe(target) if target else {}
            if parent_field.lower() in parent:
                info = parent[parent_field.lower()][0]
                result[name] = FieldInfo(name, info.type, writable=False, length=info.length)
        return result

    def _describe(self, object_name: str) -> dict[str, tuple[FieldInfo, str | None, str | None]]:
        body = self._call(
            f"describe {object_name}", lambda sf: sf.restful(f"sobjects/{object_name}/describe")
        )
        return {
            field["name"].lower(): (
                FieldInfo(
                    field["name"],
                    field["type"],
                    writable=bool(field["updateable"]),
                    length=field.get("length") or None,
                    nillable=bool(field["nillable"]),
                ),
                field.get("relationshipName"),
                (field.get("referenceTo") or [None])[0],
            )
            for field in (body or {}).get("fields", [])
        }

    def pull_changed(self, window: Window, fields: Sequence[str]) -> Iterator[CrmRecord]:
        selected = list(dict.fromkeys(["Id", "SystemModstamp", *fields]))
        where = f"SystemModstamp >= {soql_datetime(window.start)} AND SystemModstamp < {soql_datetime(window.end)}"
        if self.object == "Lead":
            where += (
                " AND IsConverted = false"  # converted leads cannot be updated (CANNOT_UPDATE_CONVERTED_LEAD)
            )
        soql = f"SELECT {', '.join(selected)} FROM {self.object} WHERE {where} ORDER BY SystemModstamp, Id"
        headers = {"Sforce-Query-Options": f"batchSize={QUERY_BATCH}"}
        page = self._call("query", lambda sf: sf.query(soql, headers=headers))
        while True:
            for record in page["records"]:
                flat = flatten(record)
                changed = parse_datetime(flat["SystemModstamp"])
                yield CrmRecord(RecordRef(self.name, self.object, flat["Id"]), changed, flat)
            if page.get("done", True):
                return
            next_url = page["nextRecordsUrl"]
            page = self._call(
                "query page",
                lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True, headers=headers),  # type: ignore[misc]
            )

    def read_current(self, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        wanted = list(dict.fromkeys(["Id", *fields]))
        current: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(ids), READ_BATCH):
            chunk = list(ids[start : start + READ_BATCH])
            records = self._call(
                "collection read",
                lambda sf, c=chunk: sf.restful(  # type: ignore[misc]
                    f"composite/sobjects/{self.object}", method="POST", json={"ids": c, "fields": wanted}
                ),
            )
            for record in records or []:
                if record is not None:  # unknown and deleted ids come back as null entries
                    flat = flatten(record)
                    current[flat["Id"]] = flat
        return current

    def write_back(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        results: dict[RecordRef, WriteResult] = {}
        pending = list(updates)
        for attempt in range(LOCK_RETRIES + 1):
            retry: list[FieldUpdate] = []
            batches = [pending[start : start + WRITE_BATCH] for start in range(0, len(pending), WRITE_BATCH)]
            for batch, answer in zip(batches, two_at_a_time(self._write_batch, batches), strict=True):
                for update, result in zip(batch, answer, strict=True):
                    if result.outcome is WriteOutcome.RETRY and attempt < LOCK_RETRIES:
                        retry.append(update)
                    results[update.ref] = result
            if not retry:
                break
            log.info("Salesforce: %d record(s) locked by another process; retrying them", len(retry))
            pending = retry
        return [results[u.ref] for u in updates]

    def _write_batch(self, batch: Sequence[FieldUpdate]) -> list[WriteResult]:
        records = [
            {
                "attributes": {"type": self.object},
                "id": u.ref.id,
                **{k: to_salesforce_value(v) for k, v in u.values.items()},
            }
            for u in batch
        ]
        answer = self._call(
            "collection update",
            lambda sf: sf.restful(
                "composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records}
            ),
        )
        if not isinstance(answer, list) or len(answer) != len(batch):
            raise RetriableError(
                f"Salesforce collection update answered {answer!r:.200}, not one result per record"
            )
        return [self._result(u.ref, item) for u, item in zip(batch, answer, strict=True)]

    @staticmethod
    def _result(ref: RecordRef, item: Mapping[str, Any]) -> WriteResult:
        if item.get("success"):
            return WriteResult(ref, WriteOutcome.WRITTEN)
        errors = item.get("errors") or [{}]
        code = str(errors[0].get("statusCode") or errors[0].get("errorCode") or "UNKNOWN")
        reason = "; ".join(f"{e.get('statusCode', '')}: {e.get('message', '')}" for e in errors)
        outcome = WriteOutcome.RETRY if code == "UNABLE_TO_LOCK_ROW" else WriteOutcome.REJECTED
        return WriteResult(ref, outcome, reason, code)

    # -- follow-ups ------------------------------------------------------------------------------------
    def create_follow_ups(self, follow_ups: Sequence[FollowUp]) -> list[WriteResult]:
        """One Task per follow-up, 200 per call; one result each, in order; locked rows retried."""
        return create_in_batches(follow_ups, self._create_tasks, LOCK_RETRIES)

    def _create_tasks(self, batch: Sequence[FollowUp]) -> list[WriteResult]:
        body = {"allOrNone": False, "records": [task_record(follow_up) for follow_up in batch]}
        answer = self._call(
            "task create",
            lambda sf: sf.restful("composite/sobjects", method="POST", json=body),
            idempotent=False,
        )
        if not isinstance(answer, list) or len(answer) != len(batch):
            # The Tasks may exist: say so rather than retry and create them twice.
            raise ConnectorError(
                f"Salesforce task create answered {answer!r:.200}, not one result per record"
            )
        return [self._result(f.ref, item) for f, item in zip(batch, answer, strict=True)]


def _first_message(content: Any) -> str:
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return f"{content[0].get('errorCode', '')}: {content[0].get('message', '')}"
    return str(content)[:300]
