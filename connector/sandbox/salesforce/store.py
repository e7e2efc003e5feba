"""Records per sObject, with sorted (timestamp, Id) indexes so windowed pulls are answered by bisect."""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.sandbox import credentials
from connector.sandbox.kit import chance
from connector.sandbox.people import generate_people, make_companies
from connector.sandbox.salesforce import ids
from connector.sandbox.salesforce.org import CustomField, OrgSchema
from connector.sandbox.salesforce.schema import ACCOUNT, CONTACT, LEAD, SOBJECTS, SObjectSpec
from connector.sandbox.salesforce.standard import USER

INDEXED_FIELDS = ("SystemModstamp", "LastModifiedDate")
# Who "did" a change: the seeded data was typed by a person; API writes come from the integration user,
# which is how a sync recognises its own echo (docs/salesforce.md#timestamps).
ADMIN_USER_ID = ids.make_id("005", 0, 1)
INTEGRATION_USER_ID = ids.make_id("005", 0, 2)
# The sales reps who own the seeded contacts and leads: a job-change follow-up goes to the record's owner.
SALES_USER_IDS = tuple(ids.make_id("005", 0, serial) for serial in range(3, 7))
PLACEHOLDER_LAST_NAME = "[not provided]"  # Salesforce requires LastName; real orgs hold junk like this

Record = dict[str, Any]


def to_second(moment: datetime) -> datetime:
    """Salesforce stores datetimes to the second: the API answers `.000+0000` (salesforce.stackexchange.com
    /questions/234824), so many records share one SystemModstamp."""
    return moment.replace(microsecond=0)


def now_s() -> datetime:
    return to_second(datetime.now(UTC))


class Table:
    """One sObject's records by 18-character Id, and an ascending (value, Id) list per indexed field."""

    def __init__(self, spec: SObjectSpec):
        self.spec = spec
        self.records: dict[str, Record] = {}
        self.indexes: dict[str, list[tuple[datetime, str]]] = {name: [] for name in INDEXED_FIELDS}

    def get(self, record_id: str) -> Record | None:
        return self.records.get(record_id)

    def put(self, record: Record) -> None:
        """Insert or replace a whole record, keeping the indexes in step."""
        old = self.records.get(record["Id"])
        if old is not None:
            self._unindex(old)
        self.records[record["Id"]] = record
        for name, index in self.indexes.items():
            bisect.insort(index, (record[name], record["Id"]))

    def change(self, record_id: str, changes: dict[str, Any]) -> None:
        record = self.records[record_id]
        moved = [name for name in INDEXED_FIELDS if name in changes]
        for name in moved:
            self._remove(name, record[name], record_id)
        record.update(changes)
        for name in moved:
            bisect.insort(self.indexes[name], (record[name], record_id))

    def _unindex(self, record: Record) -> None:
        for name in INDEXED_FIELDS:
            self._remove(name, record[name], record["Id"])

    def _remove(self, name: str, value: datetime, record_id: str) -> None:
        index = self.indexes[name]
        position = bisect.bisect_left(index, (value, record_id))
        if position < len(index) and index[position] == (value, record_id):
            del index[position]

    def index_range(
        self,
        name: str,
        low: datetime | None,
        low_inclusive: bool,
        high: datetime | None,
        high_inclusive: bool,
        descending: bool = False,
    ) -> Iterator[str]:
        """Ids whose `name` lies in the bounds, in (value, Id) order: O(log n) to find, O(k) to walk."""
        index = self.indexes[name]
        start = 0
        end = len(index)
        if low is not None:
            finder = bisect.bisect_left if low_inclusive else bisect.bisect_right
            start = finder(index, low, key=_first)
        if high is not None:
            finder = bisect.bisect_right if high_inclusive else bisect.bisect_left
            end = finder(index, high, key=_first)
        positions = range(end - 1, start - 1, -1) if descending else range(start, end)
        for position in positions:
            yield index[position][1]


def _first(item: tuple[datetime, str]) -> datetime:
    return item[0]


class Store:
    """All tables, seeded from people.py: Accounts from its companies, Contacts and Leads from its people."""

    def __init__(self, org: int):
        self.org = org
        self.schema = OrgSchema()
        self.tables: dict[str, Table] = {name: Table(spec) for name, spec in SOBJECTS.items()}
        self.serials: dict[str, int] = dict.fromkeys(SOBJECTS, 0)
        # How often each (record id, field) was written by the API since the org was made: what a test of
        # "no field written twice" counts against the connector's journal.
        self.writes: Counter[tuple[str, str]] = Counter()

    def table(self, spec: SObjectSpec) -> Table:
        return self.tables[spec.name.lower()]

    def find(self, record_id: str) -> tuple[Table, Record] | None:
        spec = _by_prefix(record_id)
        if spec is None:
            return None
        record = self.table(spec).get(record_id)
        return None if record is None else (self.table(spec), record)

    def new_id(self, spec: SObjectSpec) -> str:
        while True:
            self.serials[spec.name.lower()] += 1
            candidate = ids.make_id(spec.key_prefix, self.org, self.serials[spec.name.lower()])
            if self.table(spec).get(candidate) is None:
                return candidate

    def blank(self, spec: SObjectSpec, stamp: datetime, user: str) -> Record:
        """A record with Salesforce's create-time defaults: false checkboxes, stamps, owner."""
        record: Record = {field.name: None for field in spec.fields}
        for field in spec.fields:
            if field.type == "boolean":
                record[field.name] = False
        record.update(dict.fromkeys(("CreatedDate", "LastModifiedDate", "SystemModstamp"), stamp))
        record.update(dict.fromkeys(("CreatedById", "LastModifiedById", "OwnerId"), user))
        for field in spec.fields:
            if field.default_value is not None:
                record[field.name] = field.default_value
        if spec.name == "Lead":
            record["Status"] = "Open - Not Contacted"
        return record

    def add_fields(self, name: str, fields: list[CustomField]) -> list[str]:
        """Setup's New Field: the object gains the fields and its records hold their empty value (a
        checkbox is false)."""
        spec, added = self.schema.add_fields(name, fields)
        table = self.table(spec)
        table.spec = spec
        for record in table.records.values():
            for field in added:
                record[field.name] = False if field.type == "boolean" else None
        return [field.name for field in added]

    def seed(self, contacts: int, seed: int, now: datetime) -> None:
        self._seed_users(now - timedelta(days=400))
        companies = make_companies(random.Random(seed), max(3, contacts // 6))  # the same list people use
        account_ids: dict[int, str] = {}
        accounts = self.table(ACCOUNT)
        for company in companies:
            stamp = to_second(now - timedelta(days=40) + timedelta(minutes=company.key))
            record = self.blank(ACCOUNT, stamp, ADMIN_USER_ID)
            record.update(Id=self.new_id(ACCOUNT), Name=company.name, Website=company.website)
            account_ids[company.key] = record["Id"]
            accounts.put(record)
        for person in generate_people(contacts, seed, now=now):
            record = self._person(CONTACT, person, person.modified_at, seed)
            record["AccountId"] = account_ids[person.company.key] if person.company else None
            self.table(CONTACT).put(record)
        for person in generate_people(max(1, contacts // 2), seed + 1000, now=now):
            record = self._person(LEAD, person, person.modified_at, seed)
            record["Company"] = person.company.name if person.company else PLACEHOLDER_LAST_NAME
            record["Website"] = person.company.website if person.company else None
            self.table(LEAD).put(record)

    def _seed_users(self, stamp: datetime) -> None:
        people = [
            (ADMIN_USER_ID, "Ada", "Admin", "admin@lonescale-sync.sandbox"),
            (INTEGRATION_USER_ID, "Integration", "User", credentials.SALESFORCE_USERNAME),
            *(
                (user_id, first, "Rep", f"{first.lower()}.rep@lonescale-sync.sandbox")
                for user_id, first in zip(SALES_USER_IDS, ("Sam", "Noor", "Lena", "Iker"), strict=True)
            ),
        ]
        for user_id, first, last, email in people:
            record = self.blank(USER, stamp, ADMIN_USER_ID)
            record.update(
                Id=user_id,
                FirstName=first,
                LastName=last,
                Email=email,
                Username=email,
                Alias=(first[:1] + last)[:8].lower(),
                IsActive=True,
                UserType="Standard",
            )
            record["Name"] = full_name(record)
            self.table(USER).put(record)

    def _person(self, spec: SObjectSpec, person: Any, stamp: datetime, seed: int) -> Record:
        stamp = to_second(stamp)
        record = self.blank(spec, stamp, ADMIN_USER_ID)
        owner = SALES_USER_IDS[int(chance(seed, "owner", spec.name, person.index) * len(SALES_USER_IDS))]
        record.update(
            Id=self.new_id(spec),
            OwnerId=owner,
            FirstName=person.firstname,
            LastName=person.lastname or PLACEHOLDER_LAST_NAME,
            Email=person.email,
            Phone=person.phone,
            MobilePhone=person.mobile,
            Title=person.title,
            LinkedIn_URL__c=person.linkedin_url,
            CreatedDate=to_second(person.created_at),
        )
        record["Name"] = full_name(record)
        return record


def full_name(record: Record) -> str:
    return " ".join(part for part in (record.get("FirstName"), record.get("LastName")) if part)


def _by_prefix(record_id: str) -> SObjectSpec | None:
    for spec in SOBJECTS.values():
        if record_id.startswith(spec.key_prefix):
            return spec
    return None
