"""The webhook under abuse, over a real socket: every bad request is a 4xx with a JSON body and a log line,
nothing is stored for a caller who fails the token check, an authenticated body we refuse is kept for a
person, the token never reaches a log, and the server keeps serving."""

from __future__ import annotations

import gzip
import json
import logging
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.models import JobStatus
from connector.serving import ThreadedServer
from connector.store import Job, Store, sha256
from connector.webhook import create_app

HTTP = httpx.Client(timeout=10)
LIMIT = 64_000  # the served app's max_body_bytes
MAX_RESULTS = 1_000  # the served app's cap on results per delivery
RESULT = {"email": "zoe@acme.fr", "emailStatus": "valid", "custom": {"contact_id": "003A"}}
SERVER_SIDE = ("connector", "uvicorn", "starlette")  # httpx logs the URL it calls, token included: not ours


@dataclass
class Hook:
    """A webhook serving two jobs of its own, called `job-a` and `job-b` here, each with its own token."""

    url: str
    store: Store
    ids: dict[str, str]  # `job-a` → its id in the store (unique per test: the server is shared)
    tokens: dict[str, str]  # `job-a` → its token
    sent: int = 0

    def post(
        self,
        body: bytes | str | Iterator[bytes],
        job: str = "job-a",
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = body.encode() if isinstance(body, str) else body
        params = {"token": self.tokens.get(job, "") if token is None else token}
        return HTTP.post(self.endpoint(job), params=params, content=content, headers=headers)

    def endpoint(self, job: str) -> str:
        return f"{self.url}/webhooks/lonescale/{quote(self.ids.get(job, job), safe='')}"

    def kept(self, job: str = "job-a") -> list[dict[str, Any]]:
        return self.store.inbox.of_job(self.ids.get(job, job))

    def nothing_kept(self) -> bool:
        return self.kept("job-a") == [] and self.kept("job-b") == []

    def still_serves(self) -> None:
        """A fresh, valid delivery is stored and acknowledged: the bad request before it broke nothing."""
        self.sent += 1
        body = json.dumps({**RESULT, "custom": {"contact_id": f"fresh-{self.sent}"}})
        response = self.post(body)
        assert response.status_code == 200 and response.json()["message"] == "stored"


def add_jobs(store: Store, contacts: int = 1) -> tuple[dict[str, str], dict[str, str]]:
    """Two new jobs of `contacts` each: their ids and their tokens, both keyed `job-a` and `job-b`."""
    run_id = store.runs.start("acme", "sync")
    now = datetime.now(UTC)
    ids = {name: f"{name}-{secrets.token_hex(4)}" for name in ("job-a", "job-b")}
    tokens = {name: secrets.token_urlsafe(32) for name in ids}
    for name, job_id in ids.items():
        store.jobs.create(
            Job(job_id, "acme", run_id, sha256(tokens[name]), None, JobStatus.SENT, ["email"], contacts, now, now, None,
                None),
            [],
        )  # fmt: skip
    return ids, tokens


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    """One server for the module (starting one per test would double the file's time)."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('hook') / 'hook.db'}")
    served = ThreadedServer(create_app(store, max_body_bytes=LIMIT, max_results=MAX_RESULTS), name="webhook")
    try:
        yield served.start(), store
    finally:
        served.stop()
        store.close()


@pytest.fixture
def hook(server: tuple[str, Store]) -> Hook:
    url, store = server
    return Hook(url, store, *add_jobs(store))


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # everything, so a token at any level would be seen
    return caplog


def webhook_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "connector.webhook" and r.levelno >= logging.WARNING
    ]


def refused(response: httpx.Response, status: int) -> str:
    """The refusal's message, once it is checked to be the expected 4xx with our JSON body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    return str(body["message"])


def raw(url: str, request: bytes) -> tuple[int, bytes]:
    """Bytes an HTTP client would refuse to send (a malformed Content-Length): the status and body back."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # every request says Connection: close
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("case", "job", "token"),
    [
        ("no token at all", "job-a", None),
        ("an empty token", "job-a", ""),
        ("a wrong token", "job-a", "not-the-token"),
        ("job B's valid token on job A's URL", "job-a", "job-b"),
        ("job A's valid token on job B's URL", "job-b", "job-a"),
        ("a valid token on an unknown job", "job-zzz", "job-a"),
    ],
)
def test_a_caller_without_the_jobs_own_token_gets_401_and_stores_nothing(
    hook: Hook, logged: pytest.LogCaptureFixture, case: str, job: str, token: str | None
) -> None:
    params = {} if token is None else {"token": hook.tokens.get(token, token)}
    response = HTTP.post(hook.endpoint(job), params=params, content=json.dumps(RESULT))
    assert refused(response, 401) == "unknown job or wrong token"
    assert hook.nothing_kept()
    assert any("401" in line and repr(hook.ids.get(job, job)) in line for line in webhook_lines(logged)), case
    hook.still_serves()


def test_a_refused_or_accepted_request_never_logs_its_token(
    hook: Hook, logged: pytest.LogCaptureFixture
) -> None:
    secrets_in_play = [*hook.tokens.values(), "a-guessed-token-0123456789"]
    hook.post(json.dumps(RESULT), job="job-a", token=hook.tokens["job-b"])  # 401
    hook.post(json.dumps(RESULT), job="job-zzz", token=hook.tokens["job-a"])  # 401
    hook.post(json.dumps(RESULT), job="job-a", token="a-guessed-token-0123456789")  # 401
    hook.post("not json")  # 400, kept
    hook.post("x" * (LIMIT + 1))  # 413
    HTTP.get(hook.endpoint("job-a"), params={"token": hook.tokens["job-a"]})  # 405
    hook.still_serves()  # 200, logged at debug
    server_lines = [r.getMessage() for r in logged.records if r.name.startswith(SERVER_SIDE)]
    assert len(server_lines) >= 6  # the requests above were logged...
    assert not [line for line in server_lines if any(t in line for t in secrets_in_play)]  # ...tokenless


def test_a_job_id_cannot_forge_a_log_line(hook: Hook, logged: pytest.LogCaptureFixture) -> None:
    forged = "job-a\n2026-01-01 INFO connector.webhook: all good"
    refused(hook.post(json.dumps(RESULT), job=forged, token=hook.tokens["job-a"]), 401)
    (line,) = webhook_lines(logged)
    assert "\n" not in line and "\\n" in line
    hook.still_serves()


# --------------------------------------------------------------------------- size


def test_a_body_over_the_limit_is_refused_413_whether_declared_or_streamed(
    hook: Hook, logged: pytest.LogCaptureFixture
) -> None:
    assert "larger than" in refused(hook.post(" " * (LIMIT + 1)), 413)

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(LIMIT // 1000 + 1):
            yield b" " * 1000

    refused(hook.post(chunked()), 413)
    assert hook.nothing_kept()  # keeping an oversize body would undo the limit
    assert sum("413" in line for line in webhook_lines(logged)) == 2
    hook.still_serves()


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not(hook: Hook) -> None:
    body = json.dumps(RESULT).encode()
    padded = body + b" " * (LIMIT - len(body))
    assert hook.post(padded).status_code == 200
    refused(hook.post(padded + b" "), 413)
    assert [d["body"] for d in hook.kept()] == [padded]


@pytest.mark.parametrize(
    ("length", "status"),
    [
        # Past our limit but within 64 bits: our JSON 413, before a byte of the body is read.
        ("999999999999999999", 413),
        # Past 64 bits: uvicorn's HTTP parser (httptools) refuses the request as malformed, a plain 400,
        # before the app sees it. Either way nothing is read, kept or waited for.
        ("99999999999999999999", 400),
    ],
)
def test_an_absurd_declared_length_is_refused_before_the_body_is_read(
    hook: Hook, length: str, status: int
) -> None:
    path = f"/webhooks/lonescale/{hook.ids['job-a']}?token={hook.tokens['job-a']}"
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    # Only two body bytes follow: a server waiting for 10^18 would never answer and `raw` would time out.
    answered, body = raw(hook.url, request.encode() + b"{}")
    assert answered == status
    if status == 413:
        assert json.loads(body)["status"] == "error"
    assert hook.nothing_kept()
    hook.still_serves()


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", " ", "0x10", "5, 6"])
def test_a_malformed_content_length_is_a_400_and_the_server_keeps_serving(hook: Hook, length: str) -> None:
    # uvicorn refuses these before the app sees them, so the answer is its plain-text 400, not our JSON.
    path = f"/webhooks/lonescale/{hook.ids['job-a']}?token={hook.tokens['job-a']}"
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{{}}"
    status, _ = raw(hook.url, request.encode())
    assert status == 400
    assert hook.nothing_kept()
    hook.still_serves()


def test_a_client_that_hangs_up_mid_body_is_logged_and_stores_nothing(
    hook: Hook, logged: pytest.LogCaptureFixture
) -> None:
    parts = urlsplit(hook.url)
    path = f"/webhooks/lonescale/{hook.ids['job-a']}?token={hook.tokens['job-a']}"
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{}}".encode())
    deadline = time.monotonic() + 5
    while not any("went away" in line for line in webhook_lines(logged)):
        assert time.monotonic() < deadline, "the disconnect was never logged"
        time.sleep(0.02)
    assert hook.nothing_kept()
    hook.still_serves()


def test_a_huge_array_of_tiny_objects_is_refused_before_it_is_parsed_and_kept(
    tmp_path: Path, logged: pytest.LogCaptureFixture
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'big.db'}")
    ids, tokens = add_jobs(store, contacts=100)  # a job whose byte cap the 2 MB flood is well within
    defaults = ThreadedServer(create_app(store), name="webhook-defaults")  # 5 MB, 10,000 results
    try:
        url = defaults.start()
        flood = json.dumps([{"email": "a@b.c"}] * 100_000).encode()  # 2 MB, under the body limit
        response = HTTP.post(
            f"{url}/webhooks/lonescale/{ids['job-a']}", params={"token": tokens["job-a"]}, content=flood
        )
        assert "more than 10000 results" in refused(response, 413)
        (kept,) = store.inbox.of_job(ids["job-a"])
        assert kept["status"] == "invalid" and len(kept["body"]) == len(flood)
        assert any("413" in line for line in webhook_lines(logged))
        assert HTTP.get(f"{url}/healthz").status_code == 200
    finally:
        defaults.stop()
        store.close()


def test_a_delivery_at_the_results_cap_is_accepted(hook: Hook) -> None:
    at_cap = {"contacts": [{"email": f"p{n}@acme.fr"} for n in range(MAX_RESULTS)]}
    assert hook.post(json.dumps(at_cap)).status_code == 200
    over = {"contacts": at_cap["contacts"] + [{"email": "one@more.fr"}]}
    refused(hook.post(json.dumps(over)), 413)
    assert [d["status"] for d in hook.kept()] == ["new", "invalid"]


# --------------------------------------------------------------------------- bodies we cannot use


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"not json", 400),
        (b'{"contacts": [', 400),
        (b"\xff\xfe\xfa invalid utf-8", 400),
        (b'{"email": "caf\xe9@acme.fr"}', 400),  # Latin-1, not UTF-8
        (b'{"email": NaN}', 400),  # Python reads it; JSON has no NaN
        (b'{"companyEmployeeCount": Infinity, "email": "a@b.c"}', 400),
        (b"[" * 20_000 + b"]" * 20_000, 400),  # nesting past the parser's recursion limit
        (b'{"email": "a@b.c", "n": ' + b"9" * 5_000 + b"}", 400),  # past int's digit limit
        (b"42", 422),
        (b"-0.5", 422),
        (b'"a string"', 422),
        (b"true", 422),
        (b"null", 422),
        (b"[]", 422),
        (b"[1, 2, 3]", 422),
        (b'["a@b.c"]', 422),
        (b"[[{}]]", 422),
        (b'{"contacts": [{"email": "a@b.c"}, "x"]}', 422),
        (b'{"contacts": [[{"email": "a@b.c"}], {"a": [1, {"b": null}]}]}', 422),
        (b'[{"email": "a@b.c"}, [[[]]], {"c": {"d": []}}]', 422),
        (b'{"contacts": "x"}', 422),
        (b'{"contacts": {"email": "a@b.c"}}', 422),
        (b'{"results": null, "email": "a@b.c"}', 422),
        (b'{"id": "ls-1", "data": 7}', 422),
        (b'{"contacts": [], "id": "ls-1"}', 422),
    ],
)
def test_an_authenticated_body_we_cannot_use_is_refused_logged_and_kept(
    hook: Hook, logged: pytest.LogCaptureFixture, body: bytes, status: int
) -> None:
    assert refused(hook.post(body), status).startswith("unusable payload")
    (kept,) = hook.kept()
    # Kept as it came, but `invalid`: apply_results drains only `new` deliveries.
    assert kept["status"] == "invalid" and kept["body"] == body and kept["error"]
    assert any(f"refused {status}, body kept" in line for line in webhook_lines(logged))
    hook.still_serves()


@pytest.mark.parametrize(
    "body",
    [
        {"status": "failed"},  # LoneScale's miss, with no `custom` echoed: useless to us, yet legitimate
        {"contacts": [{"status": "failed"}, {"status": "failed"}], "id": "ls-1"},
        {"status": "failed", "custom": {"contact_id": "003A"}},
        [{"firstName": "Zoé"}],
        # Found, but nothing of the requested types: no EnrichPayload field is required
        # (docs/lonescale.md#result-payloads).
        {},
        {"contacts": [{}, {}]},
        {"someFutureField": {"nested": [1, {"deeper": None}]}},  # unknown fields are ignored, not refused
    ],
)
def test_a_sparse_but_documented_delivery_is_still_accepted(hook: Hook, body: object) -> None:
    # Refusing these would refuse LoneScale itself; apply_results notes what it cannot correlate.
    assert hook.post(json.dumps(body)).status_code == 200
    assert [d["status"] for d in hook.kept()] == ["new"]


def test_a_refused_body_sent_twice_is_kept_once(hook: Hook) -> None:
    refused(hook.post("not json"), 400)
    refused(hook.post("not json"), 400)
    assert len(hook.kept()) == 1


# --------------------------------------------------------------------------- odd headers and methods


def test_a_claimed_compression_is_refused_415_and_kept_as_it_came(
    hook: Hook, logged: pytest.LogCaptureFixture
) -> None:
    zipped = gzip.compress(json.dumps(RESULT).encode())
    refused(hook.post(zipped, headers={"content-encoding": "gzip"}), 415)
    plain = json.dumps({**RESULT, "note": "not actually compressed"})
    refused(hook.post(plain, headers={"content-encoding": "GZIP, br"}), 415)
    assert [(d["status"], d["body"]) for d in hook.kept()] == [
        ("invalid", zipped),
        ("invalid", plain.encode()),
    ]
    assert sum("refused 415" in line for line in webhook_lines(logged)) == 2
    hook.still_serves()


def test_an_identity_encoding_is_no_compression(hook: Hook) -> None:
    assert hook.post(json.dumps(RESULT), headers={"content-encoding": "identity"}).status_code == 200


def test_a_content_type_is_not_trusted_either_way(hook: Hook) -> None:
    # LoneScale documents no Content-Type (docs/lonescale.md#webhook-delivery): JSON labelled text/plain is
    # still JSON (refusing it could lose a real delivery), and a label of application/json does not make text
    # JSON.
    assert hook.post(json.dumps(RESULT), headers={"content-type": "text/plain"}).status_code == 200
    refused(hook.post("hello", headers={"content-type": "application/json"}), 400)
    refused(hook.post("<xml/>", headers={"content-type": "application/xml; charset=utf-16"}), 400)
    assert [d["status"] for d in hook.kept()] == ["new", "invalid", "invalid"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_a_wrong_method_is_a_405_in_json_and_logged(
    hook: Hook, logged: pytest.LogCaptureFixture, method: str
) -> None:
    response = HTTP.request(
        method, hook.endpoint("job-a"), params={"token": hook.tokens["job-a"]}, content=json.dumps(RESULT)
    )
    refused(response, 405)
    assert response.headers["allow"] == "POST"
    assert hook.nothing_kept()
    assert any(f"refused 405: {method}" in line for line in webhook_lines(logged))
    hook.still_serves()


def test_an_unknown_path_is_a_404_in_json_and_logged(hook: Hook, logged: pytest.LogCaptureFixture) -> None:
    refused(HTTP.post(f"{hook.url}/webhooks/lonescale/"), 404)
    refused(HTTP.post(f"{hook.url}/webhooks/lonescale/job-a/extra"), 404)
    refused(HTTP.post(f"{hook.url}/webhooks/lonescale/{hook.ids['job-a']}/"), 404)  # not a bodiless redirect
    assert sum("refused 404" in line for line in webhook_lines(logged)) == 3
    hook.still_serves()


def test_a_path_outside_the_webhooks_is_a_404_without_a_refusal_warning(
    hook: Hook, logged: pytest.LogCaptureFixture
) -> None:
    """A scraper asking for /metrics, or a scanner, is not a LoneScale delivery gone wrong."""
    refused(HTTP.get(f"{hook.url}/metrics"), 404)
    refused(HTTP.post(f"{hook.url}/wp-login.php"), 404)
    assert webhook_lines(logged) == []
    hook.still_serves()


def test_an_unsupported_transfer_encoding_is_a_400(hook: Hook) -> None:
    path = f"/webhooks/lonescale/{hook.ids['job-a']}?token={hook.tokens['job-a']}"
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n{{}}"
    status, _ = raw(hook.url, request.encode())
    assert status == 400
    assert hook.nothing_kept()
    hook.still_serves()


# --------------------------------------------------------------------------- anything at all


@pytest.fixture(scope="module")
def shared_hook(server: tuple[str, Store]) -> Hook:
    url, store = server
    return Hook(url, store, *add_jobs(store, contacts=100))  # caps far off: 150 examples reach the store


KEYS = st.sampled_from(
    ["contacts", "results", "data", "id", "custom", "contact_id", "email", "emailStatus", "firstName",
     "lastName", "linkedinUrl", "status", "profile", "jobChangeDetected", "most_probable_email"]
) | st.text(max_size=12)  # fmt: skip
JSON_TREES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)
BODIES = (
    st.binary(max_size=2_000)
    | st.text(max_size=300).map(str.encode)
    | JSON_TREES.map(lambda tree: json.dumps(tree).encode())  # NaN and Infinity included
    | st.lists(JSON_TREES, max_size=5).map(lambda items: json.dumps({"contacts": items}).encode())
)
HEADER_NAMES = st.sampled_from(
    ["content-type", "content-encoding", "accept", "accept-encoding", "user-agent", "authorization",
     "x-forwarded-for", "x-lonescale-signature", "cookie", "expect", "x-request-id"]
) | st.from_regex(r"x-[a-z0-9-]{1,20}", fullmatch=True)  # fmt: skip
HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=BODIES,
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5),
    job=st.sampled_from(["job-a", "job-b", "job-zzz"]) | st.text(min_size=1, max_size=20),
    token=st.sampled_from(["job-a", "job-b"]) | st.text(max_size=40),
    method=st.sampled_from(["POST", "POST", "POST", "PUT", "GET"]),
)
def test_no_request_at_all_gets_a_5xx_or_stops_the_server(
    shared_hook: Hook, body: bytes, headers: dict[str, str], job: str, token: str, method: str
) -> None:
    hook = shared_hook
    before = {j: len(hook.kept(j)) for j in hook.ids}
    params = {"token": hook.tokens.get(token, token)}  # a job's name stands for its valid token
    response = HTTP.request(method, hook.endpoint(job), params=params, content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert response.json()["status"] == ("ok" if response.status_code < 400 else "error")
    after = {j: len(hook.kept(j)) for j in hook.ids}
    if response.status_code in (401, 404, 405):  # no one got past the door: nothing stored anywhere
        assert after == before
    if response.status_code == 200:
        assert any(d["body"] == body and d["status"] == "new" for d in hook.kept(job))
    assert HTTP.get(f"{hook.url}/healthz").status_code == 200
