"""The webhook over a real socket: stored before the 2xx, duplicates ignored, bad input refused and kept."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from connector.models import JobStatus
from connector.serving import ThreadedServer
from connector.store import Job, Store, sha256
from connector.webhook import create_app

HTTP = httpx.Client(timeout=10)  # one client: building one per call costs ~50 ms (its SSL context)
RESULT = {"email": "zoe@acme.fr", "emailStatus": "valid", "custom": {"contact_id": "003A"}}
CONTACTS = 60  # job-1's: one body per contact is what the concurrent test delivers


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Store, str]]:
    store = Store(f"sqlite:///{tmp_path / 'hook.db'}")
    token = secrets.token_urlsafe(24)
    run_id = store.runs.start("acme", "sync")
    now = datetime.now(UTC)
    store.jobs.create(
        Job("job-1", "acme", run_id, sha256(token), "ls-1", JobStatus.SENT, ["email"], CONTACTS, now, now, None,
            None),
        [],
    )  # fmt: skip
    server = ThreadedServer(create_app(store, max_body_bytes=4096), name="webhook")
    url = server.start()
    yield url, store, token
    server.stop()
    store.close()


def post(url: str, token: str, body: bytes | str, job: str = "job-1", **kwargs: object) -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return HTTP.post(f"{url}/webhooks/lonescale/{job}", params={"token": token}, content=data, **kwargs)  # type: ignore[arg-type]


def test_a_delivery_is_stored_before_it_is_acknowledged(served: tuple[str, Store, str]) -> None:
    url, store, token = served
    response = post(url, token, json.dumps(RESULT))
    assert response.status_code == 200 and response.json()["message"] == "stored"
    (delivery,) = store.inbox.new()
    assert json.loads(delivery.body) == RESULT and delivery.job_id == "job-1"


def test_a_duplicate_delivery_is_acknowledged_and_ignored(served: tuple[str, Store, str]) -> None:
    url, store, token = served
    assert post(url, token, json.dumps(RESULT)).json()["message"] == "stored"
    again = post(url, token, json.dumps(RESULT))
    assert again.status_code == 200 and again.json()["message"] == "duplicate"
    assert len(store.inbox.of_job("job-1")) == 1


@pytest.mark.parametrize("job", ["job-1", "job-404"])
@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_a_wrong_token_or_unknown_job_gets_the_same_401_and_nothing_is_stored(
    served: tuple[str, Store, str], job: str, token: str
) -> None:
    url, store, _ = served
    response = post(url, token, json.dumps(RESULT), job=job)
    assert response.status_code == 401 and response.json()["message"] == "unknown job or wrong token"
    assert store.inbox.of_job("job-1") == []


def test_a_job_refused_as_unknown_is_accepted_once_it_exists(served: tuple[str, Store, str]) -> None:
    url, store, token = served
    assert post(url, token, json.dumps(RESULT), job="job-2").status_code == 401
    now = datetime.now(UTC)
    run_id = store.runs.start("acme", "sync")
    store.jobs.create(
        Job("job-2", "acme", run_id, sha256(token), None, JobStatus.SENT, ["email"], 1, now, now, None, None), []
    )  # fmt: skip
    response = post(url, token, json.dumps(RESULT), job="job-2")
    assert response.status_code == 200 and response.json()["message"] == "stored"
    assert post(url, "wrong-token", json.dumps(RESULT), job="job-2").status_code == 401, (
        "known, still checked"
    )


def test_an_oversized_body_is_refused_whether_or_not_it_declares_its_length(
    served: tuple[str, Store, str],
) -> None:
    url, store, token = served
    big = json.dumps({"contacts": [RESULT] * 200})
    assert post(url, token, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(100):
            yield b" " * 100

    response = HTTP.post(f"{url}/webhooks/lonescale/job-1", params={"token": token}, content=chunks())
    assert response.status_code == 413
    assert store.inbox.of_job("job-1") == []


@pytest.mark.parametrize(
    ("body", "status"), [("not json", 400), ("42", 422), ('{"contacts": [1]}', 422), ("[]", 422)]
)
def test_an_unusable_body_is_refused_and_kept_for_inspection(
    served: tuple[str, Store, str], body: str, status: int
) -> None:
    url, store, token = served
    assert post(url, token, body).status_code == status
    (kept,) = store.inbox.of_job("job-1")
    assert kept["status"] == "invalid" and kept["body"] == body.encode() and kept["error"]
    assert store.inbox.new() == []
    assert post(url, token, json.dumps(RESULT)).status_code == 200  # and the server keeps serving


def test_a_per_job_body_whose_echoed_custom_names_another_job_is_refused_and_kept(
    served: tuple[str, Store, str],
) -> None:
    url, store, token = served
    ours = json.dumps(
        {"id": "ls-1", "contacts": [RESULT], "custom": {"id": "job-1", "provider": "lonescale"}}
    )
    theirs = json.dumps(
        {"id": "ls-2", "contacts": [RESULT], "custom": {"id": "job-2", "provider": "lonescale"}}
    )

    assert post(url, token, ours).status_code == 200
    refused = post(url, token, theirs)

    assert refused.status_code == 422
    assert (
        refused.json()["message"]
        == "unusable payload: its custom.id 'job-2' names another request than job job-1"
    )
    assert [(d["status"], d["body"]) for d in store.inbox.of_job("job-1")] == [
        ("new", ours.encode()),
        ("invalid", theirs.encode()),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {**RESULT, "custom": {"contact_id": "003A", "id": "job-2"}},  # one bare result: its custom is its own
        [{**RESULT, "custom": {"contact_id": "003A", "id": "job-2"}}],
        {"contacts": [{**RESULT, "custom": {"contact_id": "003A", "id": "job-2"}}]},
    ],
    ids=["a bare result", "a list", "an envelope without custom"],
)
def test_a_contacts_own_custom_is_never_taken_for_the_requests(
    served: tuple[str, Store, str], body: object
) -> None:
    url, store, token = served
    assert post(url, token, json.dumps(body)).status_code == 200
    assert [d["status"] for d in store.inbox.of_job("job-1")] == ["new"]


def test_concurrent_deliveries_are_all_stored(served: tuple[str, Store, str]) -> None:
    url, store, token = served
    bodies = [json.dumps({**RESULT, "custom": {"contact_id": f"003{n}"}}) for n in range(CONTACTS)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda b: post(url, token, b).status_code, bodies))
    assert statuses == [200] * CONTACTS
    assert len(store.inbox.new(limit=100)) == CONTACTS


def test_healthz_answers_only_while_the_store_answers(served: tuple[str, Store, str]) -> None:
    url, store, _ = served
    assert HTTP.get(f"{url}/healthz").json() == {"status": "ok", "message": "ok"}
    with store.database.engine.begin() as db:
        db.execute(text("DROP TABLE job_contacts"))
        db.execute(text("DROP TABLE jobs"))
    broken = HTTP.get(f"{url}/healthz")
    assert broken.status_code == 503 and "store unavailable" in broken.json()["message"]
