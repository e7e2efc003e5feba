"""A small client for the emulators' admin routes (`/__sandbox/...`), used by tests, the demo and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx


class SandboxControl:
    def __init__(self, base_url: str, timeout: float = 10.0):
        self._http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def calls(self) -> list[dict[str, Any]]:
        response = self._http.get("/__sandbox/stats")
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()["calls"]
        return calls

    def count(self, method: str | None = None, route: str | None = None, status: int | None = None) -> int:
        """Calls so far, filtered by any of method, route template and status."""
        return sum(
            call["count"]
            for call in self.calls()
            if (method is None or call["method"] == method)
            and (route is None or call["route"] == route)
            and (status is None or call["status"] == status)
        )

    def concurrency(self) -> dict[str, Any]:
        """Calls that overlapped since the stats were cleared: `most_in_flight`, `overlap_count`, `overlaps`
        (each the call already running and the one that began beside it); per CRM instance, `holders` (each
        instance's callers by User-Agent) and `holder_overlap_count`, `holder_overlaps` (a call of an instance
        that began while another caller's call of it was in flight: two processes at once on one instance)."""
        response = self._http.get("/__sandbox/stats")
        response.raise_for_status()
        found: dict[str, Any] = response.json()["concurrency"]
        return found

    def holder_overlaps(self) -> list[dict[str, Any]]:
        """`concurrency()["holder_overlaps"]`: each {instance, running_holder, started_holder, running, started,
        at}; the first 100 (the count goes on)."""
        found: list[dict[str, Any]] = self.concurrency()["holder_overlaps"]
        return found

    def clear_stats(self) -> None:
        self._http.delete("/__sandbox/stats").raise_for_status()

    def reset(self, **settings: Any) -> None:
        """Back to the seeded data and default behaviour; `contacts=` / `seed=` change the data set."""
        self._http.post("/__sandbox/reset", json=settings).raise_for_status()

    def configure(self, **behaviour: Any) -> dict[str, Any]:
        response = self._http.post("/__sandbox/behaviour", json=behaviour)
        if response.status_code != 200:
            raise ValueError(f"sandbox refused behaviour {behaviour}: {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def admin(self, path: str, **params: Any) -> Any:
        """An emulator-specific admin view, e.g. LoneScale's `deliveries` or `jobs`."""
        response = self._http.get(f"/__sandbox/{path}", params=params)
        response.raise_for_status()
        return response.json()

    def admin_post(self, path: str, body: dict[str, Any]) -> Any:
        """An emulator-specific admin action, e.g. LoneScale's `credits`."""
        response = self._http.post(f"/__sandbox/{path}", json=body)
        response.raise_for_status()
        return response.json()

    def create_fields(self, sobject: str, fields: Sequence[Mapping[str, Any]]) -> list[str]:
        """Salesforce: what an admin does in Setup (New Custom Field), e.g. with CONNECTOR_STATUS_FIELDS from
        connector.sandbox.salesforce.org; returns the names created. The data API cannot create fields."""
        response = self._http.post("/__sandbox/fields", json={"sobject": sobject, "fields": list(fields)})
        if response.status_code != 200:
            raise ValueError(f"sandbox refused fields: {response.text}")
        created: list[str] = response.json()["created"]
        return created

    def seed(self, records: list[dict[str, Any]]) -> list[str]:
        response = self._http.post("/__sandbox/records", json={"records": records})
        if response.status_code != 200:
            raise ValueError(f"sandbox refused records: {response.text}")
        ids: list[str] = response.json()["ids"]
        return ids
