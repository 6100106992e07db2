"""Prometheus metrics of a consumer (the ``iris-cloud[metrics]`` extra).

:class:`MetricsObserver` is a :class:`~iris_cloud.observers.ConsumerObserver`
keeping ``prometheus_client`` metrics in a registry of its own (one per
consumer: two consumers in a process, or two tests, never share counters).
``Consumer(..., metrics=True, health_port=9100)`` serves them at
``/metrics`` on the health port; :data:`METRICS` lists each one.

Labels are bounded and carry no message content: ``role`` is the consumer's
name for a broker, ``kind`` one of the kinds the model knows (an event type
it does not know, which a sender names, is counted as ``event:other``),
``outcome`` an :data:`~iris_cloud.observers.Outcome`, ``error`` an exception
class name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from iris_cloud.errors import ConfigurationError
from iris_cloud.model import KNOWN_KINDS, shown_kind
from iris_cloud.observers import ConsumerObserver, Delivery, ObservedConsumer, Outcome

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["KNOWN_KINDS", "METRICS", "MetricsObserver", "kind_label"]

EXTRA_MISSING = (
    "Prometheus metrics need the iris-cloud[metrics] extra (prometheus_client): "
    "pip install 'iris-cloud[metrics]'"
)

METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "iris_cloud_messages_received_total": (
        "counter",
        ("role", "kind"),
        "Deliveries received and parsed (kind invalid: the body did not parse).",
    ),
    "iris_cloud_messages_handled_total": (
        "counter",
        ("role", "kind"),
        "Deliveries handled and completed.",
    ),
    "iris_cloud_messages_retried_total": (
        "counter",
        ("role", "kind"),
        "Deliveries whose handler failed, abandoned for a retry.",
    ),
    "iris_cloud_messages_dead_lettered_total": (
        "counter",
        ("role", "kind"),
        "Deliveries dead-lettered: handler failures out of attempts, and poison (kind invalid).",
    ),
    "iris_cloud_messages_finished_total": (
        "counter",
        ("role", "kind", "outcome"),
        "Deliveries by how they ended (every outcome, duplicates and lost locks included).",
    ),
    "iris_cloud_handler_duration_seconds": (
        "histogram",
        ("role", "kind"),
        "Time in the handler (re-runs after consumer-side failures included).",
    ),
    "iris_cloud_handlers_in_flight": (
        "gauge",
        ("role",),
        "Handlers running now.",
    ),
    "iris_cloud_lock_renewals_total": (
        "counter",
        ("role",),
        "Lock renewals of messages whose handlers were running.",
    ),
    "iris_cloud_locks_lost_total": (
        "counter",
        ("role",),
        "Deliveries whose lock ended before they were settled (they come back).",
    ),
    "iris_cloud_receive_errors_total": (
        "counter",
        ("role", "error"),
        "Receive calls that failed, by exception class.",
    ),
    "iris_cloud_claim_check_fetches_total": (
        "counter",
        ("role",),
        "Bodies fetched from a claim-check store on receipt.",
    ),
    "iris_cloud_results_saved_total": (
        "counter",
        ("role",),
        "Result documents saved by handlers.",
    ),
}
"""Every metric: name -> (type, labels, help). A counter's name ends in
``_total`` as exposed (``prometheus_client`` adds a ``_created`` series too)."""


# The ``kind`` label's value: what logs and spans show too.
kind_label = shown_kind


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(EXTRA_MISSING) from None
    return prometheus_client


class MetricsObserver(ConsumerObserver):
    """The consumer's metrics in :attr:`registry` (a new ``CollectorRegistry`` by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        prom = _prometheus()
        self.registry: CollectorRegistry = registry or prom.CollectorRegistry()
        """The registry holding this consumer's metrics (and nothing else by default)."""
        kinds = {"counter": prom.Counter, "gauge": prom.Gauge, "histogram": prom.Histogram}
        made: dict[str, Any] = {}
        for name, (kind, labels, doc) in METRICS.items():
            # prometheus_client appends _total to a counter's name itself.
            base = name.removesuffix("_total") if kind == "counter" else name
            made[name] = kinds[kind](base, doc, labels, registry=self.registry)
        self._m = made

    def render(self) -> tuple[int, str, bytes]:
        """The Prometheus text exposition of :attr:`registry` (a health-server route)."""
        prom = _prometheus()
        return 200, prom.CONTENT_TYPE_LATEST, prom.generate_latest(self.registry)

    def consumer_started(self, consumer: ObservedConsumer) -> None:
        """Show the per-role series at 0 from the start (rates need a first sample)."""
        for name, (_, labels, _) in METRICS.items():
            if labels == ("role",):
                for role in consumer.brokers:
                    self._m[name].labels(role)

    def _inc(self, name: str, *labels: str) -> None:
        self._m[name].labels(*labels).inc()

    def message_received(self, delivery: Delivery) -> None:
        """Count the delivery."""
        self._inc("iris_cloud_messages_received_total", delivery.source, kind_label(delivery.kind))

    def claim_check_fetched(self, delivery: Delivery) -> None:
        """Count the fetch."""
        self._inc("iris_cloud_claim_check_fetches_total", delivery.source)

    @contextlib.contextmanager
    def handling(self, delivery: Delivery) -> Iterator[None]:
        """One more handler in flight while the context is open."""
        gauge = self._m["iris_cloud_handlers_in_flight"].labels(delivery.source)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def handler_finished(self, delivery: Delivery, duration: float, outcome: Outcome) -> None:
        """Observe the handler's duration."""
        histogram = self._m["iris_cloud_handler_duration_seconds"]
        histogram.labels(delivery.source, kind_label(delivery.kind)).observe(duration)

    def message_finished(self, delivery: Delivery, outcome: Outcome) -> None:
        """Count the outcome, and as handled / retried / dead-lettered where it is one."""
        role, kind = delivery.source, kind_label(delivery.kind)
        self._inc("iris_cloud_messages_finished_total", role, kind, outcome)
        counter = {
            "completed": "iris_cloud_messages_handled_total",
            "retried": "iris_cloud_messages_retried_total",
            "dead_lettered": "iris_cloud_messages_dead_lettered_total",
            "poison": "iris_cloud_messages_dead_lettered_total",
        }.get(outcome)
        if counter is not None:
            self._inc(counter, role, kind)

    def lock_renewed(self, delivery: Delivery) -> None:
        """Count the renewal."""
        self._inc("iris_cloud_lock_renewals_total", delivery.source)

    def lock_lost(self, delivery: Delivery) -> None:
        """Count the loss."""
        self._inc("iris_cloud_locks_lost_total", delivery.source)

    def receive_error(self, source: str, error_class: str) -> None:
        """Count the failure by class."""
        self._inc("iris_cloud_receive_errors_total", source, error_class)

    def result_saved(self, delivery: Delivery) -> None:
        """Count the saved document."""
        self._inc("iris_cloud_results_saved_total", delivery.source)
