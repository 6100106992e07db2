"""The generated async Pub/Sub clients, for Pub/Sub or the emulator (grpc.aio channels)."""

from __future__ import annotations

import grpc
from google.pubsub_v1 import PublisherAsyncClient, SubscriberAsyncClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcAsyncIOTransport

from iris_cloud_gcp._clients import _CHANNEL_OPTIONS, GoogleAuth, keepalive_options

__all__ = ["async_publisher_client", "async_subscriber_client"]


def _emulator_channel(host: str, keepalive: float) -> grpc.aio.Channel:
    # As the sync clients' emulator channels: plain text, pinging every ``keepalive`` s.
    return grpc.aio.insecure_channel(host, options=_CHANNEL_OPTIONS + keepalive_options(keepalive))


def async_publisher_client(
    auth: GoogleAuth, emulator_host: str | None, keepalive: float
) -> PublisherAsyncClient:
    """A ``PublisherAsyncClient`` for Pub/Sub, or on a channel to the emulator (made in the
    running loop)."""
    if emulator_host:
        transport = PublisherGrpcAsyncIOTransport(
            host=emulator_host, channel=_emulator_channel(emulator_host, keepalive)
        )
        return PublisherAsyncClient(transport=transport)
    return PublisherAsyncClient(credentials=auth.credentials)


def async_subscriber_client(
    auth: GoogleAuth, emulator_host: str | None, keepalive: float
) -> SubscriberAsyncClient:
    """A ``SubscriberAsyncClient`` for Pub/Sub or the emulator at ``emulator_host``."""
    if emulator_host:
        transport = SubscriberGrpcAsyncIOTransport(
            host=emulator_host, channel=_emulator_channel(emulator_host, keepalive)
        )
        return SubscriberAsyncClient(transport=transport)
    return SubscriberAsyncClient(credentials=auth.credentials)
