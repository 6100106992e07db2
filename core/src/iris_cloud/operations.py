"""The observers a consumer's settings ask for: health endpoint, systemd notify, metrics.

:func:`service_observers` turns :class:`~iris_cloud.config.ConsumerSettings`
(``health_port``, ``health_host``, ``ready_within``, ``systemd_notify``,
``metrics``) into
the observers a :class:`~iris_cloud.consumer.Consumer` runs before those it
was given, and the :class:`~iris_cloud.health.HealthServer` it closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iris_cloud.config import ConsumerSettings
from iris_cloud.health import HealthServer, HealthState, default_ready_within
from iris_cloud.metrics import MetricsObserver
from iris_cloud.observers import ConsumerObserver
from iris_cloud.systemd import SystemdNotifier

__all__ = ["ServiceObservers", "service_observers"]


@dataclass
class ServiceObservers:
    """What :func:`service_observers` built."""

    observers: list[ConsumerObserver] = field(default_factory=list)
    server: HealthServer | None = None
    state: HealthState | None = None
    metrics: MetricsObserver | None = None

    def close(self) -> None:
        """Release the health port."""
        if self.server is not None:
            self.server.close()


def service_observers(settings: ConsumerSettings) -> ServiceObservers:
    """The health state, server and systemd notifier ``settings`` ask for (binds the port)."""
    out = ServiceObservers()
    if settings.metrics:
        # Before the port is bound: a missing extra fails with nothing to release.
        out.metrics = MetricsObserver()
        out.observers.append(out.metrics)
    if settings.health_port is None and not settings.systemd_notify:
        return out
    within = settings.ready_within or default_ready_within(settings.wait)
    out.state = HealthState(ready_within=within)
    out.observers.insert(0, out.state)
    if settings.systemd_notify:
        out.observers.append(SystemdNotifier(out.state))
    if settings.health_port is not None:
        out.server = HealthServer(out.state, host=settings.health_host, port=settings.health_port)
        if out.metrics is not None:
            out.server.route("/metrics", out.metrics.render)
    return out
