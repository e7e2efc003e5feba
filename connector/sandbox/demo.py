"""`lonescale-sync demo`: the sandbox end to end — pull from both CRMs, enrich, receive webhooks, write back.

Until the real pipeline lands (issue #3) this is a smoke scenario over plain HTTP: it shows the three
emulators answering as the real APIs do, and counts what it cost. It fills empty job titles only.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.sandbox.control import SandboxControl
from connector.sandbox.kit import ServedApp
from connector.sandbox.runner import Sandbox, SandboxEndpoints

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass
class Outcome:
    crm: str
    pulled: int = 0
    skipped: int = 0
    sent: int = 0
    results: int = 0
    written: int = 0
    rejected: int = 0
    calls: int = 0
    notes: list[str] = field(default_factory=list)


class Inbox:
    """A webhook receiver on a real socket, collecting every LoneScale delivery by job token."""

    def __init__(self) -> None:
        self.payloads: dict[str, list[Any]] = {}

        async def receive(request: Request) -> Response:
            token = request.query_params.get("token", "")
            self.payloads.setdefault(token, []).append(await request.json())
            return Response(status_code=204)

        self.server = ServedApp(Starlette(routes=[Route("/hook", receive, methods=["POST"])]), name="inbox")

    def results(self, token: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for payload in self.payloads.get(token, []):
            items.extend(payload.get("contacts", [payload]))
        return items


def to_contact(record_id: str, first: Any, last: Any, email: Any, company: Any) -> dict[str, Any] | None:
    """The seed schema's Contact: names required, email only when well-formed, the CRM id in custom."""
    if not first or not last:
        return None
    contact: dict[str, Any] = {"firstname": first, "lastname": last, "custom": {"contact_id": record_id}}
    if email and EMAIL.match(email):
        contact["email"] = email
    if company:
        contact["company_name"] = company
    return contact


def enrich(
    http: httpx.Client, ep: SandboxEndpoints, inbox: Inbox, contacts: list[dict[str, Any]]
) -> list[Any]:
    token = secrets.token_urlsafe(16)
    body = {
        "enrichment_type": ["profile"],
        "contacts": contacts,
        "webhook_url": f"{inbox.server.base_url}/hook?token={token}",
    }
    response = http.post(
        f"{ep.lonescale}/trigger/enrich", json=body, headers={"x-api-key": ep.lonescale_api_key}
    )
    response.raise_for_status()
    deadline = time.monotonic() + 60
    while len(inbox.results(token)) < len(contacts) and time.monotonic() < deadline:
        time.sleep(0.1)
    return inbox.results(token)


def salesforce_pages(
    http: httpx.Client, base: str, headers: dict[str, str], soql: str
) -> Iterator[dict[str, Any]]:
    page = http.get(f"{base}/services/data/v62.0/query", params={"q": soql}, headers=headers).json()
    while True:
        yield from page["records"]
        if page["done"]:
            return
        page = http.get(base + page["nextRecordsUrl"], headers=headers).json()


def run_salesforce(http: httpx.Client, ep: SandboxEndpoints, inbox: Inbox) -> Outcome:
    out = Outcome("Salesforce")
    token = http.post(
        f"{ep.salesforce}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(ep.salesforce_client_id, ep.salesforce_client_secret),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Sforce-Query-Options": "batchSize=200"}
    since = (datetime.now(UTC) - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%SZ")
    soql = (
        "SELECT Id, FirstName, LastName, Email, Title, Account.Name FROM Contact "
        f"WHERE SystemModstamp >= {since} ORDER BY SystemModstamp, Id"
    )
    contacts, titles = [], {}
    for record in salesforce_pages(http, ep.salesforce, headers, soql):
        out.pulled += 1
        titles[record["Id"]] = record["Title"]
        account = (record.get("Account") or {}).get("Name")
        contact = to_contact(record["Id"], record["FirstName"], record["LastName"], record["Email"], account)
        contacts.append(contact) if contact else None
    out.skipped, out.sent = out.pulled - len(contacts), len(contacts)
    results = enrich(http, ep, inbox, contacts)
    out.results = len(results)
    updates = [
        {"attributes": {"type": "Contact"}, "id": r["custom"]["contact_id"], "Title": r["jobTitle"]}
        for r in results
        if r.get("jobTitle") and r.get("custom") and not titles.get(r["custom"]["contact_id"])
    ]
    for start in range(0, len(updates), 200):
        answer = http.patch(
            f"{ep.salesforce}/services/data/v62.0/composite/sobjects",
            json={"allOrNone": False, "records": updates[start : start + 200]},
            headers=headers,
        ).json()
        out.written += sum(1 for item in answer if item["success"])
        out.rejected += sum(1 for item in answer if not item["success"])
    return out


def run_hubspot(http: httpx.Client, ep: SandboxEndpoints, inbox: Inbox) -> Outcome:
    out = Outcome("HubSpot")
    headers = {"Authorization": f"Bearer {ep.hubspot_token}"}
    since = int((datetime.now(UTC) - timedelta(days=31)).timestamp() * 1000)
    request: dict[str, Any] = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["firstname", "lastname", "email", "jobtitle", "company"],
        "limit": 200,
    }
    contacts, titles = [], {}
    while True:
        page = http.post(f"{ep.hubspot}/crm/v3/objects/contacts/search", json=request, headers=headers)
        if page.status_code == 429:  # the search API's per-second limit: wait it out, as a client must
            time.sleep(1.0)
            continue
        page.raise_for_status()
        body = page.json()
        for record in body["results"]:
            p = record["properties"]
            out.pulled += 1
            titles[record["id"]] = p.get("jobtitle")
            contact = to_contact(
                record["id"], p.get("firstname"), p.get("lastname"), p.get("email"), p.get("company")
            )
            contacts.append(contact) if contact else None
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            break
        request["after"] = after
    out.skipped, out.sent = out.pulled - len(contacts), len(contacts)
    results = enrich(http, ep, inbox, contacts)
    out.results = len(results)
    updates = [
        {"id": r["custom"]["contact_id"], "properties": {"jobtitle": r["jobTitle"]}}
        for r in results
        if r.get("jobTitle") and r.get("custom") and not titles.get(r["custom"]["contact_id"])
    ]
    for start in range(0, len(updates), 100):
        answer = http.post(
            f"{ep.hubspot}/crm/v3/objects/contacts/batch/update",
            json={"inputs": updates[start : start + 100]},
            headers=headers,
        )
        body = answer.json()
        out.written += len(body.get("results", []))
        out.rejected += sum(len(e.get("context", {}).get("ids", [])) for e in body.get("errors", []))
    return out


def run_demo(contacts: int = 300, seed: int = 1) -> int:
    console = Console()
    inbox = Inbox()
    inbox.server.start()
    outcomes: list[Outcome] = []
    with Sandbox(contacts=contacts, seed=seed) as sandbox, httpx.Client(timeout=TIMEOUT) as http:
        ep = sandbox.endpoints
        # Deliveries come fast in the demo; everything else stays as realistic as the real APIs.
        SandboxControl(ep.lonescale).configure(webhook_delay_seconds=0.2)
        console.print(
            f"[bold]Sandbox[/] HubSpot {ep.hubspot} · Salesforce {ep.salesforce} · LoneScale {ep.lonescale}"
        )
        for name, step in (("Salesforce", run_salesforce), ("HubSpot", run_hubspot)):
            with console.status(f"{name}: pull → enrich → webhook → write back"):
                outcome = step(http, ep, inbox)
            outcome.calls = SandboxControl(getattr(ep, name.lower())).count()
            outcomes.append(outcome)
        credits = http.get(f"{ep.lonescale}/users", headers={"x-api-key": ep.lonescale_api_key}).json()[0][
            "plan"
        ]
        lonescale_calls = SandboxControl(ep.lonescale).count()
    inbox.server.stop()

    table = Table(title="lonescale-sync demo (smoke scenario on the sandbox)")
    for column in (
        "CRM",
        "pulled",
        "skipped",
        "sent",
        "results",
        "titles written",
        "rejected",
        "CRM API calls",
    ):
        table.add_column(column, justify="right" if column != "CRM" else "left")
    for o in outcomes:
        table.add_row(
            o.crm, *(str(v) for v in (o.pulled, o.skipped, o.sent, o.results, o.written, o.rejected, o.calls))
        )
    console.print(table)
    console.print(f"LoneScale calls: {lonescale_calls} · credits left: {credits}")
    ok = all(o.pulled and o.sent and o.results == o.sent and o.written for o in outcomes)
    console.print("[green]demo ok[/]" if ok else "[red]demo failed: a step produced nothing[/]")
    return 0 if ok else 1
