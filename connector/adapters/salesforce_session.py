"""The `requests.Session` simple-salesforce runs on: a timeout on every call, and plain-HTTP local endpoints.

simple-salesforce builds every URL as `https://{instance}` and sets no timeout anywhere
(https://github.com/simple-salesforce/simple-salesforce/issues/148). A transport adapter fixes both without
patching the library: it gives each request a default timeout and, for hosts configured as `http://` (the
sandbox, a local proxy), sends the library's `https://host:port/...` URL over plain HTTP instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from connector.user_agent import user_agent

DEFAULT_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds


class TimeoutAndReroute(HTTPAdapter):
    """Adds a default timeout; rewrites `https://host[:port]` to `http://` for the hosts in `plain_http`."""

    def __init__(
        self,
        plain_http: Iterable[str] = (),
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        reroute: Mapping[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(max_retries=0, **kwargs)  # one retry loop, ours (docs/architecture.md#retries)
        self.plain_http = set(plain_http)
        self.reroute = dict(reroute or {})
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        netloc = self.reroute.get(parts.netloc, parts.netloc)
        scheme = "http" if netloc in self.plain_http else parts.scheme
        if (scheme, netloc) != (parts.scheme, parts.netloc):
            request.url = urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def host_port(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc


def build_session(
    *urls: str,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    reroute: Mapping[str, str] | None = None,
) -> requests.Session:
    """A session for simple-salesforce. `http://` URLs among `urls` are reached over plain HTTP.

    `reroute` maps a host the library insists on (e.g. `login.salesforce.com`, where its login flows always
    post) to a local `host:port`, for tests and the sandbox.
    """
    session = requests.Session()
    session.headers["User-Agent"] = user_agent(
        str(session.headers["User-Agent"])
    )  # simple-salesforce sets none
    session.trust_env = (
        False  # REQUESTS_CA_BUNDLE & co. must not override ours (docs/salesforce.md#client-setup)
    )
    plain = {host_port(url) for url in urls if url.startswith("http://")}
    adapter = TimeoutAndReroute(plain_http=plain, timeout=timeout, reroute=reroute)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
