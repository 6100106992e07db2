"""Shared access keys and SAS token verification, as Service Bus does them.

A client proves a key by putting a token on the ``$cbs`` node:
``SharedAccessSignature sr=<uri>&sig=<base64 hmac-sha256>&se=<expiry>&skn=<key name>``
where the signature covers ``quote_plus(sr) + "\\n" + se`` under the key's secret.
The key's rights (Send, Listen, Manage) then decide which links may attach.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote_plus, urlsplit

SEND = "Send"
LISTEN = "Listen"
MANAGE = "Manage"
ALL_RIGHTS = frozenset({SEND, LISTEN, MANAGE})


@dataclass(frozen=True)
class SasKey:
    """A shared access policy: key name, secret and the rights it grants.

    Manage implies Send and Listen, as on Service Bus. The secret stays out of
    the repr and out of every parse error, so neither can leak it into a log.
    """

    name: str
    secret: str = field(repr=False)
    rights: frozenset[str] = ALL_RIGHTS

    @classmethod
    def parse(cls, spec: str) -> SasKey:
        """Parse ``NAME:SECRET:Send,Listen,Manage`` (rights optional, default all).

        Errors name the key at most: the text after the first colon may be
        (or, with a colon in the secret, contain) the secret.
        """
        parts = spec.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError("a key must look like NAME:SECRET[:Send,Listen,Manage]")
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        rights = set()
        for right in parts[2].split(","):
            canonical = right.strip().capitalize()
            if canonical not in ALL_RIGHTS:
                raise ValueError(
                    f"the rights of key {parts[0]!r} must be a comma-separated list of "
                    "Send, Listen, Manage"
                )
            rights.add(canonical)
        return cls(parts[0], parts[1], frozenset(rights))

    def grants(self, right: str) -> bool:
        """Whether this key carries ``right`` (Manage carries everything)."""
        return right in self.rights or MANAGE in self.rights


@dataclass(frozen=True)
class Grant:
    """A verified token: the key that signed it, its scope and expiry."""

    key: SasKey
    scope: str  # entity path the token covers, lower case, "" = whole namespace
    expires_at: float

    def covers(self, entity_path: str, right: str) -> bool:
        """Whether this grant allows ``right`` on ``entity_path`` now."""
        if time.time() >= self.expires_at or not self.key.grants(right):
            return False
        path = entity_path.lower()
        return not self.scope or path == self.scope or path.startswith(self.scope + "/")


class TokenRejected(Exception):
    """The token is malformed, expired, unknown or wrongly signed."""


def _signature(secret: str, encoded_resource: str, expiry: str) -> str:
    to_sign = f"{encoded_resource}\n{expiry}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def make_sas_token(resource: str, key_name: str, secret: str, ttl: float = 3600) -> str:
    """Build a SAS token the way the Azure SDKs do (for tests and tools)."""
    expiry = str(int(time.time() + ttl))
    fields = {"sr": resource, "sig": _signature(secret, quote_plus(resource), expiry), "se": expiry}
    query = "&".join(f"{k}={quote_plus(v)}" for k, v in fields.items())
    return f"SharedAccessSignature {query}&skn={quote_plus(key_name)}"


def entity_path_of(resource: str) -> str:
    """The entity path inside a token's ``sr`` (``sb://host/queue`` -> ``queue``)."""
    if "://" in resource:
        resource = urlsplit(resource).path
    return resource.strip("/").lower()


def verify_token(token: str, keys: dict[str, SasKey]) -> Grant:
    """Check a SAS token against the configured keys and return what it grants."""
    prefix = "SharedAccessSignature "
    if not token.startswith(prefix):
        raise TokenRejected("only SharedAccessSignature tokens are supported")
    fields = {k: v[0] for k, v in parse_qs(token[len(prefix) :], keep_blank_values=True).items()}
    missing = {"sr", "sig", "se", "skn"} - fields.keys()
    if missing:
        raise TokenRejected(f"token lacks {', '.join(sorted(missing))}")
    key = keys.get(fields["skn"])
    if key is None:
        raise TokenRejected(f"unknown key name {fields['skn']!r}")
    try:
        expires_at = float(fields["se"])
    except ValueError as exc:
        raise TokenRejected("token expiry is not a number") from exc
    if expires_at <= time.time():
        raise TokenRejected("token has expired")
    resource = fields["sr"]
    # SDKs differ in the case of the percent escapes they sign (Python upper,
    # .NET lower); the service accepts both, so do we.
    encoded = quote_plus(resource)
    lower_escapes = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)
    expected = {_signature(key.secret, e, fields["se"]) for e in (encoded, lower_escapes)}
    if not any(hmac.compare_digest(fields["sig"], candidate) for candidate in expected):
        raise TokenRejected(f"signature does not match key {key.name!r}")
    return Grant(key=key, scope=entity_path_of(resource), expires_at=expires_at)
