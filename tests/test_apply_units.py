"""A write-back of one instance alone: the unit of work a dispatcher runs under that instance's key."""

from __future__ import annotations

from connector.apply import apply_results
from tests.conftest import Served
from tests.support import Pipeline, hubspot_instance, salesforce_instance


def test_a_write_back_of_one_instance_applies_its_results_and_leaves_the_others_waiting(
    pipeline: Pipeline, salesforce_sandbox: Served, hubspot_sandbox: Served
) -> None:
    sf, hs = salesforce_instance(salesforce_sandbox), hubspot_instance(hubspot_sandbox)
    both = {sf.name: sf, hs.name: hs}
    for instance in (sf, hs):
        report = pipeline.sync(instance)
        assert report.sent > 0, report.message
        pipeline.wait_for_results(report)

    first = apply_results(both, pipeline.store, only=sf.name)

    assert first.fields_written > 0 and first.deliveries > 0
    assert not pipeline.store.inbox.new(10, instance=sf.name), "all of its results were applied"
    waiting = pipeline.store.inbox.new(10_000, instance=hs.name)
    assert waiting, "the other instance's deliveries are left for its own unit"
    assert first.uncorrelated == 0, "and none of them was taken for a delivery nobody knows"

    second = apply_results(both, pipeline.store, only=hs.name)

    assert second.deliveries == len(waiting)
    assert second.fields_written > 0 and not pipeline.store.inbox.new(10)
