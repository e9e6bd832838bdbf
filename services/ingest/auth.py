"""Credentials of sources: generated keys, hashes, secrets encrypted at rest (pure; no I/O).

Write keys and URL secrets are bearer values: only their SHA-256 is stored. Signing secrets that
must be *used* to verify an HMAC (Mailgun, Typeform, HubSpot, generic) cannot be checked against a
hash, so they are kept encrypted with a key derived from LEADFLOW_SECRET_KEY instead.
"""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same_secret(value: str, stored_hash: str | None) -> bool:
    return stored_hash is not None and hmac.compare_digest(hash_secret(value), stored_hash)


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        derived = hashlib.sha256(b"leadflow-secret-box:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with this LEADFLOW_SECRET_KEY") from exc


WRITE_KEY_KINDS = frozenset({"api", "segment", "web"})
PROVIDER_SECRET_KINDS = frozenset({"mailgun", "hubspot"})  # the provider issues the secret; it is pasted in
GENERATED_SECRET_KINDS = frozenset({"typeform", "generic"})  # Leadflow may generate it for the user to paste
KINDS = WRITE_KEY_KINDS | PROVIDER_SECRET_KINDS | GENERATED_SECRET_KINDS | {"sendgrid", "mailchimp"}


class CredentialError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Issued:
    """Credentials of a new source: `shown` goes to the admin once; the rest is what gets stored."""

    shown: dict[str, str]
    write_key_hash: str | None = None
    url_secret_hash: str | None = None
    signing_secret: str | None = None
    public_key: str | None = None


def issue_credentials(kind: str, *, signing_secret: str | None, public_key: str | None) -> Issued:
    if kind in WRITE_KEY_KINDS:
        key = new_secret("wk")
        return Issued(shown={"write_key": key}, write_key_hash=hash_secret(key))
    if kind == "sendgrid":
        if not public_key:
            raise CredentialError("public_key", "SendGrid sources need the Event Webhook verification key")
        return Issued(shown={}, public_key=public_key.strip())
    if kind == "mailchimp":
        secret = new_secret("mc")
        return Issued(shown={"url_secret": secret}, url_secret_hash=hash_secret(secret))
    if kind in PROVIDER_SECRET_KINDS and not signing_secret:
        raise CredentialError("signing_secret", f"{kind} sources need the signing secret {kind} issued")
    if kind in PROVIDER_SECRET_KINDS | GENERATED_SECRET_KINDS:
        secret = signing_secret or new_secret("whsec")
        return Issued(shown={} if signing_secret else {"signing_secret": secret}, signing_secret=secret)
    raise CredentialError("kind", f"unknown source kind {kind!r}; one of {', '.join(sorted(KINDS))}")
