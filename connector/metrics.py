"""`/metrics` in Prometheus's text format: what the daemon does, per instance, from two kinds of source.

- **Events in this process**, counted where they happen, because they are kept nowhere else: every answer an
  API gave (each CRM adapter's and the LoneScale client's one HTTP path hears its status: `answered`) and
  the 429s among them; every webhook delivery by outcome, and how long its answer took
  (`connector.webhook.Webhook.receive` reports it: `delivered`). They start at zero with the process, as
  Prometheus counters may; each replica counts its own.
- **What the store already holds**: contacts pulled, sent and skipped, fields written and kept by policy,
  records and fields the CRM refused by its code, credits committed, jobs by state, the last successful run,
  the month's contacts. These are read from the store at scrape time (`StoreCollector`), not counted in
  memory: so they agree with the runs `lonescale-sync status` shows, survive a restart, and are the same
  whichever replica is scraped (combine replicas with `max`, not `sum`). They are counters because each sums
  the counts of finished runs, which never change once written. (Fields are the write-back passes' counts:
  `status`'s journal total also holds rollbacks' writes and owner tasks.)
- **What the config says**: each instance's monthly cap and its schedule's longest gap between runs, so an
  alert can divide by them.

Each `Metrics` has its own `CollectorRegistry`, never prometheus_client's global one: a runtime's figures
are its store's, and two runtimes in one process (tests, say) do not collide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connector.config import InstanceSettings
from connector.logs import current_instance
from connector.retry import Answered
from connector.schedules import longest_gap
from connector.selection import month_start
from connector.store import Store

PREFIX = "lonescale_sync_"
LONESCALE = "lonescale"  # the `crm` label of LoneScale's own API calls
SYNCS = ("sync",)
SENDS = ("sync", "resend")  # runs that hand contacts to LoneScale: a sync, and a person's re-send
WRITES = ("apply", "replay", "retry")  # runs whose counts are a write-back pass's (ApplyReport.counts)
# Webhook answers take milliseconds (stored, then 2xx); a group commit on a slow disk, tens of them.
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# `only_if` reasons name the result's value ("email_status is 'risky', not one of [...]"): as a label, the
# gate's name is enough, and keeps the label's values few.
_ONLY_IF = re.compile(r"^(\w+) is .*, not one of ")


def policy_label(reason: str) -> str:
    """A kept field's reason (connector.mapping.decide) as a label value of few distinct values."""
    gate = _ONLY_IF.match(reason)
    return f"only_if {gate.group(1)}" if gate else reason


class StoreCollector(Collector):
    """The domain figures, read from the store at each scrape: the runs' from the sums kept as runs finish
    (connector.store.run_totals, a few rows per instance whatever the history), the jobs' by a GROUP BY."""

    def __init__(self, store: Store, instances: Sequence[InstanceSettings],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):  # fmt: skip
        self.store, self.now = store, now
        self.crm = {s.name: s.crm for s in instances}
        self.caps = {s.name: s.budget.max_contacts_per_month for s in instances}
        moment = now()
        self.gaps = {s.name: longest_gap(s.schedule, moment).total_seconds() for s in instances}

    def describe(self) -> Iterable[Metric]:
        return []  # read at scrape time only: the registry must not collect the store to learn the names

    def collect(self) -> Iterator[Metric]:
        yield from self._sync_side()
        yield from self._write_side()
        yield from self._jobs()
        yield from self._runs_and_budget()

    def _crm(self, instance: str) -> str:
        return self.crm.get(instance, "")

    def _sync_side(self) -> Iterator[Metric]:
        runs = self.store.runs
        pulled = CounterMetricFamily(
            f"{PREFIX}contacts_pulled",
            "CRM records read by syncs (each record once per run).",
            labels=["instance"],
        )
        sent = CounterMetricFamily(
            f"{PREFIX}contacts_sent",
            "Contacts handed to LoneScale, by syncs and re-sends.",
            labels=["instance"],
        )
        credits = CounterMetricFamily(
            f"{PREFIX}credits_committed",
            "The most LoneScale credits the contacts sent can cost: each type asked for at its price "
            "([lonescale] credits_per_type), as if every one were found; LoneScale bills found results only.",
            labels=["instance"],
        )
        for instance, totals in runs.totals(SYNCS, ["pulled"]).items():
            pulled.add_metric([instance], totals["pulled"])
        for instance, totals in runs.totals(SENDS, ["sent", "projected_credits"]).items():
            sent.add_metric([instance], totals["sent"])
            credits.add_metric([instance], totals["projected_credits"])
        skipped = CounterMetricFamily(
            f"{PREFIX}contacts_skipped",
            "CRM records a sync read and did not send, by reason (nothing missing, cooling down, a cap…).",
            labels=["instance", "reason"],
        )
        for (instance, reason), count in sorted(runs.totals_by(SYNCS, "skipped").items()):
            skipped.add_metric([instance, reason], count)
        yield from (pulled, sent, skipped, credits)

    def _write_side(self) -> Iterator[Metric]:
        runs = self.store.runs
        fields = CounterMetricFamily(
            f"{PREFIX}fields",
            "Fields of enriched records by the write-back's decision: written, refused by the CRM, or kept "
            "by a write policy (the policy's reason).",
            labels=["instance", "crm", "decision"],
        )
        records = CounterMetricFamily(
            f"{PREFIX}records_written",
            "Records the CRM confirmed written (all their fields, or all but those it refused).",
            labels=["instance", "crm"],
        )
        for instance, totals in runs.totals(
            WRITES, ["fields_written", "fields_refused", "records_written"]
        ).items():
            crm = self._crm(instance)
            fields.add_metric([instance, crm, "written"], totals["fields_written"])
            fields.add_metric([instance, crm, "refused"], totals["fields_refused"])
            records.add_metric([instance, crm], totals["records_written"])
        kept: dict[tuple[str, str], float] = {}
        for (instance, reason), count in runs.totals_by(WRITES, "kept_by_policy").items():
            label = (instance, policy_label(reason))
            kept[label] = kept.get(label, 0.0) + count
        for (instance, why), count in sorted(kept.items()):
            fields.add_metric([instance, self._crm(instance), f"kept: {why}"], count)
        rejected = CounterMetricFamily(
            f"{PREFIX}records_rejected",
            "Records the CRM rejected whole (nothing of them written), by its code (Salesforce's statusCode, "
            "HubSpot's category; OBJECT_NOT_FOUND: deleted or merged before the write).",
            labels=["instance", "crm", "code"],
        )
        refused = CounterMetricFamily(
            f"{PREFIX}fields_refused",
            "Fields the CRM refused on records otherwise written, by its code (e.g. STRING_TOO_LONG).",
            labels=["instance", "crm", "code"],
        )
        for family, key in ((rejected, "rejected_by_code"), (refused, "refused_by_code")):
            for (instance, code), count in sorted(runs.totals_by(WRITES, key).items()):
                family.add_metric([instance, self._crm(instance), code], count)
        yield from (fields, records, rejected, refused)

    def _jobs(self) -> Iterator[Metric]:
        count = GaugeMetricFamily(f"{PREFIX}jobs", "LoneScale jobs by state.", labels=["instance", "state"])
        oldest = GaugeMetricFamily(
            f"{PREFIX}job_oldest_age_seconds",
            "Age of the oldest job in each state, since it was created.",
            labels=["instance", "state"],
        )
        now = self.now()
        for instance, state, jobs, created in sorted(self.store.jobs.ages()):
            count.add_metric([instance, state], jobs)
            oldest.add_metric([instance, state], max(0.0, (now - created).total_seconds()))
        yield from (count, oldest)

    def _runs_and_budget(self) -> Iterator[Metric]:
        last = GaugeMetricFamily(
            f"{PREFIX}last_success_timestamp_seconds",
            "When the instance's latest successful run of each kind (sync, apply, …) finished, in Unix seconds.",
            labels=["instance", "kind"],
        )
        for (instance, kind), finished in sorted(self.store.runs.last_succeeded().items()):
            last.add_metric([instance, kind], finished.timestamp())
        gap = GaugeMetricFamily(
            f"{PREFIX}schedule_gap_seconds",
            "The longest wait between two scheduled syncs of the instance: its interval, or its cron line's "
            "widest gap (a weekend for a weekday schedule). The stale-instance alert multiplies it.",
            labels=["instance"],
        )
        for instance, seconds in sorted(self.gaps.items()):
            gap.add_metric([instance], seconds)
        month = GaugeMetricFamily(
            f"{PREFIX}month_contacts_sent",
            "Contacts sent to LoneScale this calendar month (UTC): what [instances.budget] "
            "max_contacts_per_month caps.",
            labels=["instance"],
        )
        cap = GaugeMetricFamily(
            f"{PREFIX}month_contacts_cap",
            "The instance's max_contacts_per_month (absent when it has no cap).",
            labels=["instance"],
        )
        since = month_start(self.now())
        for instance, limit in self.caps.items():
            month.add_metric([instance], self.store.jobs.contacts_sent_since(instance, since))
            if limit is not None:
                cap.add_metric([instance], limit)
        yield from (last, gap, month, cap)


class Metrics:
    """One runtime's metrics: the in-process counters, the store's figures, and the `/metrics` route."""

    def __init__(self, store: Store, instances: Sequence[InstanceSettings],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):  # fmt: skip
        """`now`: the time job ages and the calendar month are measured by."""
        self.registry = CollectorRegistry()
        self.api_calls = Counter(
            f"{PREFIX}api_calls",
            "Answers from each API (a CRM's, or LoneScale's as crm=lonescale), retries and refusals included.",
            ["crm", "instance"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            f"{PREFIX}api_rate_limited",
            "HTTP 429 answers from each API: its rate limit (or daily quota) was hit.",
            ["crm", "instance"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            f"{PREFIX}webhook_deliveries",
            "Webhook deliveries (POSTs to a job's URL) by outcome (stored, duplicate, refused) and the HTTP "
            "status answered; instance is empty for a call whose job and token did not match one of ours.",
            ["instance", "outcome", "status"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            f"{PREFIX}webhook_delivery_seconds",
            "Seconds from a webhook call's arrival to its answer (the body stored first, for a 2xx).",
            ["instance"],
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StoreCollector(store, instances, now))

    def answered(self, crm: str, instance: str) -> Answered:
        """What an instance's adapter calls with each answer's status."""
        calls, limited = self.api_calls.labels(crm, instance), self.rate_limited.labels(crm, instance)

        def heard(status: int) -> None:
            calls.inc()
            if status == 429:
                limited.inc()

        return heard

    def lonescale_answered(self, status: int) -> None:
        """What the LoneScale client, shared by every instance, calls: the instance is the one whose work is
        under way on this thread (connector.logs.log_context), empty for none."""
        instance = current_instance() or ""
        self.api_calls.labels(LONESCALE, instance).inc()
        if status == 429:
            self.rate_limited.labels(LONESCALE, instance).inc()

    def delivered(self, instance: str, outcome: str, status: int, seconds: float) -> None:
        """What the webhook calls once it has answered a delivery."""
        self.deliveries.labels(instance, outcome, str(status)).inc()
        self.delivery_seconds.labels(instance).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def serve(self, request: Request) -> Response:
        body = await run_in_threadpool(self.exposition)  # the store is read: not on the event loop
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> list[Route]:
        """`GET /metrics`, for the app that serves it (the status app)."""
        return [Route("/metrics", self.serve, methods=["GET"])]
