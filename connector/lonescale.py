"""The LoneScale client (httpx): trigger enrichment, poll a run, read credits; and the tolerant payload parser.

The API leaves a lot undocumented (docs/lonescale.md#what-the-docs-leave-open): the start response may be an
object or a string, webhooks may carry one contact or a whole job, in camelCase or the legacy snake_case, with
`custom` where it pleases. Everything that comes in is normalised here; nothing past this module sees a raw
payload.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from connector import jsoncodec
from connector.errors import (
    AuthError,
    ConnectorError,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    RetriableError,
)
from connector.models import Contact, EnrichmentResult, EnrichmentType
from connector.redact import Secret
from connector.retry import DEFAULT_POLICY, Answered, RetryPolicy, unheard
from connector.user_agent import user_agent

# camelCase (current) → our names; the legacy shape is handled apart (docs/lonescale.md#result-payloads).
_CURRENT = {
    "email": "email", "emailStatus": "email_status", "phone": "phone", "phoneType": "phone_type",
    "phoneCountryCode": "phone_country_code", "linkedinUrl": "linkedin_url", "firstName": "first_name",
    "lastName": "last_name", "fullName": "full_name", "jobTitle": "job_title", "companyName": "company_name",
    "companyDomain": "company_domain", "companyLinkedinUrl": "company_linkedin_url",
    "companyIndustry": "company_industry", "companyEmployeeCount": "company_employee_count",
    "companyEmployeeRange": "company_employee_range", "companyCountry": "company_country",
    "companyCity": "company_city",
}  # fmt: skip
_LEGACY = {
    "most_probable_email": "email", "most_probable_email_status": "email_status",
    "most_probable_phone": "phone", "most_probable_phone_type": "phone_type",
    "most_probable_phone_country_code": "phone_country_code", "firstname": "first_name", "lastname": "last_name",
}  # fmt: skip
_SOURCES = (*_CURRENT.items(), *_LEGACY.items())  # in precedence order: a current key over its legacy twin
_ENVELOPE_KEYS = ("contacts", "results", "data")

JSON_BODY = {"content-type": "application/json"}


class PayloadError(ValueError):
    """A webhook or poll body that is not any shape LoneScale documents."""


@dataclass(frozen=True)
class Payload:
    job_id: str | None
    results: list[EnrichmentResult]
    # The request-level `custom` echoed at a per-job envelope (never a contact's own): it speaks for the job.
    custom: Mapping[str, Any] | None = None

    def not_for(self, job_id: str) -> str | None:
        """Why this body is not the job's, when its echoed request `custom.id` names another request (each
        request carries its job's id there): a delivery meant for another job, whose results would be
        written on this job's records. None when it names this job, or names none."""
        echoed = (self.custom or {}).get("id")
        if echoed is None or str(echoed) == job_id:
            return None
        return f"its custom.id {str(echoed)[:80]!r} names another request than job {job_id}"

    @property
    def provider(self) -> str | None:
        """The downstream provider LoneScale says it used, where it echoes the request's `custom`."""
        provider = (self.custom or {}).get("provider")
        return provider[:64] if isinstance(provider, str) and provider else None


def _nonblank(value: Any) -> bool:
    return value is not None and value not in ("", [])


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _legacy_profile(item: Mapping[str, Any], values: dict[str, Any]) -> None:
    profile = item.get("profile")
    if not isinstance(profile, Mapping):
        return
    position = _table(profile.get("position"))
    company = _table(position.get("company"))
    for key, value in (
        ("linkedin_url", profile.get("linkedin_url")),
        ("first_name", profile.get("firstname")),
        ("last_name", profile.get("lastname")),
        ("job_title", position.get("title")),
        ("company_name", company.get("name")),
        ("company_domain", company.get("domain")),
        ("company_linkedin_url", company.get("linkedin_url")),
    ):
        if _nonblank(value):
            values.setdefault(key, value)


def parse_result(
    item: Mapping[str, Any], envelope_custom: Mapping[str, Any] | None = None
) -> EnrichmentResult:
    values: dict[str, Any] = {}
    for source, target in _SOURCES:  # `_nonblank` inlined: run for every key of every result applied
        value = item.get(source)
        if value is not None and value not in ("", []) and target not in values:
            values[target] = value
    _legacy_profile(item, values)
    if "email" not in values and _nonblank(item.get("predicted_email")):
        # A pattern-built guess, free and unverified: keep it marked so `only_if` rules can refuse it.
        values["email"], values["email_status"] = item["predicted_email"], "predicted"
    # Only a contact's own `custom.contact_id` names the contact. A request-level `custom` (the envelope's)
    # speaks for the whole job, and its `id` is the request's, not a record's (the published
    # EnrichmentCustomOptions: docs/lonescale.md#the-request-schema); the caller passes it only for an
    # envelope holding a single contact.
    contact_id = _table(item.get("custom")).get("contact_id") or _table(envelope_custom).get("contact_id")
    job_change = item.get("jobChangeDetected", item.get("job_change_detected"))
    if job_change is True:
        # Only a true is news (docs/lonescale.md#job-change): `only_if = { job_change_detected = ["true"] }`
        # gates the new-company rules.
        values["job_change_detected"] = "true"
    found = item.get("status") != "failed" and any(
        k not in ("first_name", "last_name", "job_change_detected") for k in values
    )
    return EnrichmentResult(
        contact_id=str(contact_id) if contact_id is not None else None,
        found=found,
        values=values,
        job_change_detected=job_change if isinstance(job_change, bool) else None,
    )


def parse_payload(body: bytes | str | Any) -> Payload:
    """Any documented delivery: one contact, `{"contacts": [...]}` (with or without a job id), or a list."""
    data = jsoncodec.loads(body) if isinstance(body, bytes | str) else body
    job_id: str | None = None
    envelope_custom: Mapping[str, Any] | None = None
    items: Iterable[Any]
    if isinstance(data, list):
        items = data
    elif isinstance(data, Mapping):
        # A sparse `{}` is a real delivery (nothing is required: docs/lonescale.md#result-payloads);
        # `{"contacts": "x"}` is a broken envelope.
        broken = [k for k in _ENVELOPE_KEYS if k in data and not isinstance(data[k], list)]
        if broken:
            raise PayloadError(f"{broken[0]!r} must be an array of contacts")
        key = next((k for k in _ENVELOPE_KEYS if isinstance(data.get(k), list)), None)
        if key is None:
            items = [data]
        else:
            items = data[key]
            job_id = str(data["id"]) if data.get("id") is not None else None
            envelope_custom = data.get("custom") if isinstance(data.get("custom"), Mapping) else None
    else:
        raise PayloadError(f"expected a JSON object or array, got {type(data).__name__}")
    results = []
    items = list(items)
    shared = envelope_custom if len(items) == 1 else None  # one contact's envelope may speak for it
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise PayloadError(f"contact {index} is {type(item).__name__}, not an object")
        results.append(parse_result(item, shared))
    if not results:
        raise PayloadError("no contacts in the payload")
    return Payload(job_id, results, envelope_custom)


# --------------------------------------------------------------------------- the HTTP client


class TriggerUncertain(ConnectorError):
    """The trigger POST left us and its answer was lost (a 5xx, a reset, a read timeout): LoneScale may have
    started the job, and may bill it. Deliberately not retriable: it is never posted again; its webhook or
    the overdue path settles it (docs/architecture.md#nothing-paid-twice)."""


class StartedWithoutId(TriggerUncertain):
    """LoneScale answered 2xx, so it took the job, but gave no id to poll it by (the start body is an
    unresolved `$ref` at https://docs.lonescale.com/api-reference/endpoint/create): only its webhook brings
    the results back."""


class Refused(RequestRejected):
    """LoneScale refused a request (a 4xx other than 401, 403, 429); `answer` is its own message."""

    def __init__(self, message: str, status: int, answer: str):
        super().__init__(message, status)
        self.answer = answer


# Errors raised before any byte of the request left: connect refused, DNS, the TLS handshake, no pooled
# connection free. Every other transport error may come after LoneScale read the body.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# A job id as LoneScale gives one (`{"id": "abc-123"}` in https://docs.lonescale.com/cli/recipes), never a
# sentence like "Enrichment started for 3 contacts", the kind of plain string /trigger/contact-sourcing answers.
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _job_id(response: httpx.Response) -> str:
    """The id in a 2xx start answer; StartedWithoutId when it has none we could poll."""
    try:
        started = response.json()
    except ValueError as exc:
        raise StartedWithoutId(
            f"LoneScale accepted the trigger ({response.status_code}) with an answer that is not JSON: "
            f"{response.text[:100]!r}"
        ) from exc
    candidate = started.get("id") if isinstance(started, Mapping) else started
    if isinstance(candidate, int) and not isinstance(candidate, bool):
        candidate = str(candidate)
    if isinstance(candidate, str) and _JOB_ID.match(candidate):
        return candidate
    raise StartedWithoutId(f"LoneScale accepted the trigger without a job id: {started!r:.120}")


@dataclass(frozen=True)
class Credits:
    enrichment: float
    contact: float


@dataclass(frozen=True)
class Run:
    status: str  # processing | finished (anything else is passed through as LoneScale said it)
    contacts: list[Any]  # as LoneScale sent them, to be stored like a webhook delivery


_TAG = re.compile(r"<[^>]*>")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:  # a gateway's HTML page, say: its words, without the markup
        return " ".join(_TAG.sub(" ", response.text).split())[:200]
    if isinstance(body, Mapping):
        message = body.get("message")
        return "; ".join(map(str, message)) if isinstance(message, list) else str(message or body)
    return str(body)[:200]


def raise_for_status(response: httpx.Response, what: str) -> None:
    """Turn a LoneScale error into one the caller can act on (NestJS-like: docs/lonescale.md#error-bodies)."""
    status = response.status_code
    if status < 400:
        return
    message = _message(response)
    if status == 401:
        raise AuthError(
            f"LoneScale refused the API key ({message}): check the variable named by lonescale.api_key_env"
        )
    if status == 403:
        raise QuotaExhausted(f"LoneScale: {message} — top up credits, or lower the run's budget")
    if status == 429:
        retry_after = response.headers.get("retry-after")
        raise RateLimited(f"LoneScale rate limit: {message}", float(retry_after) if retry_after else 60.0)
    if status >= 500:
        raise RetriableError(f"LoneScale {what} failed with {status}: {message}")
    raise Refused(
        f"LoneScale refused {what} ({status} {message}): a contact or option does not fit its schema",
        status,
        message,
    )


class LoneScaleClient:
    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        answered: Answered = unheard,
    ):
        self.retry_policy = retry_policy  # for call_with_retry around every call (the one retry loop)
        self._http = httpx.Client(
            base_url=base_url,
            headers={"x-api-key": api_key.reveal(), "user-agent": user_agent(f"httpx/{httpx.__version__}")},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            event_hooks={"response": [lambda response: answered(response.status_code)]},
        )

    def close(self) -> None:
        self._http.close()

    def trigger(
        self,
        contacts: Sequence[Contact],
        enrichment_types: Sequence[EnrichmentType],
        webhook_url: str,
        *,
        detect_job_change: bool = False,
        custom: dict[str, str] | None = None,
    ) -> str:
        """Start an async enrichment; returns LoneScale's job id.

        Retriable (RetriableError) only when the POST provably never reached LoneScale, or its throttler
        answered 429 (a guard, before any handler runs). Once the body may have been read, a lost answer, a
        redirect or a 5xx is TriggerUncertain: a gateway's 504 says nothing of whether LoneScale started (and
        bills) the job. A 2xx without a usable id is StartedWithoutId. `custom` is the request-level one
        (the caller's `id` in it).
        """
        body: dict[str, Any] = {
            "enrichment_type": [t.value for t in enrichment_types],
            "contacts": [c.to_request() for c in contacts],
            "webhook_url": webhook_url,
        }
        if detect_job_change:
            body["detect_job_change"] = True
        if custom is not None:
            body["custom"] = custom
        try:
            # orjson: a job's body is a hundred contacts, and the stdlib's encoder was a visible share of a
            # sync's CPU in a profile of every thread (py-spy); the same JSON, compact, as httpx's `json=` sends it.
            response = self._http.post("/trigger/enrich", content=jsoncodec.dumps(body), headers=JSON_BODY)
        except _NEVER_SENT as exc:
            raise RetriableError(f"cannot reach LoneScale: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise TriggerUncertain(f"LoneScale's answer to the trigger was lost ({exc!r})") from exc
        status = response.status_code
        if status >= 500 or 300 <= status < 400:
            # Neither says whether the job started: a gateway's 504 may come after LoneScale took it, and a
            # 303 may answer a POST that was processed (https://www.rfc-editor.org/rfc/rfc9110#section-15.4.4).
            where = f" to {response.headers['location']}" if "location" in response.headers else ""
            raise TriggerUncertain(f"LoneScale answered the trigger {status}{where} ({_message(response)})")
        raise_for_status(response, "the enrichment request")
        return _job_id(response)

    def run(self, job_id: str) -> Run:
        """`GET /trigger/run/{id}`, seen only in the CLI's debug trace (https://docs.lonescale.com/cli/recipes),
        not in the OpenAPI: it may not be open to a public API key at all. A 403 or 404 is that route's answer
        (Refused, with LoneScale's words), not an empty balance or an unknown job."""
        response = self._get(f"/trigger/run/{job_id}", "the run status", answers=(403, 404))
        body = response.json()
        if not isinstance(body, Mapping):
            raise RequestRejected(f"LoneScale answered the run status with {body!r:.100}")
        contacts = body.get("contacts")
        return Run(
            status=str(body.get("status", "unknown")), contacts=contacts if isinstance(contacts, list) else []
        )

    def credits(self) -> Credits:
        """`GET /users` answers an array of users, each with `plan` (docs/lonescale.md#credits)."""
        body = self._get("/users", "the credit balance").json()
        user = body[0] if isinstance(body, list) and body else body
        plan = user.get("plan", {}) if isinstance(user, Mapping) else {}
        return Credits(float(plan.get("enrichmentCredits", 0)), float(plan.get("contactCredits", 0)))

    def _get(self, path: str, what: str, answers: tuple[int, ...] = ()) -> httpx.Response:
        """GET `path`; a status in `answers` is refused as it stands, with LoneScale's message."""
        try:
            response = self._http.get(path)
        except httpx.TransportError as exc:
            raise RetriableError(f"cannot reach LoneScale for {what}: {exc!r}") from exc
        if response.status_code in answers:
            message = _message(response)
            raise Refused(f"LoneScale refused {what} ({response.status_code} {message})", response.status_code,
                          message)  # fmt: skip
        raise_for_status(response, what)
        return response
