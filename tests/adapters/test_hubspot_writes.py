"""HubSpot write-back when the answer does not say: unconfirmed updates are read back, unreadable answers are
connector errors. Through hubspot-api-client against the HubSpot emulator."""

from __future__ import annotations

import httpx
import pytest

from connector.adapters.hubspot import HubSpotAdapter
from connector.adapters.hubspot_writes import GONE, NOT_LANDED
from connector.errors import ConnectorError, RetriableError
from connector.models import FieldUpdate, FollowUp, RecordRef, WriteOutcome
from connector.retry import RetryPolicy
from connector.sandbox import credentials
from tests.adapters.contract import EVERYTHING
from tests.adapters.test_follow_ups import notes_of
from tests.conftest import Served

UPDATE = "/crm/v3/objects/contacts/batch/update"
READ = "/crm/v3/objects/contacts/batch/read"
NOTES = "/crm/v3/objects/notes/batch/create"
PROPERTIES = "/crm/v3/properties/{objectType}"


@pytest.fixture
def adapter(hubspot_sandbox: Served) -> HubSpotAdapter:
    return HubSpotAdapter(
        "acme-hubspot",
        credentials.HUBSPOT_TOKEN,
        base_url=hubspot_sandbox.url,
        retry_policy=RetryPolicy(attempts=2, base_delay=0.01),
    )


def ids(adapter: HubSpotAdapter, count: int) -> list[str]:
    return [r.ref.id for r in adapter.pull_changed(EVERYTHING, ["jobtitle"])][:count]


def update(record_id: str, **values: str) -> FieldUpdate:
    return FieldUpdate(RecordRef("acme-hubspot", "contacts", record_id), values)


def archive(served: Served, record_id: str) -> None:
    headers = {"authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    httpx.delete(f"{served.url}/crm/v3/objects/contacts/{record_id}", headers=headers).raise_for_status()


def test_an_update_of_a_deleted_contact_that_hubspot_does_not_list_is_rejected_not_written(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    kept, deleted = ids(adapter, 2)
    archive(hubspot_sandbox, deleted)
    hubspot_sandbox.control.clear_stats()

    results = adapter.write_back([update(kept, jobtitle="CTO"), update(deleted, jobtitle="Ghost")])

    assert results[0].outcome is WriteOutcome.WRITTEN
    assert (results[1].outcome, results[1].reason, results[1].code) == (
        WriteOutcome.REJECTED,
        GONE,
        "OBJECT_NOT_FOUND",
    )
    assert hubspot_sandbox.control.count(route=UPDATE, status=207) == 1
    assert hubspot_sandbox.control.count(route=READ) == 1, "one read for the unconfirmed input, not the batch"


def test_updates_an_empty_answer_leaves_unconfirmed_are_written_only_where_the_read_back_shows_them(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    first, second, deleted = ids(adapter, 3)
    archive(hubspot_sandbox, deleted)
    hubspot_sandbox.control.configure(batch_update_empty_answer="after_writing")

    landed = adapter.write_back(
        [
            update(first, jobtitle="VP Data", phone=""),
            update(second, jobtitle="CFO"),
            update(deleted, jobtitle="x"),
        ]
    )

    assert [r.outcome for r in landed] == [WriteOutcome.WRITTEN, WriteOutcome.WRITTEN, WriteOutcome.REJECTED]
    hubspot_sandbox.control.configure(batch_update_empty_answer="without_writing")

    dropped = adapter.write_back([update(first, jobtitle="Chief Data Officer")])

    assert (dropped[0].outcome, dropped[0].reason, dropped[0].code) == (
        WriteOutcome.REJECTED,
        NOT_LANDED,
        "UNCONFIRMED",
    )
    assert adapter.read_current([first], ["jobtitle"])[first]["jobtitle"] == "VP Data"


def test_an_html_page_instead_of_json_fails_a_read_as_retriable_and_the_retry_reads(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    some = ids(adapter, 3)
    hubspot_sandbox.control.configure(html_answers={f"POST {READ}": 1, f"GET {PROPERTIES}": 1})

    assert set(adapter.read_current(some, ["email"])) == set(some)
    assert set(adapter.describe(["email", "jobtitle"])) == {"email", "jobtitle"}
    hubspot_sandbox.control.configure(html_answers={f"POST {READ}": 2})
    with pytest.raises(RetriableError, match="not JSON"):
        adapter.read_current(some, ["email"])


def test_an_html_page_after_a_batch_update_is_sent_again_and_the_records_written(
    hubspot_sandbox: Served, adapter: HubSpotAdapter
) -> None:
    some = ids(adapter, 2)
    hubspot_sandbox.control.configure(html_answers={f"POST {UPDATE}": 1})
    hubspot_sandbox.control.clear_stats()

    results = adapter.write_back([update(i, jobtitle="Twice sent, once set") for i in some])

    assert all(r.outcome is WriteOutcome.WRITTEN for r in results)
    assert hubspot_sandbox.control.count(route=UPDATE) == 2


@pytest.mark.parametrize("knob", ["html_answers", "garbled_answers"])
def test_an_unreadable_answer_to_a_note_create_is_a_connector_error_and_never_posted_again(
    hubspot_sandbox: Served, adapter: HubSpotAdapter, knob: str
) -> None:
    [contact] = ids(adapter, 1)
    hubspot_sandbox.control.configure(**{knob: {f"POST {NOTES}": 1}})
    hubspot_sandbox.control.clear_stats()

    with pytest.raises(ConnectorError, match="may exist already") as raised:
        adapter.create_follow_ups(
            [FollowUp(RecordRef("acme-hubspot", "contacts", contact), "Job change", "Moved to Globex.")]
        )

    assert not isinstance(raised.value, RetriableError)
    assert hubspot_sandbox.control.count(route=NOTES) == 1
    assert len(notes_of(hubspot_sandbox, contact)) == 1, "the create behind the answer was carried out, once"
