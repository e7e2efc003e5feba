"""The credentials the sandbox accepts: fixed, printed by `lonescale-sync sandbox`, never real secrets."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

LONESCALE_API_KEY = "ls_sandbox_4f1c2e9a7b"
HUBSPOT_TOKEN = "pat-na1-sandbox-7d3e"
SALESFORCE_CLIENT_ID = "3MVG9sandbox.lonescale.sync"
SALESFORCE_CLIENT_SECRET = "sandbox-client-secret-91b2"
SALESFORCE_USERNAME = "integration@lonescale-sync.sandbox"
# A refresh token as the web-server flow would have handed one out once a person authorised the app: what
# most connected apps hold, and what the emulator's refresh_token grant accepts.
SALESFORCE_REFRESH_TOKEN = "5Aep861sandbox.refresh.token.3c9d"


def write_jwt_keypair(directory: Path) -> tuple[Path, bytes]:
    """A fresh RSA key for the JWT-bearer flow: the private key on disk (for the client), the public PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = directory / "salesforce-jwt-private-key.pem"
    path.write_bytes(private_pem)
    path.chmod(0o600)
    return path, public_pem
