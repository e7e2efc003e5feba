"""Logging in to Salesforce: where the token request goes, and which audience a JWT assertion names.

The two differ. The token request goes to the org's My Domain host (client credentials must: simple-salesforce
refuses `login`/`test` for them), while a JWT's `aud` must be `https://login.salesforce.com`,
`https://test.salesforce.com` (sandbox orgs) or an Experience Cloud site's URL; Salesforce answers any other
with `invalid_grant` / "audience is invalid" (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm).
simple-salesforce 1.12 signs `aud = https://{domain}.salesforce.com` and posts to
`https://{instance_url}.salesforce.com` when `instance_url` is given (its login.py), so `domain="login"` with
`instance_url="acme.my"` is the login audience posted to My Domain, without patching the library. A site URL
cannot be written as `{domain}.salesforce.com`: that assertion is signed here and the library is handed the
token (a direct session, which the retry loop renews by logging in again when it expires).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

from connector.errors import AuthError

SYNTHETIC_LOGIN = "lonescale-login"  # stands for a non-Salesforce login host (the sandbox): rerouted
LOGIN_AUDIENCES = ("login", "test")  # https://{name}.salesforce.com
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME = 180  # seconds; `exp` bounds the assertion only (the library also uses three minutes)


@dataclass(frozen=True)
class SalesforceCredentials:
    client_id: str
    client_secret: str | None = None  # client_credentials
    username: str | None = None  # jwt
    private_key_path: Path | None = None  # jwt
    jwt_audience: str = "login"  # jwt: "login", "test" or an Experience Cloud site URL


def login_route(login_url: str) -> tuple[str, dict[str, str]]:
    """The `domain` simple-salesforce posts to, and a reroute for hosts that are not `*.salesforce.com`."""
    host = urlsplit(login_url).netloc
    if host.endswith(".salesforce.com"):
        return host.removesuffix(".salesforce.com"), {}
    return SYNTHETIC_LOGIN, {f"{SYNTHETIC_LOGIN}.salesforce.com": host}


def login(
    creds: SalesforceCredentials, token_domain: str, session: requests.Session, version: str
) -> Salesforce:
    """A logged-in client. The token endpoint's refusals leave as the library's exceptions (translated by the
    adapter's call loop); anything else that stops a login (an unreadable key file) is an AuthError."""
    try:
        return _logged_in(creds, token_domain, session, version)
    except (requests.RequestException, SalesforceError):
        raise
    except Exception as exc:  # the key file unreadable, the key no RSA key, a token body without a URL
        raise AuthError(f"Salesforce login failed: {type(exc).__name__}: {exc}") from exc


def _logged_in(
    creds: SalesforceCredentials, token_domain: str, session: requests.Session, version: str
) -> Salesforce:
    if creds.private_key_path is None:
        return Salesforce(
            consumer_key=creds.client_id,
            consumer_secret=creds.client_secret,
            domain=token_domain,
            session=session,
            version=version,
        )
    if creds.jwt_audience in LOGIN_AUDIENCES:
        return Salesforce(
            username=creds.username,
            consumer_key=creds.client_id,
            privatekey_file=str(creds.private_key_path),
            domain=creds.jwt_audience,  # the audience: https://login|test.salesforce.com
            instance_url=token_domain,  # where the token request goes
            session=session,
            version=version,
        )
    return _site_login(creds, token_domain, session, version)


def _site_login(
    creds: SalesforceCredentials, token_domain: str, session: requests.Session, version: str
) -> Salesforce:
    """The JWT bearer flow with an Experience Cloud site as audience, as simple-salesforce runs it otherwise."""
    claims = {
        "iss": creds.client_id,
        "sub": creds.username,
        "aud": creds.jwt_audience,
        "exp": int(time.time()) + JWT_LIFETIME,
    }
    assert creds.private_key_path is not None
    assertion = jwt.encode(claims, creds.private_key_path.read_bytes(), algorithm="RS256")
    answer = session.post(
        f"https://{token_domain}.salesforce.com/services/oauth2/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
    )
    try:
        body = answer.json()
    except ValueError as exc:  # as the library reports a token answer that is not JSON: by its status
        raise SalesforceAuthenticationFailed(answer.status_code, answer.text) from exc
    if answer.status_code != 200:
        raise SalesforceAuthenticationFailed(body.get("error"), body.get("error_description"))
    return Salesforce(
        instance_url=body["instance_url"], session_id=body["access_token"], session=session, version=version
    )
