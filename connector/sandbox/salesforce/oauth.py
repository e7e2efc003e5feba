"""The OAuth token endpoint (client credentials, JWT bearer) and the access tokens it hands out."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from connector.sandbox.salesforce import ids
from connector.sandbox.salesforce.store import INTEGRATION_USER_ID

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_ID_HOST = "https://login.salesforce.com"


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


class TokenBook:
    """Issued access tokens and when each stops working; deterministic names from the seed and a counter."""

    def __init__(self, seed: int, clock: Any = time.monotonic):
        self.seed = seed
        self.org_id = ids.make_id("00D", seed, 1)
        self._clock = clock
        self._issued: dict[str, float] = {}
        self._counter = 0

    def issue(self, ttl_seconds: float) -> str:
        self._counter += 1
        digest = hashlib.blake2b(f"{self.seed}:{self._counter}".encode(), digest_size=30).digest()
        token = f"{self.org_id[:15]}!{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"
        self._issued[token] = self._clock() + ttl_seconds
        return token

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


def authenticate(form: dict[str, str], authorization: str | None, credentials: Credentials) -> str:
    """Checks a token request; returns the grant type, or raises OAuthFailure with Salesforce's wording."""
    grant = form.get("grant_type", "")
    if grant == "client_credentials":
        client_id, client_secret = _client_credentials(form, authorization)
        if client_id != credentials.client_id:
            raise OAuthFailure("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(client_secret, credentials.client_secret):
            raise OAuthFailure("invalid_client", "invalid client credentials")
        return grant
    if grant == JWT_BEARER:
        _verify_assertion(form.get("assertion", ""), credentials)
        return grant
    if grant == "password":
        # The username-password flow is being retired (salesforce-api.md §2.8); the sandbox refuses it as orgs
        # that block it do.
        raise OAuthFailure("invalid_grant", "authentication failure")
    if not grant:
        raise OAuthFailure("invalid_request", "grant type not supported")
    raise OAuthFailure("unsupported_grant_type", "grant type not supported")


def _client_credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthFailure("invalid_client", "invalid client credentials") from exc
        client_id, _, client_secret = decoded.partition(":")
        return client_id, client_secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _verify_assertion(assertion: str, credentials: Credentials) -> None:
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
    if not _salesforce_audience(claims["aud"]):
        raise OAuthFailure("invalid_grant", "audience is invalid")
    if claims["sub"] != credentials.username:
        raise OAuthFailure("invalid_grant", "user hasn't approved this consumer")


def _salesforce_audience(audience: Any) -> bool:
    """`https://login|test.salesforce.com` or a My Domain `https://<x>.salesforce.com` (what the library sends)."""
    values = audience if isinstance(audience, list) else [audience]
    for value in values:
        parts = urlsplit(str(value))
        host = parts.hostname or ""
        if parts.scheme == "https" and (host == "salesforce.com" or host.endswith(".salesforce.com")):
            return True
    return False


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
