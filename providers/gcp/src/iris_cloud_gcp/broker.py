"""``gcppubsub://``: Google Cloud Pub/Sub as a MessageBroker.

A topic URL sends, a subscription URL receives::

    gcppubsub://projects/P/topics/T              send only
    gcppubsub://projects/P/subscriptions/S       receive (and dead-letter) only
    gcppubsub://projects/P/subscriptions/S?topic=T   both (tests, single-process setups)
    gcppubsub://projects/P/topics/T?subscription=S   the same, written from the topic side

``topic`` / ``subscription`` take a bare name (same project) or a full path.

Wire mapping. The body is the message data. ``message_id``,
``correlation_id``, ``subject`` and ``content_type`` travel as the attributes
``iris-message-id``, ``iris-correlation-id``, ``iris-subject`` and
``iris-content-type``; properties are attributes under their own names, with
``iris-types`` (JSON) recording which were int, float or bool, since Pub/Sub
attributes are strings. Property names Pub/Sub or the client library reserve
(``goog*``, ``iris-*``, and ``topic``, ``data``, ``ordering_key``, ``retry``,
``timeout``) travel as ``iris-attr-<name>``.

Settlement: ``complete`` acknowledges; ``abandon(delay)`` sets the ack
deadline to ``delay`` seconds (0 = redeliver now); ``renew_lock`` sets it to
``lock_seconds`` again; ``dead_letter`` publishes the message, unchanged plus
``iris-dead-letter-reason`` / ``-description``, to the dead-letter topic and
then acknowledges it.

Options (URL query or keywords; credentials only as keywords):
``credentials_file`` / ``credentials_json`` / ``credentials``; ``emulator_host``
(``host:port``; ``PUBSUB_EMULATOR_HOST`` is honoured too); ``topic`` /
``subscription`` (pairing, above); ``ordering_key`` (every message sent gets
it; a message property ``ordering_key`` overrides; a received message's
ordering key, whoever published it, is its ``ordering_key`` property); ``lock_seconds`` (the
subscription's ack deadline, read from the subscription when the
credentials may); ``dead_letter_topic`` (else the subscription's dead-letter
policy); ``dead_letter_subscription`` (where ``receive_dead_letters`` pulls;
default ``<subscription>-dlq``); ``batch_latency`` (seconds the publisher
waits to fill a batch, default 0.01); ``timeout`` (seconds per call, default 60);
``keepalive`` (seconds between gRPC keepalive pings on an emulator channel,
default 30, as the client library's own channels to Google ping: a connection
gone silent is dropped after one unanswered ping and redialled).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from iris_cloud.errors import IrisCloudError
from iris_cloud.ports import Message, ObjectStore
from iris_cloud.stepped import SteppedBroker
from iris_cloud.steps import drive

from iris_cloud_gcp._clients import publisher_client, subscriber_client
from iris_cloud_gcp._pubsub import (
    MAX_MESSAGE_BYTES,
    PubSubCommon,
    decode_message,
    encode_attributes,
    raise_publish_failures,
)
from iris_cloud_gcp.errors import map_error

__all__ = ["MAX_MESSAGE_BYTES", "PubSubBroker", "decode_message", "encode_attributes"]


class PubSubBroker(PubSubCommon, SteppedBroker):
    """A Pub/Sub topic (send) and/or subscription (receive) endpoint.

    One PublisherClient and one SubscriberClient per broker, created when
    first needed and reused; :meth:`close` flushes and closes them. A
    subscription's settings are read when it opens.
    """

    def __init__(self, *, claim_check: ObjectStore | None = None, **options: Any) -> None:
        super().__init__(claim_check=claim_check, **options)
        try:
            drive(self._setup_steps())
        except BaseException:
            self.close()
            raise

    _sleep = staticmethod(time.sleep)

    def _get_publisher(self) -> pubsub_v1.PublisherClient:
        with self._lock:
            self._check_open()
            if self._publisher is None:
                self._publisher = publisher_client(
                    self._auth,
                    self._emulator_host,
                    self._batch_settings,
                    ordering=True,
                    keepalive=self._keepalive,
                )
            return self._publisher  # type: ignore[no-any-return]

    def _get_subscriber(self) -> pubsub_v1.SubscriberClient:
        with self._lock:
            self._check_open()
            if self._subscriber is None:
                self._subscriber = subscriber_client(
                    self._auth, self._emulator_host, self._keepalive
                )
            return self._subscriber  # type: ignore[no-any-return]

    # -- sending ----------------------------------------------------------------
    def _publish(
        self,
        topic: str,
        items: list[tuple[bytes, dict[str, str], Message]],
        right: str,
    ) -> None:
        """Publish every item, wait for every future, raise once for all failures."""
        publisher = self._get_publisher()
        pending: list[tuple[Message, str, concurrent.futures.Future[str]]] = []
        failures: list[tuple[str, IrisCloudError]] = []
        for data, attributes, message in items:
            key = self._ordering_key_of(message)
            try:
                # Only queues the message; delivery failures arrive through the future.
                future = publisher.publish(
                    topic,
                    data,
                    ordering_key=key,
                    retry=self._retry,
                    timeout=self._timeout,
                    **attributes,
                )
            except Exception as exc:  # the client's own checks (size, closed client)
                mapped = map_error(exc, right=right, target=topic)
                if mapped is None:
                    raise
                mapped.__cause__ = exc
                failures.append((message.message_id, mapped))
                continue
            pending.append((message, key, future))
        for message, key, future in pending:
            try:
                future.result(timeout=self._timeout * 2)
            except Exception as exc:
                if isinstance(exc, concurrent.futures.TimeoutError):
                    exc = gexc.DeadlineExceeded(f"publish did not complete in {self._timeout}s")
                mapped = map_error(exc, right=right, target=topic)
                if mapped is None:
                    raise
                mapped.__cause__ = exc
                failures.append((message.message_id, mapped))
                if key:
                    # The client pauses an ordering key after a failure.
                    publisher.resume_publish(topic, key)
        raise_publish_failures(failures, len(items), topic)

    def close(self) -> None:
        """Flush pending publishes and close both clients."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            publisher, self._publisher = self._publisher, None
            subscriber, self._subscriber = self._subscriber, None
        if publisher is not None:
            publisher.stop()
            publisher.transport.close()
        if subscriber is not None:
            subscriber.close()
