"""gRPC handlers for ``google.pubsub.v1.Publisher`` and ``google.pubsub.v1.Subscriber``.

google-cloud-pubsub ships the message classes but no ``pubsub_pb2_grpc``, so the
services are registered with ``grpc.method_handlers_generic_handler`` and the
(de)serializers of the ``.pb()`` protobuf classes. Methods not registered here
(snapshots, Seek, schemas, IAM, DetachSubscription, ModifyPushConfig) answer
UNIMPLEMENTED, which is grpc's own reply for an unknown method.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1.types import pubsub as _types

from ._backend import ApiError, Backend

Empty = empty_pb2.Empty
StreamingPullRequest = _types.StreamingPullRequest.pb()
StreamingPullResponse = _types.StreamingPullResponse.pb()
PullResponse = _types.PullResponse.pb()

#: Most messages one StreamingPull response carries (the real service batches too).
_STREAM_BATCH = 1000
#: How often a waiting StreamingPull re-checks that its client is still there.
_STREAM_POLL_SECONDS = 1.0


def _unary(
    handler: Callable[[Any, grpc.ServicerContext], Any], request_type: Any, response_type: Any
) -> grpc.RpcMethodHandler:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            result = handler(request, context)
        except ApiError as error:
            context.abort(error.code, error.message)
        # Methods answering google.protobuf.Empty return None from the backend.
        return Empty() if result is None else result

    return grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


class _Stream:
    """State shared by one StreamingPull's response generator and its request reader."""

    def __init__(
        self, subscription: str, ack_deadline: int, max_messages: int, max_bytes: int
    ) -> None:
        self.subscription = subscription
        self.ack_deadline = ack_deadline
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.closed = False
        self.error: ApiError | None = None


class PubSubServicer:
    """Binds the two Pub/Sub services to a :class:`Backend`."""

    def __init__(self, backend: Backend, *, pull_wait: float = 1.0) -> None:
        self.backend = backend
        self.pull_wait = pull_wait

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """The generic handlers to pass to ``grpc.Server.add_generic_rpc_handlers``."""
        t = _types
        b = self.backend
        publisher = {
            "CreateTopic": _unary(lambda r, c: b.create_topic(r), t.Topic.pb(), t.Topic.pb()),
            "UpdateTopic": _unary(
                lambda r, c: b.update_topic(r.topic, r.update_mask),
                t.UpdateTopicRequest.pb(),
                t.Topic.pb(),
            ),
            "Publish": _unary(
                lambda r, c: b.publish(r), t.PublishRequest.pb(), t.PublishResponse.pb()
            ),
            "GetTopic": _unary(
                lambda r, c: b.get_topic(r.topic), t.GetTopicRequest.pb(), t.Topic.pb()
            ),
            "ListTopics": _unary(
                lambda r, c: b.list_topics(r.project, r.page_size, r.page_token),
                t.ListTopicsRequest.pb(),
                t.ListTopicsResponse.pb(),
            ),
            "ListTopicSubscriptions": _unary(
                lambda r, c: b.list_topic_subscriptions(r.topic, r.page_size, r.page_token),
                t.ListTopicSubscriptionsRequest.pb(),
                t.ListTopicSubscriptionsResponse.pb(),
            ),
            "DeleteTopic": _unary(
                lambda r, c: b.delete_topic(r.topic), t.DeleteTopicRequest.pb(), Empty
            ),
        }
        subscriber = {
            "CreateSubscription": _unary(
                lambda r, c: b.create_subscription(r), t.Subscription.pb(), t.Subscription.pb()
            ),
            "GetSubscription": _unary(
                lambda r, c: b.get_subscription(r.subscription),
                t.GetSubscriptionRequest.pb(),
                t.Subscription.pb(),
            ),
            "UpdateSubscription": _unary(
                lambda r, c: b.update_subscription(r.subscription, r.update_mask),
                t.UpdateSubscriptionRequest.pb(),
                t.Subscription.pb(),
            ),
            "ListSubscriptions": _unary(
                lambda r, c: b.list_subscriptions(r.project, r.page_size, r.page_token),
                t.ListSubscriptionsRequest.pb(),
                t.ListSubscriptionsResponse.pb(),
            ),
            "DeleteSubscription": _unary(
                lambda r, c: b.delete_subscription(r.subscription),
                t.DeleteSubscriptionRequest.pb(),
                Empty,
            ),
            "Acknowledge": _unary(
                lambda r, c: b.acknowledge(r.subscription, r.ack_ids),
                t.AcknowledgeRequest.pb(),
                Empty,
            ),
            "ModifyAckDeadline": _unary(
                lambda r, c: b.modify_ack_deadline(
                    r.subscription, r.ack_ids, r.ack_deadline_seconds
                ),
                t.ModifyAckDeadlineRequest.pb(),
                Empty,
            ),
            "Pull": _unary(self._pull, t.PullRequest.pb(), t.PullResponse.pb()),
            "StreamingPull": grpc.stream_stream_rpc_method_handler(
                self._streaming_pull,
                request_deserializer=StreamingPullRequest.FromString,
                response_serializer=StreamingPullResponse.SerializeToString,
            ),
        }
        return [
            grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", publisher),
            grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", subscriber),
        ]

    # -- Pull ----------------------------------------------------------------------

    def _pull(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.max_messages <= 0:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "max_messages must be positive.")
        backend = self.backend
        backend.check_subscription(request.subscription)
        # An empty Pull is held briefly, like the real service, so that a polling
        # client does not spin; never past the caller's own gRPC deadline.
        wait = 0.0 if request.return_immediately else self.pull_wait
        remaining = context.time_remaining()
        if remaining is not None:
            wait = max(0.0, min(wait, remaining - 0.1))
        until = time.monotonic() + wait
        with backend.cond:
            while True:
                received = backend.take_locked(request.subscription, request.max_messages)
                left = until - time.monotonic()
                if received or left <= 0 or backend.closed or not context.is_active():
                    return PullResponse(received_messages=received)
                backend.cond.wait(left)

    # -- StreamingPull -------------------------------------------------------------

    def _streaming_pull(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        backend = self.backend
        try:
            first = next(requests)
        except StopIteration:
            return
        try:
            config = backend.check_subscription(first.subscription)
            backend.check_ack_deadline(
                first.stream_ack_deadline_seconds, "stream_ack_deadline_seconds"
            )
            stream = _Stream(
                first.subscription,
                first.stream_ack_deadline_seconds,
                first.max_outstanding_messages,
                first.max_outstanding_bytes,
            )
            self._apply(stream, first)
        except ApiError as error:
            context.abort(error.code, error.message)
        properties = _types.StreamingPullResponse.SubscriptionProperties.pb()(
            message_ordering_enabled=config.enable_message_ordering,
            exactly_once_delivery_enabled=config.enable_exactly_once_delivery,
        )

        def close() -> None:
            with backend.cond:
                stream.closed = True
                backend.cond.notify_all()

        # Requests (acks, modacks, heartbeats) arrive independently of the
        # responses we send, so they are read on their own thread.
        reader = threading.Thread(
            target=self._read_requests,
            args=(stream, requests, close),
            name="pubsub-streaming-pull-reader",
            daemon=True,
        )
        reader.start()
        context.add_callback(close)  # fires when the client cancels or the RPC ends
        while True:
            with backend.cond:
                while True:
                    if stream.error is not None:
                        context.abort(stream.error.code, stream.error.message)
                    # is_active() as well: add_callback() does not fire for an
                    # RPC that ended before it was registered.
                    if stream.closed or backend.closed or not context.is_active():
                        return
                    try:
                        count, size = self._capacity(stream)
                        received = backend.take_locked(
                            stream.subscription,
                            count,
                            deadline_seconds=stream.ack_deadline,
                            stream=stream,
                            max_bytes=size,
                        )
                    except ApiError as error:  # the subscription was deleted
                        context.abort(error.code, error.message)
                    if received:
                        break
                    backend.cond.wait(_STREAM_POLL_SECONDS)
            yield StreamingPullResponse(
                received_messages=received, subscription_properties=properties
            )

    def _capacity(self, stream: _Stream) -> tuple[int, int]:
        """Messages and bytes this stream may still take under its flow control.

        0 bytes means no byte limit; a message count of 0 means "none now".
        """
        if not stream.max_messages and not stream.max_bytes:
            return _STREAM_BATCH, 0
        count, size = self.backend.outstanding_locked(stream.subscription, stream)
        if stream.max_bytes and size >= stream.max_bytes:
            return 0, 0
        messages = _STREAM_BATCH
        if stream.max_messages:
            messages = max(0, min(_STREAM_BATCH, stream.max_messages - count))
        return messages, (stream.max_bytes - size if stream.max_bytes else 0)

    def _read_requests(
        self, stream: _Stream, requests: Iterator[Any], close: Callable[[], None]
    ) -> None:
        try:
            for request in requests:
                self._apply(stream, request)
        except ApiError as error:
            with self.backend.cond:
                stream.error = error
                self.backend.cond.notify_all()
        except grpc.RpcError:
            pass  # the client went away; close() below ends the response side
        finally:
            close()

    def _apply(self, stream: _Stream, request: Any) -> None:
        """Acks, modacks and a new stream deadline carried by a StreamingPullRequest."""
        backend = self.backend
        if request.stream_ack_deadline_seconds:
            backend.check_ack_deadline(
                request.stream_ack_deadline_seconds, "stream_ack_deadline_seconds"
            )
            stream.ack_deadline = request.stream_ack_deadline_seconds
        if request.ack_ids:
            backend.acknowledge(stream.subscription, request.ack_ids)
        if len(request.modify_deadline_ack_ids) != len(request.modify_deadline_seconds):
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "modify_deadline_seconds and modify_deadline_ack_ids must have the same length.",
            )
        by_deadline: dict[int, list[str]] = {}
        for ack_id, seconds in zip(
            request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=True
        ):
            by_deadline.setdefault(seconds, []).append(ack_id)
        for seconds, ack_ids in by_deadline.items():
            backend.modify_ack_deadline(stream.subscription, ack_ids, seconds)
