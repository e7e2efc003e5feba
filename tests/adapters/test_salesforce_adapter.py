"""The Salesforce adapter through simple-salesforce against the Salesforce emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.adapters.salesforce import SalesforceAdapter, SalesforceCredentials
from connector.errors import AuthError, QuotaExhausted, RetriableError
from connector.models import FieldUpdate, RecordRef, WriteOutcome
from connector.retry import DEFAULT_POLICY, RetryPolicy
from connector.sandbox import credentials
from tests.adapters.contract import EVERYTHING, AdapterContract
from tests.conftest import SANDBOX_CONTACTS, Served

CLIENT = SalesforceCredentials(credentials.SALESFORCE_CLIENT_ID, credentials.SALESFORCE_CLIENT_SECRET)
TOKEN_ROUTE = "/services/oauth2/token"


def make(
    served: Served,
    creds: SalesforceCredentials = CLIENT,
    object_name: str = "Contact",
    retry_policy: RetryPolicy = DEFAULT_POLICY,
) -> SalesforceAdapter:
    # The sandbox URL as both instance and login URL: plain HTTP on 127.0.0.1, no library patching.
    return SalesforceAdapter(
        "acme-sf", creds, instance_url=served.url, object_name=object_name, retry_policy=retry_policy
    )


@pytest.fixture
def adapter(salesforce_sandbox: Served) -> SalesforceAdapter:
    return make(salesforce_sandbox)


@pytest.fixture
def refused_adapter(salesforce_sandbox: Served) -> SalesforceAdapter:
    return make(salesforce_sandbox, SalesforceCredentials(credentials.SALESFORCE_CLIENT_ID, "wrong-secret"))


class TestSalesforceAdapter(AdapterContract):
    email_field = "Email"
    title_field = "Title"
    readonly_field = "SystemModstamp"
    total_records = SANDBOX_CONTACTS
    unknown_id = "003000000000000AAA"

    def ref(self, adapter: SalesforceAdapter, record_id: str) -> RecordRef:  # type: ignore[override]
        return RecordRef(adapter.name, "Contact", record_id)


def jwt(key_path: str, audience: str = "login") -> SalesforceCredentials:
    return SalesforceCredentials(
        credentials.SALESFORCE_CLIENT_ID,
        username=credentials.SALESFORCE_USERNAME,
        private_key_path=Path(key_path),
        jwt_audience=audience,
    )


def test_jwt_bearer_login_signs_the_login_audience_and_posts_to_the_configured_host(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    # The emulator refuses any audience but login, test or a site of the org, as Salesforce does; the token
    # request itself goes to the instance (the sandbox), as it goes to My Domain in production.
    records = list(make(salesforce_sandbox, jwt(jwt_private_key_path[0])).pull_changed(EVERYTHING, ["Email"]))
    assert len(records) == SANDBOX_CONTACTS
    assert salesforce_sandbox.control.count(method="POST", route=TOKEN_ROUTE, status=200) == 1


def test_a_sandbox_org_is_logged_in_to_with_the_test_audience(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    make(salesforce_sandbox, jwt(jwt_private_key_path[0], "test")).check()
    assert salesforce_sandbox.control.count(method="POST", route=TOKEN_ROUTE, status=200) == 1


def test_an_experience_cloud_site_audience_logs_in_where_the_org_has_that_site_and_renews_its_token(
    salesforce_sandbox: Served, jwt_private_key_path: tuple[str, bytes]
) -> None:
    site = "https://acme.my.site.com/partners"
    adapter = make(salesforce_sandbox, jwt(jwt_private_key_path[0], site))
    with pytest.raises(AuthError, match="invalid_grant: audience is invalid"):
        adapter.check()

    salesforce_sandbox.control.configure(experience_cloud_sites=[site])
    adapter.check()
    salesforce_sandbox.control.configure(expire_tokens=True)  # the token handed over: renewed by a new login
    assert len(list(adapter.pull_changed(EVERYTHING, ["Email"]))) == SANDBOX_CONTACTS
    assert salesforce_sandbox.control.count(method="POST", route=TOKEN_ROUTE, status=200) == 2


def test_relationship_fields_arrive_dotted_and_describe_follows_the_lookup(
    adapter: SalesforceAdapter,
) -> None:
    records = list(adapter.pull_changed(EVERYTHING, ["Account.Name", "Account.Website"]))
    with_account = [r for r in records if r.get("Account.Name")]
    without = [r for r in records if r.get("Account.Name") is None]
    assert with_account and without, "the seed has contacts with and without an account"
    described = adapter.describe(["Account.Website", "Account.Nope"])
    assert set(described) == {"Account.Website"} and not described["Account.Website"].writable


def test_a_pull_pages_through_more_than_one_query_batch(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    salesforce_sandbox.control.reset(contacts=4500)
    ids = [r.ref.id for r in adapter.pull_changed(EVERYTHING, ["Email"])]
    assert len(ids) == len(set(ids)) == 4500
    assert salesforce_sandbox.control.count(route="/services/data/{version}/query/{locator}") == 2


def test_locked_rows_are_retried_until_written(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    salesforce_sandbox.control.configure(lock_row_share=0.3)
    ids = [r.ref.id for r in adapter.pull_changed(EVERYTHING, ["Title"])][:200]
    results = adapter.write_back(
        [FieldUpdate(RecordRef("acme-sf", "Contact", i), {"Title": "Lock test"}) for i in ids]
    )
    written = sum(r.outcome is WriteOutcome.WRITTEN for r in results)
    assert written > 190, "a lock clears on retry; only records locked three times in a row remain"
    assert all(r.outcome in (WriteOutcome.WRITTEN, WriteOutcome.LOCKED) for r in results)
    assert all(r.code == "UNABLE_TO_LOCK_ROW" for r in results if r.outcome is WriteOutcome.LOCKED)


def test_an_expired_session_is_renewed_without_losing_the_call(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    adapter.check()
    salesforce_sandbox.control.configure(expire_tokens=True)
    assert len(list(adapter.pull_changed(EVERYTHING, ["Email"]))) == SANDBOX_CONTACTS
    assert salesforce_sandbox.control.count(route="/services/oauth2/token") == 2


def test_the_daily_limit_stops_the_instance_and_usage_is_visible(
    salesforce_sandbox: Served, adapter: SalesforceAdapter
) -> None:
    adapter.check()
    assert adapter.api_usage is not None and adapter.api_usage[1] == 100_000
    salesforce_sandbox.control.configure(daily_api_limit=adapter.api_usage[0])
    with pytest.raises(QuotaExhausted, match="REQUEST_LIMIT_EXCEEDED"):
        adapter.check()


QUICK = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def test_a_concurrency_limit_is_waited_out_and_the_call_goes_through(salesforce_sandbox: Served) -> None:
    adapter = make(salesforce_sandbox, retry_policy=QUICK)
    salesforce_sandbox.control.configure(concurrent_request_refusals=2)

    adapter.check()  # refused twice with REQUEST_LIMIT_EXCEEDED, then answered: not the day's cap

    assert salesforce_sandbox.control.count(status=403) == 2


def test_an_update_refused_by_the_long_transaction_limit_is_sent_again_and_written(
    salesforce_sandbox: Served,
) -> None:
    adapter = make(salesforce_sandbox, retry_policy=QUICK)
    record_id = next(iter(adapter.pull_changed(EVERYTHING, ["Title"]))).ref.id
    salesforce_sandbox.control.configure(long_transaction_refusals=1)

    [result] = adapter.write_back([FieldUpdate(RecordRef("acme-sf", "Contact", record_id), {"Title": "CTO"})])

    assert result.outcome is WriteOutcome.WRITTEN
    assert adapter.read_current([record_id], ["Title"])[record_id]["Title"] == "CTO"


def test_a_concurrency_limit_that_does_not_clear_gives_up_as_retriable_never_as_the_daily_cap(
    salesforce_sandbox: Served,
) -> None:
    adapter = make(salesforce_sandbox, retry_policy=QUICK)
    adapter.check()
    salesforce_sandbox.control.configure(concurrent_request_refusals=10)
    with pytest.raises(RetriableError, match="ConcurrentRequests") as refused:
        adapter.check()
    assert not isinstance(refused.value, QuotaExhausted)
    assert salesforce_sandbox.control.count(status=403) == QUICK.attempts


def test_leads_are_pulled_without_converted_ones(salesforce_sandbox: Served) -> None:
    leads = make(salesforce_sandbox, object_name="Lead")
    records = list(leads.pull_changed(EVERYTHING, ["Company", "IsConverted"]))
    assert records and all(r.ref.object == "Lead" and r.get("IsConverted") is False for r in records)


def test_the_mappings_changed_field_is_what_the_window_runs_on(salesforce_sandbox: Served) -> None:
    """A mapping may pull by LastModifiedDate instead of SystemModstamp: the adapter honours it."""
    adapter = SalesforceAdapter(
        "acme-sf", CLIENT, instance_url=salesforce_sandbox.url, changed_field="LastModifiedDate"
    )
    records = list(adapter.pull_changed(EVERYTHING, ["LastModifiedDate", "SystemModstamp"]))
    assert records and all(
        r.changed_at.isoformat(timespec="seconds")[:19] == str(r.get("LastModifiedDate"))[:19]
        for r in records
    )
    stamps = [r.changed_at for r in records]
    assert stamps == sorted(stamps)
