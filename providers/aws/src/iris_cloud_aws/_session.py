"""Endpoint options and the one boto3 session each broker or store holds.

Non-secret settings may come from the URL query (``?region=...&endpoint_url=...``)
or as keyword options; keyword options win. Credentials are accepted only as
keyword options: a URL ends up in logs, a keyword option does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import SplitResult, parse_qsl, urlsplit

import boto3
from botocore.config import Config
from iris_cloud.config import mask_url
from iris_cloud.errors import ConfigurationError
from iris_cloud.providers._common import parse_bool

from iris_cloud_aws.errors import aws_errors
from iris_cloud_aws.options import CREDENTIAL_OPTIONS, SESSION_OPTIONS

__all__ = [
    "CREDENTIAL_OPTIONS",
    "SESSION_OPTIONS",
    "AwsSession",
    "as_bool",
    "as_int",
    "parse_endpoint",
]

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection (botocore's default is 60)."""
READ_TIMEOUT = 30.0
"""Seconds a response may stay silent: the longest SQS long poll (20 s) plus a
margin, so a connection that went dead is noticed in half botocore's 60 s."""
MAX_ATTEMPTS = 3
"""Attempts per call in botocore's standard retry mode (the first included)."""


def as_float(options: Mapping[str, Any], name: str, default: float) -> float:
    """Option ``name`` as a positive float (URL query values arrive as strings)."""
    value = options.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"option {name} must be a number") from None
    if not number > 0:
        raise ConfigurationError(f"option {name} must be positive")
    return number


def parse_endpoint(
    url: str, scheme: str, allowed: Iterable[str], options: Mapping[str, Any]
) -> tuple[SplitResult, dict[str, Any]]:
    """Split ``url`` and merge its query with ``options`` (options win).

    Raises :class:`ConfigurationError` for another scheme, for credentials in
    the URL and for options this endpoint does not know (a typo should not
    pass silently).
    """
    parts = urlsplit(url)
    if parts.scheme != scheme:
        raise ConfigurationError(f"expected a {scheme}:// URL, got scheme {parts.scheme!r}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    secret = sorted(CREDENTIAL_OPTIONS & set(query))
    if secret:
        raise ConfigurationError(
            f"credentials ({', '.join(secret)}) must be passed as options, not in the URL"
        )
    merged: dict[str, Any] = {**query, **options}
    known = set(allowed) | SESSION_OPTIONS
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown {scheme} option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return parts, merged


def as_int(options: Mapping[str, Any], name: str, default: int | None) -> int | None:
    """Option ``name`` as an int (URL query values arrive as strings)."""
    value = options.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"option {name} must be an integer") from None


def as_bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    """Option ``name`` as a bool; accepts true/false/1/0/yes/no from URLs."""
    value = options.get(name)
    if value is None or value == "":
        return default
    return parse_bool(name)(value)


@dataclass
class AwsSession:
    """A boto3 session plus the client settings of one endpoint.

    Built once per broker or store; :meth:`client` is called once per
    service and the client reused for every call (boto3 clients are
    thread-safe, sessions are not, so clients are made up front).
    """

    session: Any = field(repr=False)
    region: str | None
    endpoint_url: str | None
    max_pool_connections: int = 10
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    max_attempts: int = MAX_ATTEMPTS

    @classmethod
    def from_options(cls, options: Mapping[str, Any], region: str | None = None) -> Self:
        """The session described by the common options (credentials, region, endpoint)."""
        region = options.get("region") or options.get("region_name") or region
        session = cls._session_from(options, region)
        pool = as_int(options, "max_pool_connections", 10) or 10
        attempts = as_int(options, "max_attempts", MAX_ATTEMPTS) or MAX_ATTEMPTS
        return cls(
            session=session,
            region=region or cls._session_region(session),
            endpoint_url=options.get("endpoint_url") or None,
            max_pool_connections=pool,
            connect_timeout=as_float(options, "connect_timeout", CONNECT_TIMEOUT),
            read_timeout=as_float(options, "read_timeout", READ_TIMEOUT),
            max_attempts=max(1, attempts),
        )

    @staticmethod
    def _session_from(options: Mapping[str, Any], region: str | None) -> Any:
        given = options.get("session")
        if given is not None:
            if not isinstance(given, boto3.session.Session):
                raise ConfigurationError("option session must be a boto3.session.Session")
            return given
        creds = {k: options[k] for k in CREDENTIAL_OPTIONS if options.get(k)}
        with aws_errors("CreateSession", "boto3 session"):
            return boto3.session.Session(region_name=region, **creds)

    @staticmethod
    def _session_region(session: Any) -> str | None:
        return session.region_name  # type: ignore[no-any-return]

    def config(self, **config: Any) -> Config:
        """The botocore client settings of this endpoint (timeouts, retries, pool)."""
        return Config(
            # total_max_attempts counts the first try; botocore's max_attempts does not.
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            max_pool_connections=self.max_pool_connections,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            **config,
        )

    client_method: ClassVar[str] = "client"
    """The session's method that makes a client (aiobotocore's is ``create_client``)."""

    def client(self, service: str, **config: Any) -> Any:
        """A new client for ``service``; callers keep and reuse it."""
        with aws_errors("CreateClient", service):
            return getattr(self.session, self.client_method)(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=self.config(**config),
            )

    @property
    def can_sign(self) -> bool:
        """Whether the session has credentials to sign requests (and URLs) with."""
        return self.session.get_credentials() is not None

    def __repr__(self) -> str:
        # No credentials, not even the key id: only where the session points
        # (an endpoint URL's password and query values masked).
        endpoint = mask_url(self.endpoint_url, frozenset()) if self.endpoint_url else None
        return f"{type(self).__name__}(region={self.region!r}, endpoint_url={endpoint!r})"
