"""Records that change while a pull is running: every record of the window is still seen, on both CRMs.

The writes are the connector's own write-back (the apply loop runs beside a sync) landing on records the pull
has already yielded, in the middle of its second page: they leave their place in the window's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest

from connector.adapters.base import CrmAdapter, Window
from connector.adapters.hubspot import SEARCH_PAGE, HubSpotAdapter
from connector.adapters.salesforce import QUERY_BATCH, SalesforceAdapter, SalesforceCredentials
from connector.models import CrmRecord, FieldUpdate
from connector.sandbox import credentials
from tests.conftest import Served

CHANGED_MID_PULL = 5


def pull_while_writing(adapter: CrmAdapter, title: str, page: int) -> tuple[set[str], list[CrmRecord]]:
    """The window as it stood when the pull began, and what the pull yielded; five records it had already
    yielded are written to once the pull is half way through its second page."""
    window = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(minutes=1))
    before = {r.ref.id for r in adapter.pull_changed(window, [title])}
    pulled: Iterator[CrmRecord] = adapter.pull_changed(window, [title])
    seen = list(islice(pulled, page + page // 2))
    written = adapter.write_back(
        [FieldUpdate(r.ref, {title: f"Changed mid-pull {n}"}) for n, r in enumerate(seen[:CHANGED_MID_PULL])]
    )
    assert all(w.outcome.value == "written" for w in written)
    seen += list(pulled)
    return before, seen


def test_a_hubspot_pull_sees_every_record_when_some_change_during_it(hubspot_sandbox: Served) -> None:
    hubspot_sandbox.control.reset(contacts=1000)
    adapter = HubSpotAdapter("acme-hs", credentials.HUBSPOT_TOKEN, base_url=hubspot_sandbox.url)

    before, seen = pull_while_writing(adapter, "jobtitle", SEARCH_PAGE)

    assert before <= {r.ref.id for r in seen}, (
        f"{len(before - {r.ref.id for r in seen})} record(s) never seen"
    )


@pytest.mark.slow
def test_a_salesforce_pull_sees_every_record_when_some_change_during_it(salesforce_sandbox: Served) -> None:
    salesforce_sandbox.control.reset(contacts=QUERY_BATCH * 2 + 500)  # three query pages
    creds = SalesforceCredentials(credentials.SALESFORCE_CLIENT_ID, credentials.SALESFORCE_CLIENT_SECRET)
    adapter = SalesforceAdapter("acme-sf", creds, instance_url=salesforce_sandbox.url)

    before, seen = pull_while_writing(adapter, "Title", QUERY_BATCH)

    assert before <= {r.ref.id for r in seen}, (
        f"{len(before - {r.ref.id for r in seen})} record(s) never seen"
    )
