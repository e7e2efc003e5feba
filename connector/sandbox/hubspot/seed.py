"""Seeded contacts and companies from `people.py`, and the records tests add through `/__sandbox/records`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.sandbox import people
from connector.sandbox.hubspot.store import ObjectStore, Record
from connector.sandbox.hubspot.times import parse_ms, to_ms
from connector.sandbox.hubspot.values import as_text
from connector.sandbox.kit import chance

CONTACT_ID_START = 1001
COMPANY_ID_START = 900_000_001
LIFECYCLE_SHARES = (("subscriber", 0.25), ("lead", 0.8), ("opportunity", 0.9), ("customer", 1.0))
# The portal's sales owners (ids as GET /crm/v3/owners gives them): each seeded contact has one, and a
# job-change follow-up note goes to that owner.
OWNER_IDS = ("41629870", "52750146", "60917335", "88412093")


def seeded(count: int, seed: int, now: datetime) -> tuple[list[Record], list[Record]]:
    """(contacts, companies), identical for one (count, seed) apart from the shift to `now`."""
    persons = people.generate_people(count, seed, now)
    # generate_people draws its companies first from Random(seed): the same draw gives the ones nobody works at.
    companies = {c.key: c for c in people.make_companies(random.Random(seed), max(3, count // 6))}
    companies.update({p.company.key: p.company for p in persons if p.company})
    now_ms = to_ms(now)
    company_records = []
    for key, company in sorted(companies.items()):
        created = now_ms - int((100 + 600 * chance(seed, "company-created", key)) * 86_400_000)
        modified = min(now_ms - 5000, created + int(200 * 86_400_000 * chance(seed, "company-modified", key)))
        properties = {"name": company.name, "domain": company.domain, "website": company.website}
        company_records.append(Record(COMPANY_ID_START + key, properties, created, modified))
    # Record ids grow with creation time, as HubSpot's do in practice (not a guarantee:
    # docs/hubspot.md#search-paging).
    ordered = sorted(persons, key=lambda person: (person.created_at, person.index))
    emails: set[str] = set()
    contacts = []
    for rank, person in enumerate(ordered):
        email = person.email
        if email and email.lower() in emails:
            email = None  # HubSpot keeps one contact per email: the later duplicate has none
        elif email:
            emails.add(email.lower())
        lifecycle = next(
            s for s, share in LIFECYCLE_SHARES if chance(seed, "lifecycle", person.index) < share
        )
        values = {
            "firstname": person.firstname,
            "lastname": person.lastname,
            "email": email,
            "phone": person.phone,
            "mobilephone": person.mobile,
            "jobtitle": person.title,
            "company": person.company.name if person.company else None,
            "website": person.company.website if person.company else None,
            "hs_linkedin_url": person.linkedin_url,
            "associatedcompanyid": str(COMPANY_ID_START + person.company.key) if person.company else None,
            "lifecyclestage": lifecycle,
            "hubspot_owner_id": OWNER_IDS[int(chance(seed, "owner", person.index) * len(OWNER_IDS))],
        }
        properties = {name: value for name, value in values.items() if value}
        created, modified = to_ms(person.created_at), to_ms(person.modified_at)
        contacts.append(Record(CONTACT_ID_START + rank, properties, created, modified))
    return contacts, company_records


def from_test(store: ObjectStore, item: dict[str, Any], now_ms: int) -> Record:
    """A record as a test describes it: flat properties or {"properties": {...}}, optional "id",
    and `createdate` / the modified date settable (epoch ms or ISO) so tests can place records in time."""
    nested = item.get("properties")
    raw: dict[str, Any] = nested if isinstance(nested, dict) else item
    values = {key: value for key, value in raw.items() if key not in ("id", "objectType", "hs_object_id")}
    created = parse_ms(values.pop(store.created_property, now_ms))
    modified = parse_ms(values.pop(store.modified_property, created))
    if created is None or modified is None:
        raise ValueError("createdate and the modified date must be epoch milliseconds or ISO-8601")
    unknown = sorted(set(values) - set(store.schema))
    if unknown:
        raise ValueError(f"unknown {store.object_type} properties {unknown}")
    properties = {key: text for key, value in values.items() if (text := as_text(value))}
    owner = store.unique_owner(properties.get(store.unique_property or ""))
    record_id = int(item.get("id") or raw.get("hs_object_id") or (owner or store.next_id))
    if owner is not None and owner != record_id:
        raise ValueError(
            f"{store.unique_property} {properties[store.unique_property or '']} belongs to {owner}"
        )
    return Record(record_id, properties, created, modified)


def reset_moment() -> datetime:
    now = datetime.now(UTC)
    return now - timedelta(microseconds=now.microsecond % 1000)
