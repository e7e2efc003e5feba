"""The write journal: each field written (or about to be), settled with the CRM's answer in one commit,
and read back per record, per run, and as what is still ours to overwrite."""

from __future__ import annotations

from collections.abc import Callable

from connector.store import Job, JournalEntry, Store
from tests.store.conftest import T0


def entry(run_id: int, field: str, new: object, outcome: str = "written", *, record: str = "003A",
          job: str | None = "job-1", old: object = None) -> JournalEntry:  # fmt: skip
    return JournalEntry(run_id, job, "acme", record, field, old, new, outcome, written_at=T0)


def test_the_journal_keeps_old_and_new_values_per_field(store: Store) -> None:
    run_id = store.runs.start("acme", "apply")
    store.journal.add(
        [
            JournalEntry(run_id, "job-1", "acme", "003A", "Email", None, "a@x.com", "written", written_at=T0),
            JournalEntry(
                run_id,
                "job-1",
                "acme",
                "003A",
                "Job_Change_Detected__c",
                False,
                True,
                "written",
                written_at=T0,
            ),
            JournalEntry(
                run_id, "job-1", "acme", "003A", "Title", "CEO", "x" * 200, "rejected", "STRING_TOO_LONG", T0
            ),
        ]
    )
    entries = store.journal.for_record("acme", "003A")
    assert [(e.field, e.old_value, e.new_value, e.outcome) for e in entries] == [
        ("Email", None, "a@x.com", "written"),
        ("Job_Change_Detected__c", False, True, "written"),
        ("Title", "CEO", "x" * 200, "rejected"),
    ]
    assert entries[2].reason == "STRING_TOO_LONG" and entries[0].written_at == T0
    assert store.journal.counts("acme") == {"written": 2, "rejected": 1}
    assert store.journal.counts("other") == {}


def test_the_ids_given_back_are_each_entrys_own_in_order_however_many(store: Store) -> None:
    # Settling a write finds its entries by these ids: one out of place would record another field's answer.
    # Thousands, past one INSERT's batch of rows, after other rows (the ids do not start at 1).
    run_id = store.runs.start("acme", "apply")
    store.journal.add([entry(run_id, "Email", "before", record="other")])
    entries = [entry(run_id, f"F{i % 7}", f"v{i}", "pending", record=f"r{i}") for i in range(2500)]
    ids = store.journal.add(entries)
    kept = {e.id: (e.record_id, e.field, e.new_value) for e in store.journal.for_run(run_id)}
    assert len(set(ids)) == len(entries)
    assert [kept[i] for i in ids] == [(e.record_id, e.field, e.new_value) for e in entries]


def test_settling_a_write_records_the_crms_answer_the_cooldowns_and_the_contacts_at_once(
    store: Store, make_job: Callable[..., Job]
) -> None:
    make_job()
    run_id = store.runs.start("acme", "apply")
    written, refused, lost = store.journal.add(
        [entry(run_id, "Email", "a@x.com", "pending"), entry(run_id, "Title", "CTO", "pending"),
         entry(run_id, "Phone", "+33 1", "pending", record="003B")]
    )  # fmt: skip
    assert [e.id for e in store.journal.pending("acme")] == [written, refused, lost]
    store.journal.settle(
        "acme",
        {written: ("written", None), refused: ("rejected", "STRING_TOO_LONG")},
        {"003A": {"email": True}},
        {("job-1", "rejected", "Title not written: STRING_TOO_LONG"): ["003A"]},
        drop=[lost],
    )
    assert store.journal.pending("acme") == []
    assert [(e.field, e.outcome, e.reason) for e in store.journal.for_record("acme", "003A")] == [
        ("Email", "written", None),
        ("Title", "rejected", "STRING_TOO_LONG"),
    ]
    assert store.journal.for_record("acme", "003B") == [], "a write that never landed is dropped"
    assert store.ledger.states("acme", ["003A"])["003A"]["types"]["email"]["found"] is True
    contacts = {c.record_id: (c.status, c.reason) for c in store.jobs.contacts("job-1")}
    assert contacts == {"003A": ("rejected", "Title not written: STRING_TOO_LONG"), "003B": ("waiting", None)}


def test_what_we_last_wrote_is_ours_until_a_rollback_restores_the_field(store: Store) -> None:
    first, second = store.runs.start("acme", "apply"), store.runs.start("acme", "apply")
    store.journal.add([entry(first, "Email", "old@x.com"), entry(first, "Title", "CEO"),
                   entry(first, "Phone", "+33 1", record="003B")])  # fmt: skip
    store.journal.add([entry(second, "Email", "new@x.com"), entry(second, "Title", "refused", "rejected")])
    assert store.journal.last_written("acme", ["003A", "003B"], ["Email", "Title"]) == {
        "003A": {"Email": "new@x.com", "Title": "CEO"}
    }, "the latest write wins; a rejected one is not ours; Phone was not asked for"
    rollback = store.runs.start("acme", "rollback")
    store.journal.add([entry(rollback, "Email", "old@x.com", job=None, old="new@x.com")])
    assert store.journal.last_written("acme", ["003A"], ["Email", "Title"]) == {"003A": {"Title": "CEO"}}


def test_a_sync_run_owns_what_its_jobs_results_wrote_whichever_pass_wrote_them(
    store: Store, make_job: Callable[..., Job]
) -> None:
    job = make_job()  # bought by the sync run job.run_id
    apply = store.runs.start("acme", "apply")
    rollback = store.runs.start("acme", "rollback")
    store.journal.add([entry(apply, "Email", "a@x.com")])
    store.journal.add([entry(rollback, "Email", None, job=None, old="a@x.com")])
    (bought,) = store.journal.for_run(job.run_id)
    assert (bought.run_id, bought.cycle, bought.run) == (apply, job.run_id, job.run_id)
    assert [e.run_id for e in store.journal.for_run(apply)] == [apply]
    (undone,) = store.journal.for_run(rollback)
    assert (undone.cycle, undone.run) == (None, rollback), "a rollback's own row"
