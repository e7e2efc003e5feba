"""The HubSpot adapter through hubspot-api-client against the HubSpot emulator."""

from __future__ import annotations

import pytest

from connector.adapters.hubspot import HubSpotAdapter
from connector.checks import check_instance
from connector.errors import RequestRejected
from connector.models import FieldUpdate, RecordRef, WriteOutcome
from connector.sandbox import credentials
from tests.adapters.contract import EVERYTHING, AdapterContract
from tests.conftest import SANDBOX_CONTACTS, Served
from tests.support import hubspot_instance


@pytest.fixture
def adapter(hubspot_sandbox: Served) -> HubSpotAdapter:
    return HubSpotAdapter("acme-hubspot", credentials.HUBSPOT_TOKEN, base_url=hubspot_sandbox.url)


@pytest.fixture
def refused_adapter(hubspot_sandbox: Served) -> HubSpotAdapter:
    return HubSpotAdapter("acme-hubspot", "pat-na1-wrong", base_url=hubspot_sandbox.url)


class TestHubSpotAdapter(AdapterContract):
    email_field = "email"
    title_field = "jobtitle"
    readonly_field = "lastmodifieddate"
    total_records = SANDBOX_CONTACTS
    unknown_id = "999999999"

    def ref(self, adapter: HubSpotAdapter, record_id: str) -> RecordRef:  # type: ignore[override]
        return RecordRef(adapter.name, "contacts", record_id)


def test_a_pull_past_the_search_cap_misses_nothing(hubspot_sandbox: Served, adapter: HubSpotAdapter) -> None:
    hubspot_sandbox.control.reset(contacts=10_450)
    hubspot_sandbox.control.configure(search_per_second=50)  # a faster portal: keeps the test quick
    ids = [r.ref.id for r in adapter.pull_changed(EVERYTHING, ["email"])]
    assert len(ids) == len(set(ids)) == 10_450
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/search", status=400) == 0


def test_writes_are_paced_under_the_ten_second_limit_and_none_are_lost(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    hubspot_sandbox.control.configure(ten_secondly_limit=8)
    ids = [r.ref.id for r in adapter.pull_changed(EVERYTHING, ["jobtitle"])][:250]
    fast = HubSpotAdapter(
        "acme-hubspot", credentials.HUBSPOT_TOKEN, base_url=hubspot_sandbox.url, requests_per_10s=100
    )
    results = fast.write_back(
        [FieldUpdate(RecordRef("acme-hubspot", "contacts", i), {"jobtitle": "VP"}) for i in ids]
    )
    assert all(r.outcome is WriteOutcome.WRITTEN for r in results) and len(results) == 250
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/batch/update", status=200) == 3


def _emails(adapter: HubSpotAdapter, count: int) -> list[tuple[str, str | None]]:
    """A contact holding an email, then `count - 1` others, as (id, email)."""
    pulled = [(r.ref.id, r.get("email")) for r in adapter.pull_changed(EVERYTHING, ["email"])]
    owner = next(p for p in pulled if p[1])
    return [owner, *[p for p in pulled if p != owner][: count - 1]]


def _update(record_id: str, **values: str) -> FieldUpdate:
    return FieldUpdate(RecordRef("acme-hubspot", "contacts", record_id), values)


def test_an_email_another_contact_holds_is_refused_alone_and_costs_one_retry(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    (owner, taken), *others = _emails(adapter, 40)
    hubspot_sandbox.control.clear_stats()
    updates = [_update(owner, jobtitle="Owner")] + [
        _update(i, jobtitle=f"VP {n}", **({"email": taken.upper()} if n == 7 else {}))
        for n, (i, _) in enumerate(others)
    ]
    results = adapter.write_back(updates)

    assert [r.ref.id for r in results] == [u.ref.id for u in updates]
    conflicted = results[8]
    assert conflicted.outcome is WriteOutcome.WRITTEN
    assert set(conflicted.refused_fields) == {"email"}
    assert f"Existing ID: {owner}" in conflicted.refused_fields["email"]
    assert all(
        r.outcome is WriteOutcome.WRITTEN and not r.refused_fields for i, r in enumerate(results) if i != 8
    )
    current = adapter.read_current([u.ref.id for u in updates], ["jobtitle", "email"])
    assert current[others[7][0]]["jobtitle"] == "VP 7", "the record's other fields are written"
    assert current[others[7][0]]["email"] == others[7][1], "and its own email is untouched"
    assert current[owner]["email"] == taken
    # One refused batch, then the retry without that email: no halving of the batch.
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/batch/update", status=409) == 1
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/batch/update", status=200) == 1


def test_with_several_new_emails_in_the_batch_the_owner_is_read_to_find_the_conflict(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    (_, taken), *others = _emails(adapter, 30)
    hubspot_sandbox.control.clear_stats()
    updates = [
        _update(i, email=taken if n == 3 else f"new.{n}@fresh-domain.com", phone=f"+1555000{n:04d}")
        for n, (i, _) in enumerate(others)
    ]
    results = adapter.write_back(updates)

    refused = [(r.ref.id, set(r.refused_fields)) for r in results if r.refused_fields]
    assert refused == [(others[3][0], {"email"})]
    assert all(r.outcome is WriteOutcome.WRITTEN for r in results)
    # One refused batch, one read of the owner's email, one retry.
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/batch/update", status=409) == 1
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/batch/read", status=200) == 1
    assert hubspot_sandbox.control.count(route="/crm/v3/objects/contacts/batch/update", status=200) == 1
    current = adapter.read_current([i for i, _ in others], ["email", "phone"])
    assert current[others[4][0]]["email"] == "new.4@fresh-domain.com"
    assert current[others[3][0]]["phone"] == "+15550000003"


def test_a_record_whose_only_change_is_a_taken_email_is_rejected_with_the_reason(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    (owner, taken), (first, _), (second, _) = _emails(adapter, 3)
    results = adapter.write_back([_update(first, email=taken), _update(second, jobtitle="CTO")])

    assert results[0].outcome is WriteOutcome.REJECTED and results[0].code == "CONFLICT"
    assert f"Existing ID: {owner}" in (results[0].reason or "")
    assert results[1].outcome is WriteOutcome.WRITTEN


def test_two_updates_giving_one_email_keep_it_for_the_first(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    (first, _), (second, _), (third, _) = _emails(adapter, 3)
    results = adapter.write_back(
        [
            _update(first, email="shared@fresh-domain.com"),
            _update(second, email="shared@fresh-domain.com", jobtitle="CFO"),
            _update(third, jobtitle="COO"),
        ]
    )

    assert [r.outcome for r in results] == [WriteOutcome.WRITTEN] * 3
    assert not results[0].refused_fields and set(results[1].refused_fields) == {"email"}
    current = adapter.read_current([first, second], ["email", "jobtitle"])
    assert current[first]["email"] == "shared@fresh-domain.com"
    assert current[second]["jobtitle"] == "CFO"


def test_a_token_without_the_contacts_schema_scope_is_named_by_check_with_the_scopes_it_needs(
    hubspot_sandbox: Served,
) -> None:
    """A private app created without `crm.schemas.contacts.read`: the properties list answers 403
    MISSING_SCOPES, and check says which scopes to give the app rather than only "refused (403)"."""
    instance = hubspot_instance(hubspot_sandbox)  # creates the status properties with the full scopes
    hubspot_sandbox.control.configure(token_scopes=["crm.objects.companies.read"])

    [problem] = check_instance(instance)

    assert "refused (403 MISSING_SCOPES, the app needs one of: crm.objects.contacts.read, " in problem.message
    assert "crm.schemas.contacts.read)" in problem.message


def test_a_404_is_reported_with_its_category(hubspot_sandbox: Served) -> None:
    misrouted = HubSpotAdapter(
        "acme-hubspot", credentials.HUBSPOT_TOKEN, base_url=f"{hubspot_sandbox.url}/v2"
    )
    with pytest.raises(RequestRejected, match=r"refused \(404 OBJECT_NOT_FOUND\): resource not found"):
        misrouted.check()
