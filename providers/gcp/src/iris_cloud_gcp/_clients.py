"""Credentials, endpoint options and client construction shared by the broker and the store.

Credentials are resolved once per endpoint, in this order: a ``credentials``
object (programmatic use), ``credentials_json`` (the text of a key file,
e.g. from an environment variable in a profile), ``credentials_file`` (a
path), anonymous credentials when an emulator is addressed, and finally
Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, the
gcloud user login, or the metadata server on Google Cloud).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import google.auth
import grpc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport
from iris_cloud.errors import ConfigurationError
from iris_cloud.providers._common import parse_bool

from iris_cloud_gcp.options import CREDENTIAL_OPTIONS

__all__ = [
    "CREDENTIAL_OPTIONS",
    "GoogleAuth",
    "as_bool",
    "as_int",
    "credentials_from_info",
    "merge_query",
    "publisher_client",
    "pubsub_emulator_host",
    "resolve_auth",
    "subscriber_client",
]


@dataclass(frozen=True)
class GoogleAuth:
    """Resolved credentials for one endpoint; the repr never shows them."""

    credentials: Credentials
    project: str | None
    source: str
    """Where the credentials came from (``credentials_file``, ``adc``, ``anonymous``...)."""

    def __repr__(self) -> str:
        return f"GoogleAuth(source={self.source!r}, project={self.project!r})"

    @property
    def anonymous(self) -> bool:
        """True for the emulators' anonymous credentials."""
        return isinstance(self.credentials, AnonymousCredentials)


def merge_query(query: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """URL query parameters merged with keyword options (keywords win).

    Credential options in the query are refused: a URL ends up in logs and
    profiles, a key file path or key text must not.
    """
    merged: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    leaked = sorted(set(merged) & set(CREDENTIAL_OPTIONS))
    if leaked:
        raise ConfigurationError(
            f"credential option(s) {', '.join(leaked)} must be passed as keyword options, "
            "not in the endpoint URL"
        )
    merged.update(options)
    return merged


def as_bool(value: Any, name: str) -> bool:
    """A boolean option from a keyword (bool) or a URL / profile string."""
    # An empty URL parameter (``?emulator=``) means false here.
    if isinstance(value, str) and not value.strip():
        return False
    return parse_bool(name)(value)


def as_int(value: Any, name: str, *, minimum: int = 0) -> int:
    """An integer option from a keyword or a URL / profile string."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"option {name} must be an integer") from None
    if number < minimum:
        raise ConfigurationError(f"option {name} must be at least {minimum}")
    return number


def resolve_auth(
    *,
    credentials: Credentials | None = None,
    credentials_file: str | os.PathLike[str] | None = None,
    credentials_json: str | Mapping[str, Any] | None = None,
    project: str | None = None,
    emulator: bool = False,
) -> GoogleAuth:
    """Resolve the credentials of one endpoint (see the module docstring for the order)."""
    given = [
        n
        for n, v in (
            ("credentials", credentials),
            ("credentials_file", credentials_file),
            ("credentials_json", credentials_json),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise ConfigurationError(f"pass only one of {', '.join(given)}")
    env_project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
    try:
        if credentials is not None:
            found = getattr(credentials, "project_id", None)
            return GoogleAuth(credentials, project or found or env_project, "credentials")
        if credentials_json is not None:
            info = (
                json.loads(credentials_json)
                if isinstance(credentials_json, str)
                else dict(credentials_json)
            )
            creds, found = credentials_from_info(info)
            return GoogleAuth(creds, project or found or env_project, "credentials_json")
        if credentials_file is not None:
            with open(os.fspath(credentials_file), encoding="utf-8") as fh:
                info = json.load(fh)
            creds, found = credentials_from_info(info)
            return GoogleAuth(creds, project or found or env_project, "credentials_file")
        if emulator:
            return GoogleAuth(AnonymousCredentials(), project or env_project, "anonymous")
        creds, found = google.auth.default()
        return GoogleAuth(creds, project or found or env_project, "adc")
    except OSError as exc:
        raise ConfigurationError(
            f"the Google credentials file cannot be read ({type(exc).__name__})"
        ) from exc
    except (ValueError, TypeError, KeyError) as exc:
        # json / google.auth say why the key is malformed; the reason may
        # quote key material, so it stays in __cause__ only.
        raise ConfigurationError(
            "the Google credentials given are not a valid key file (service account, "
            "authorized user, external account or impersonated service account JSON)"
        ) from exc
    except auth_exc.DefaultCredentialsError as exc:
        if given:
            raise ConfigurationError(
                f"the Google credentials in {given[0]} could not be loaded"
            ) from exc
        raise ConfigurationError(
            "no Google credentials: pass credentials_file or credentials_json, or set up "
            "Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, "
            "gcloud auth application-default login, or run on Google Cloud)"
        ) from exc


def credentials_from_info(info: Mapping[str, Any]) -> tuple[Credentials, str | None]:
    """Credentials from the content of a key / credential configuration file.

    Dispatches on ``type`` to the type-specific loaders, as google-auth
    recommends for configuration handed in from outside (its generic loaders
    are deprecated for that reason). Returns the credentials and the project
    the file names, if any.
    """
    kind = info.get("type")
    if kind == "service_account":
        from google.oauth2 import service_account

        sa = service_account.Credentials.from_service_account_info(info)
        return sa, info.get("project_id")
    if kind == "authorized_user":
        from google.oauth2 import credentials as user_credentials

        user = user_credentials.Credentials.from_authorized_user_info(info)
        return user, info.get("quota_project_id")
    if kind == "external_account":
        # Workload identity federation: integrators running on AWS or Azure.
        source = info.get("credential_source") or {}
        if str(source.get("environment_id", "")).startswith("aws"):
            from google.auth import aws

            return aws.Credentials.from_info(info), None
        if "executable" in source:
            from google.auth import pluggable

            return pluggable.Credentials.from_info(info), None
        from google.auth import identity_pool

        return identity_pool.Credentials.from_info(info), None
    if kind == "impersonated_service_account":
        from google.auth import impersonated_credentials

        source_info = info["source_credentials"]
        source, project = credentials_from_info(source_info)
        target = info["service_account_impersonation_url"].rsplit("/", 1)[-1].split(":")[0]
        return (
            impersonated_credentials.Credentials(
                source_credentials=source,
                target_principal=target,
                target_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                delegates=info.get("delegates") or None,
            ),
            project,
        )
    raise ValueError(f"unsupported credential type {kind!r}")


def pubsub_emulator_host(option: str | None) -> str | None:
    """The Pub/Sub emulator to talk to: the option, else ``PUBSUB_EMULATOR_HOST``."""
    host = option or os.environ.get("PUBSUB_EMULATOR_HOST") or None
    if host and "://" in host:
        raise ConfigurationError("emulator_host is host:port, without a scheme")
    return host


# The same unlimited message sizes the client library sets on its own channels:
# gRPC's default 4 MB receive limit would refuse a 10 MB Pub/Sub message.
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]

KEEPALIVE_SECONDS = 30.0
"""Seconds between gRPC keepalive pings on a quiet channel: what the client
library sets on its own channels to Google, so that a connection that went
silent (no FIN, no RST) is closed and redialled instead of swallowing calls."""


def keepalive_options(seconds: float) -> list[tuple[str, int]]:
    """gRPC channel options that ping every ``seconds`` and drop a channel unanswered for as long.

    The ping timeout is the interval itself, at most 20 s (gRPC's default).
    Pings go out with no call in flight too: an idle receiver's connection
    must be known alive before its next pull goes out on it.
    """
    ms = max(500, int(seconds * 1000))
    return [
        ("grpc.keepalive_time_ms", ms),
        ("grpc.keepalive_timeout_ms", min(ms, 20_000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # What gRPC 1.5x+ waits for a ping's ack (keepalive_timeout_ms alone
        # is no longer enough: the default minute applies otherwise).
        ("grpc.http2.ping_timeout_ms", min(ms, 20_000)),
    ]


def _emulator_channel(host: str, keepalive: float) -> grpc.Channel:
    return grpc.insecure_channel(host, options=_CHANNEL_OPTIONS + keepalive_options(keepalive))


def publisher_client(
    auth: GoogleAuth,
    emulator_host: str | None,
    batch_settings: pubsub_v1.types.BatchSettings,
    *,
    ordering: bool,
    keepalive: float = KEEPALIVE_SECONDS,
) -> pubsub_v1.PublisherClient:
    """A PublisherClient for Pub/Sub or, given ``emulator_host``, a plain-text channel to it.

    The emulator channel is passed as a transport instead of setting
    ``PUBSUB_EMULATOR_HOST``, so that two endpoints in one process may talk to
    different servers and the caller's environment is left alone.
    """
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=ordering)
    if emulator_host:
        transport = PublisherGrpcTransport(
            host=emulator_host, channel=_emulator_channel(emulator_host, keepalive)
        )
        return pubsub_v1.PublisherClient(batch_settings, options, transport=transport)
    return pubsub_v1.PublisherClient(batch_settings, options, credentials=auth.credentials)


def subscriber_client(
    auth: GoogleAuth, emulator_host: str | None, keepalive: float = KEEPALIVE_SECONDS
) -> pubsub_v1.SubscriberClient:
    """A SubscriberClient for Pub/Sub or the emulator at ``emulator_host``.

    ``keepalive`` sets the emulator channel's pings; the client library's
    channels to Google ping every 30 s of their own accord.
    """
    if emulator_host:
        transport = SubscriberGrpcTransport(
            host=emulator_host, channel=_emulator_channel(emulator_host, keepalive)
        )
        return pubsub_v1.SubscriberClient(transport=transport)
    return pubsub_v1.SubscriberClient(credentials=auth.credentials)
