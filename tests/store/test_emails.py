"""The email index: one holder per email and instance, the latest sight winning, kept across openings."""

from __future__ import annotations

from connector.store import Store
from connector.store.emails import key


def test_each_email_has_one_holder_the_latest_sight_and_the_index_outlives_the_process(
    store_url: str,
) -> None:
    store = Store(store_url)
    store.emails.seen("acme", {"101": "Ada@Engines.io", "102": "grace@navy.example", "103": None})
    store.emails.seen("other", {"900": "ada@engines.io"})
    store.close()

    again = Store(store_url)  # another run, another process: what the pulls saw is still known
    holders = again.emails.holders("acme", [" ADA@engines.io ", "grace@navy.example", "nobody@x.io"])
    assert holders == {key("ada@engines.io"): "101", key("grace@navy.example"): "102"}, (
        "emails compare stripped and without case; an email nobody holds is absent"
    )
    assert again.emails.holders("other", ["ada@engines.io"]) == {key("ada@engines.io"): "900"}

    # 101 changed its email, 102's went to 104 (the CRM freed it first), 103 still has none.
    again.emails.seen("acme", {"101": "ada@new.io", "104": "grace@navy.example"})
    again.emails.seen("acme", {"102": ""})
    holders = again.emails.holders("acme", ["ada@engines.io", "ada@new.io", "grace@navy.example"])
    assert holders == {key("ada@new.io"): "101", key("grace@navy.example"): "104"}
    assert again.emails.count("acme") == 2, "a record's old email goes with its change: one row per holder"
    again.close()


def test_emails_are_kept_hashed_never_as_addresses(store_url: str) -> None:
    store = Store(store_url)
    store.emails.seen("acme", {"101": "ada@engines.io"})
    with store.database.engine.connect() as db:
        rows = [tuple(row) for row in db.exec_driver_sql("SELECT * FROM crm_emails")]
    store.close()
    assert rows and not any("@" in str(value) or "engines" in str(value) for row in rows for value in row)
