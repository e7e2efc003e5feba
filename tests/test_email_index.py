"""End to end on HubSpot (pull → LoneScale → webhook → apply, the real SDK): a found email another contact
holds is left out before it costs a call, from the index the pulls keep of who holds which email; the CRM is
asked before a write is refused, so an email freed since is written."""

from __future__ import annotations

from connector.apply import apply_results
from connector.apply_unique import REASON
from connector.review import rollback
from connector.store.emails import key
from connector.wiring import Instance
from tests.conftest import Served
from tests.support import Pipeline, edit_as_a_person, everything, hubspot_instance

UPDATE = "/crm/v3/objects/contacts/batch/update"
TAKEN = "ada@engines.io"
COMPANY = {"company": "Analytical Engines", "website": "engines.io"}


def _twins(
    hubspot_sandbox: Served, lonescale_sandbox: Served, *, first_holds: bool = True
) -> tuple[str, str]:
    """Two contacts for one person, and LoneScale finds the one mailbox for both; `first_holds`: the first holds
    it already (else neither holds one yet)."""
    hubspot_sandbox.control.reset(contacts=0)
    first, second = hubspot_sandbox.control.seed(
        [
            {
                "firstname": "Ada",
                "lastname": "Lovelace",
                **({"email": TAKEN} if first_holds else {}),
                **COMPANY,
            },
            {"firstname": "Ada", "lastname": "Lovelace", **COMPANY},
        ]
    )
    found = {"email": TAKEN, "emailStatus": "valid", "phone": "+442071234567"}
    match = {"firstname": "Ada", "lastname": "Lovelace", "domain": "engines.io"}
    lonescale_sandbox.control.seed([{"match": match, "fields": found}])
    return first, second


def _freed(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> tuple[Instance, str, str]:
    """The twins synced and their results in; then a person moves the holder to another address, which the
    index does not know yet. (instance, holder, twin)"""
    holder, twin = _twins(hubspot_sandbox, lonescale_sandbox)
    instance = hubspot_instance(hubspot_sandbox)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    edit_as_a_person(hubspot_sandbox, "hubspot", holder, {"email": "ada.lovelace@elsewhere.io"})
    return instance, holder, twin


def test_a_found_email_another_contact_holds_is_refused_without_a_call_and_journaled_with_the_reason(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    holder, twin = _twins(hubspot_sandbox, lonescale_sandbox)
    instance = hubspot_instance(hubspot_sandbox)
    report = pipeline.sync(instance)
    assert report.status == "succeeded" and report.sent == 2, report.message
    assert pipeline.store.emails.holders("acme-hs", [TAKEN]) == {key(TAKEN): holder}, (
        "the pull saw who holds it"
    )
    pipeline.wait_for_results(report)
    hubspot_sandbox.control.clear_stats()

    applied = pipeline.apply(instance)

    assert hubspot_sandbox.control.count(route=UPDATE, status=409) == 0, "HubSpot was never asked"
    reason = REASON.format(holder=holder)
    journal = {e.field: (e.outcome, e.reason) for e in pipeline.store.journal.for_record("acme-hs", twin)}
    assert journal["email"] == ("rejected", reason)
    assert journal["phone"] == ("written", None), "the twin's other fields are written"
    assert (twin, f"email not written: {reason}") in applied.refusals
    assert applied.refused_by_code["CONFLICT"] == 1 and applied.records_rejected == 0
    after = everything(instance, ["email", "phone"])
    assert (after[twin]["email"], after[twin]["phone"]) == (None, "+442071234567")
    assert after[holder]["email"] == TAKEN


def test_an_email_its_holder_gave_up_since_the_pull_is_written_and_the_index_follows(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    # After the pull, a person moves the holder to another address: the index still names it.
    instance, holder, twin = _freed(pipeline, hubspot_sandbox, lonescale_sandbox)
    hubspot_sandbox.control.clear_stats()

    applied = pipeline.apply(instance)

    assert everything(instance, ["email"])[twin]["email"] == TAKEN, "the freed email is written"
    assert (applied.fields_refused, applied.records_rejected) == (0, 0)
    assert hubspot_sandbox.control.count(route=UPDATE, status=409) == 0
    journal = {e.field: e.outcome for e in pipeline.store.journal.for_record("acme-hs", twin)}
    assert journal["email"] == "written"
    assert pipeline.store.emails.holders("acme-hs", [TAKEN, "ada.lovelace@elsewhere.io"]) == {
        key(TAKEN): twin,
        key("ada.lovelace@elsewhere.io"): holder,
    }, "the write and the holder's read both reached the index"


def test_an_email_the_index_never_saw_still_meets_hubspots_409_and_is_refused_alone(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """The index is a hint: a holder the pulls did not see (the store lost it, the holder was never in a
    window) leaves the 409 to HubSpot, and the write-back handles it as before."""
    holder, twin = _twins(hubspot_sandbox, lonescale_sandbox)
    instance = hubspot_instance(hubspot_sandbox)
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    pipeline.store.emails.seen("acme-hs", {holder: None})  # as if never seen
    hubspot_sandbox.control.clear_stats()

    applied = pipeline.apply(instance)

    assert hubspot_sandbox.control.count(route=UPDATE, status=409) == 1
    journal = {e.field: (e.outcome, e.reason) for e in pipeline.store.journal.for_record("acme-hs", twin)}
    outcome, reason = journal["email"]
    assert (
        outcome == "rejected"
        and f"Existing ID: {holder}" in (reason or "")
        and "409 CONFLICT" in (reason or "")
    )
    assert applied.refused_by_code["CONFLICT"] == 1


def test_two_contacts_of_one_pass_found_the_same_email_the_first_gets_it_and_no_batch_meets_a_409(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    """Twins that hold no email yet: LoneScale finds both the same mailbox. Written to both, HubSpot would
    refuse the batch (409) for the second."""
    first, second = _twins(hubspot_sandbox, lonescale_sandbox, first_holds=False)
    instance = hubspot_instance(hubspot_sandbox)
    report = pipeline.sync(instance)
    assert report.status == "succeeded" and report.sent == 2, report.message
    pipeline.wait_for_results(report)
    hubspot_sandbox.control.clear_stats()

    applied = pipeline.apply(instance)

    assert hubspot_sandbox.control.count(route=UPDATE, status=409) == 0, "HubSpot never refused a batch"
    journals = {rid: {e.field: (e.outcome, e.reason) for e in pipeline.store.journal.for_record("acme-hs", rid)}
                for rid in (first, second)}  # fmt: skip
    [keeper] = [rid for rid, journal in journals.items() if journal["email"] == ("written", None)]
    [other] = {first, second} - {keeper}
    assert journals[other]["email"] == ("rejected", REASON.format(holder=keeper))
    assert journals[other]["phone"] == ("written", None), "its other fields are written"
    assert applied.refused_by_code["CONFLICT"] == 1
    after = everything(instance, ["email", "phone"])
    assert (after[keeper]["email"], after[other]["email"]) == (TAKEN, None)
    assert pipeline.store.emails.holders("acme-hs", [TAKEN]) == {key(TAKEN): keeper}


def test_a_dry_run_sync_and_apply_leave_the_index_as_it_was(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    _twins(hubspot_sandbox, lonescale_sandbox)
    instance = hubspot_instance(hubspot_sandbox)

    dry = pipeline.sync(instance, dry_run=True)

    assert dry.status == "succeeded" and dry.pulled == 2
    assert pipeline.store.emails.count("acme-hs") == 0, "a dry run changes nothing, the index included"
    report = pipeline.sync(instance)
    pipeline.wait_for_results(report)
    held = pipeline.store.emails.holders("acme-hs", [TAKEN])
    apply_results({instance.name: instance}, pipeline.store, dry_run=True)
    assert pipeline.store.emails.holders("acme-hs", [TAKEN]) == held
    assert pipeline.store.emails.count("acme-hs") == 1


def test_a_rollback_of_a_written_email_takes_it_out_of_the_index(
    pipeline: Pipeline, hubspot_sandbox: Served, lonescale_sandbox: Served
) -> None:
    instance, _, twin = _freed(pipeline, hubspot_sandbox, lonescale_sandbox)
    pipeline.apply(instance)
    [written] = [e for e in pipeline.store.journal.for_record("acme-hs", twin) if e.field == "email"]
    assert written.outcome == "written" and pipeline.store.emails.holders("acme-hs", [TAKEN]) == {
        key(TAKEN): twin
    }

    undone = rollback({instance.name: instance}, pipeline.store, written.run_id)

    assert undone.restored >= 1 and everything(instance, ["email"])[twin]["email"] is None
    assert pipeline.store.emails.holders("acme-hs", [TAKEN]) == {}, "nobody holds it now"
