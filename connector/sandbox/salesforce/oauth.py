"""The OAuth token endpoint (client credentials, JWT bearer, refresh token) and the access tokens it hands out."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs

import jwt

from connector.sandbox import credentials
from connector.sandbox.salesforce import ids
from connector.sandbox.salesforce.store import INTEGRATION_USER_ID

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_ID_HOST = "https://login.salesforce.com"
# The JWT audiences Salesforce accepts, besides an Experience Cloud site's own URL: "https://login.salesforce.com,
# https://test.salesforce.com, or https://site.force.com/customers if implementing for an Experience Cloud site"
# (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm). A My Domain URL is
# not among them, although the token is posted there.
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


class OAuthFailure(Exception):
    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    username: str
    jwt_public_key: bytes | None
    refresh_token: str = credentials.SALESFORCE_REFRESH_TOKEN  # as if a person had authorised the app once


def connected_apps(own: Credentials, more: Mapping[str, str]) -> list[Credentials]:
    """The org's connected apps: its own, and `more` (client id → consumer secret) with the same integration
    user and certificate, as an admin uploads one certificate to several apps."""
    return [own, *(replace(own, client_id=cid, client_secret=secret) for cid, secret in more.items())]


class TokenBook:
    """Issued access tokens and when each stops working; deterministic names from the seed and a counter."""

    def __init__(self, seed: int, clock: Any = time.monotonic):
        self.seed = seed
        self.org_id = ids.make_id("00D", seed, 1)
        self._clock = clock
        self._issued: dict[str, float] = {}
        self._apps: dict[str, str] = {}  # token → the client id of the app it was issued to, kept past expiry
        self._counter = 0

    def issue(self, ttl_seconds: float, client_id: str) -> str:
        self._counter += 1
        digest = hashlib.blake2b(f"{self.seed}:{self._counter}".encode(), digest_size=30).digest()
        token = f"{self.org_id[:15]}!{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"
        self._issued[token] = self._clock() + ttl_seconds
        self._apps[token] = client_id
        return token

    def app_of(self, token: str) -> str | None:
        """The client id the token was issued to: which instance a call is from, when several apps (instances)
        share one emulator; None for a token never issued."""
        return self._apps.get(token)

    def valid(self, token: str) -> bool:
        expires = self._issued.get(token)
        if expires is None:
            return False
        if self._clock() >= expires:
            del self._issued[token]
            return False
        return True

    def expire_all(self) -> int:
        """Invalidates every current token once; tokens issued afterwards work (never a 401 forever)."""
        count = len(self._issued)
        self._issued.clear()
        return count


def parse_form(body: bytes) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


def authenticate(
    form: dict[str, str], authorization: str | None, apps: Sequence[Credentials], sites: Sequence[str] = ()
) -> Credentials:
    """Checks a token request; returns the connected app it authenticates (one of `apps`, the first the
    org's own), or raises OAuthFailure with Salesforce's wording. `sites` are the org's Experience Cloud site
    URLs, each also a valid JWT audience."""
    grant = form.get("grant_type", "")
    if grant == "client_credentials":
        client_id, client_secret = _client_credentials(form, authorization)
        return _check_client(client_id, client_secret, _app(apps, client_id))
    if grant == "refresh_token":
        # The connected app's "Require Secret for Refresh Token Flow" is on by default, so the secret is too
        # (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm).
        client_id, client_secret = _client_credentials(form, authorization)
        known = _check_client(client_id, client_secret, _app(apps, client_id))
        if not hmac.compare_digest(form.get("refresh_token", ""), known.refresh_token):
            raise OAuthFailure("invalid_grant", "expired access/refresh token")
        return known
    if grant == JWT_BEARER:
        assertion = form.get("assertion", "")
        try:  # which app the assertion claims to be from; it is verified against that app's certificate
            issuer = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
        except jwt.PyJWTError:
            issuer = ""
        known = _app(apps, issuer)
        _verify_assertion(assertion, known, sites)
        return known
    if grant == "password":
        # The username-password flow is being retired (docs/salesforce.md#auth); the sandbox refuses it as
        # orgs that block it do.
        raise OAuthFailure("invalid_grant", "authentication failure")
    if not grant:
        raise OAuthFailure("invalid_request", "grant type not supported")
    raise OAuthFailure("unsupported_grant_type", "grant type not supported")


def _app(apps: Sequence[Credentials], client_id: str) -> Credentials:
    """The app with this client id; else the org's own, which the checks then refuse as Salesforce does."""
    return next((app for app in apps if app.client_id == client_id), apps[0])


def _check_client(client_id: str, client_secret: str, known: Credentials) -> Credentials:
    if client_id != known.client_id:
        raise OAuthFailure("invalid_client_id", "client identifier invalid")
    if not hmac.compare_digest(client_secret, known.client_secret):
        raise OAuthFailure("invalid_client", "invalid client credentials")
    return known


def _client_credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthFailure("invalid_client", "invalid client credentials") from exc
        client_id, _, client_secret = decoded.partition(":")
        return client_id, client_secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _verify_assertion(assertion: str, credentials: Credentials, sites: Sequence[str]) -> None:
    if credentials.jwt_public_key is None:
        raise OAuthFailure("invalid_grant", "invalid assertion")
    try:
        # simple-salesforce sends `exp` as a string (login.py); PyJWT accepts it once int() parses it.
        claims: dict[str, Any] = jwt.decode(
            assertion,
            credentials.jwt_public_key,
            algorithms=["RS256"],
            options={"require": ["exp", "iss", "sub", "aud"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise OAuthFailure("invalid_grant", "expired authorization code") from exc
    except jwt.PyJWTError as exc:
        raise OAuthFailure("invalid_grant", "invalid assertion") from exc
    if claims["iss"] != credentials.client_id:
        raise OAuthFailure("invalid_client_id", "client identifier invalid")
    if not _valid_audience(claims["aud"], sites):
        raise OAuthFailure("invalid_grant", "audience is invalid")
    if claims["sub"] != credentials.username:
        raise OAuthFailure("invalid_grant", "user hasn't approved this consumer")


def _valid_audience(audience: Any, sites: Sequence[str]) -> bool:
    """The login or test audience, or one of the org's site URLs; trailing slashes aside, nothing else."""
    accepted = {value.rstrip("/") for value in (*LOGIN_AUDIENCES, *sites)}
    values = audience if isinstance(audience, list) else [audience]
    return any(str(value).rstrip("/") in accepted for value in values)


def token_body(token: str, instance_url: str, org_id: str, client_secret: str) -> dict[str, str]:
    issued_at = str(int(time.time() * 1000))
    identity = f"{LOGIN_ID_HOST}/id/{org_id}/{INTEGRATION_USER_ID}"
    # Salesforce signs id + issued_at with the consumer secret (HMAC-SHA256, base64), so clients can verify.
    signature = base64.b64encode(
        hmac.new(client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
    ).decode()
    return {
        "access_token": token,
        "instance_url": instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature,
        "scope": "api",
    }
