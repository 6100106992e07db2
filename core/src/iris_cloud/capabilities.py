"""What an endpoint can do: :class:`Capabilities`, shared by the sync and async ports.

Re-exported by :mod:`iris_cloud.ports`; it lives here so that what the ports
decide (:mod:`iris_cloud.portlogic`) can read it without importing the ports.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Capabilities"]


@dataclass(frozen=True)
class Capabilities:
    """What an endpoint can do; each provider fills in the fields of its port.

    Broker fields describe the queue; store fields the container. A field a
    port does not use keeps its default.
    """

    # broker
    max_message_bytes: int = 256 * 1024
    """Largest body (plus properties) the service accepts in one message."""
    max_batch: int = 100
    """Most messages one send call to the service may carry."""
    max_batch_bytes: int | None = None
    """Most bytes one send call may carry, when the service limits the batch as a whole."""
    native_dead_letter: bool = False
    """The service keeps a dead-letter queue itself (versus one we configure)."""
    delayed_retry: bool = False
    """``abandon(delay=...)`` really delays redelivery."""
    lock_renewal: bool = True
    """``renew_lock`` extends a held message's lock."""
    max_delivery_count: int | None = None
    """Deliveries after which the service dead-letters by itself, if it does."""
    delivery_count_exact: bool = True
    """``Message.delivery_count`` is the service's own count, not an estimate."""
    peek: bool = False
    """``peek`` shows waiting messages without locking them or counting a delivery."""
    completes_for_all: bool = False
    """Completing a message removes it for every receiver (a queue, not one subscription
    of a topic), so nobody else needs its claim-checked payload afterwards."""
    batch_settle: bool = False
    """``complete_many`` / ``abandon_many`` settle several messages in one service call
    (or one lock, one transaction) instead of one call each; where it is False they loop,
    and the consumer settles each message as soon as it is handled."""
    # store
    conditional_create: bool = True
    """``put(overwrite=False)`` is enforced atomically by the service."""
    signed_urls: bool = False
    """``signed_url`` can hand out URLs that work without our credentials."""
    native_watch: bool = False
    """``watch`` is fed by service notifications rather than polling."""
    can_read: bool = True
    """The credentials may read objects (a write-only SAS may not)."""
    can_list: bool = True
    """The credentials may list objects."""
    can_write: bool = True
    """The credentials may write objects."""
