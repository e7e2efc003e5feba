"""Which contacts share one LoneScale job: as many as a request takes once LoneScale has shown that its
results say whose they are; until then, one contact per job.

Each job has its own webhook URL, so a result is always known to belong to its job; within the job it must
be matched to one contact. LoneScale documents no field that carries our `custom.contact_id` back (the
webhook's EnrichPayload has none: https://docs.lonescale.com/api-reference/webhookpayload/enrichment-payload),
and a result need not carry anything else to match by either: a phone found without the profile carries
no name, a "not found" carries nothing. A result that matches no contact is paid for and lost. So until a
delivery has shown the echo (`connector.inbox.echo_seen`), each job holds one contact, and its URL says
whose results they are; once it has, jobs are filled to `batch_size`.
"""

from __future__ import annotations

from collections.abc import Iterator

from connector.mapping import Mapped
from connector.models import CrmRecord, EnrichmentType

Batch = list[tuple[CrmRecord, Mapped]]
Key = tuple[EnrichmentType, ...]


class Batcher:
    """Batches filling up, per set of types; `add` hands back a batch as soon as it is ready to send."""

    def __init__(self, batch_size: int, *, echoed: bool):
        self.batch_size = batch_size if echoed else 1
        self._open: dict[Key, Batch] = {}

    def add(self, key: Key, record: CrmRecord, mapped: Mapped) -> Batch | None:
        batch = self._open.setdefault(key, [])
        batch.append((record, mapped))
        if len(batch) < self.batch_size:
            return None
        return self._open.pop(key)

    def rest(self) -> Iterator[tuple[Key, Batch]]:
        """What is left once the pull is done, batch by batch in the order they were opened (emptied as it goes)."""
        while self._open:
            key = next(iter(self._open))
            yield key, self._open.pop(key)

    def waiting(self) -> Iterator[str]:
        """The record ids in batches not yet sent."""
        for batch in self._open.values():
            for record, _ in batch:
                yield record.ref.id
