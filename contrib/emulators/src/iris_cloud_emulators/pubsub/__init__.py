"""A Google Pub/Sub test server: ``google.pubsub.v1`` over gRPC for the real client.

``PubSubEmulator`` runs it in-process for tests; ``iris-cloud-pubsub-emulator``
runs it as a command. See docs/pubsub-emulator.md for what it implements.
"""

from .server import PubSubEmulator

__all__ = ["PubSubEmulator"]
