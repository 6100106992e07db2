"""Prometheus metrics as an observer, scraped from /metrics over a real socket."""

from __future__ import annotations

import json
import re
import sys
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.errors import ConfigurationError
from iris_cloud.metrics import METRICS, MetricsObserver, kind_label
from iris_cloud.model import Event, OrderGradedEvent, OrderResult
from iris_cloud.providers.memory import MemoryBroker
from prometheus_client.parser import text_string_to_metric_families
from test_health import until
from test_observers import LosesLock, claim_checked_result, event_body

pytestmark = pytest.mark.timeout(60)


def exposition(consumer: Consumer) -> str:
    assert consumer.health is not None
    with urllib.request.urlopen(consumer.health.url + "/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode())


def scrape(consumer: Consumer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    text = exposition(consumer)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_metrics_of_a_run_over_http() -> None:
    broker = MemoryBroker(f"metrics-{uuid.uuid4().hex[:8]}")
    hostile = json.loads(event_body())
    hostile["ResultObjectType"] = "Jane Doe 1970-01-01"  # a sender names event types
    broker.send(
        [
            event_body(),
            json.dumps(hostile).encode(),
            event_body(OrderLocalId="fails"),
            b"{not json",
        ]
    )
    app = IrisApp()

    @app.on(OrderGradedEvent)
    def graded(evt: OrderGradedEvent) -> None:
        if evt.order_local_id == "fails":
            raise RuntimeError("no")

    app.fallback(lambda m: None)
    with Consumer(
        app,
        {"events": broker},
        metrics=True,
        health_port=0,
        wait=0.05,
        max_attempts=2,
        backoff_initial=0,
    ) as consumer:
        consumer.run_until(lambda s: s.dead_lettered >= 2, timeout=15)
        samples = scrape(consumer)
        families = {
            (f.name, f.type)
            for f in text_string_to_metric_families(exposition(consumer))
            if not f.name.endswith("_created")
        }
    graded_kind = "event:OrderGradedEvent"
    assert (
        value(samples, "iris_cloud_messages_received_total", role="events", kind=graded_kind) == 3
    )
    assert value(samples, "iris_cloud_messages_received_total", role="events", kind="invalid") == 1
    other = {"role": "events", "kind": "event:other"}
    assert value(samples, "iris_cloud_messages_received_total", **other) == 1
    assert value(samples, "iris_cloud_messages_handled_total", **other) == 1
    assert value(samples, "iris_cloud_messages_handled_total", role="events", kind=graded_kind) == 1
    assert value(samples, "iris_cloud_messages_retried_total", role="events", kind=graded_kind) == 1
    dead = "iris_cloud_messages_dead_lettered_total"
    assert value(samples, dead, role="events", kind=graded_kind) == 1
    assert value(samples, dead, role="events", kind="invalid") == 1
    finished = "iris_cloud_messages_finished_total"
    assert value(samples, finished, role="events", kind="invalid", outcome="poison") == 1
    assert value(samples, finished, role="events", kind=graded_kind, outcome="retried") == 1
    count = "iris_cloud_handler_duration_seconds_count"
    assert value(samples, count, role="events", kind=graded_kind) == 3
    assert value(samples, "iris_cloud_handlers_in_flight", role="events") == 0
    # Every documented metric is exposed, with its type.
    assert families == {
        (name.removesuffix("_total"), kind) for name, (kind, _, _) in METRICS.items()
    }
    assert value(samples, "iris_cloud_lock_renewals_total", role="events") == 0
    # Names and labels only: a value (the *_created series are epoch seconds) may
    # hold the digits 1970 by chance.
    shown = repr(list(samples))
    assert "Jane" not in shown and "1970" not in shown


def test_in_flight_locks_claim_checks_saves_and_receive_errors(tmp_path: Path) -> None:
    profile = claim_checked_result(tmp_path)
    running, release = threading.Event(), threading.Event()
    app = IrisApp()

    @app.on(OrderResult)
    def on_result(res: OrderResult, ctx: Context) -> None:
        running.set()
        assert release.wait(20)
        ctx.result_saved()

    with Consumer.from_profile(
        app, profile, roles=("results",), metrics=True, health_port=0, wait=0.05
    ) as consumer:
        consumer.start()
        assert running.wait(10)
        assert value(scrape(consumer), "iris_cloud_handlers_in_flight", role="results") == 1
        release.set()
        until(lambda: consumer.snapshot().completed >= 1)
        samples = scrape(consumer)
        consumer.stop()
        consumer.join(10)
    assert value(samples, "iris_cloud_handlers_in_flight", role="results") == 0
    assert value(samples, "iris_cloud_claim_check_fetches_total", role="results") == 1
    assert value(samples, "iris_cloud_results_saved_total", role="results") == 1


def test_lock_renewals_lost_locks_and_receive_errors_without_a_port() -> None:
    from test_observers import FailingReceive

    broker = LosesLock(f"metrics-{uuid.uuid4().hex[:8]}", lock_seconds=5.0)
    broker.send(event_body())
    flaky = FailingReceive(f"metrics-{uuid.uuid4().hex[:8]}")
    app = IrisApp()

    @app.on(Event)
    def slow(evt: Event, ctx: Context) -> None:
        until(lambda: ctx.lock_lost)

    with Consumer(
        app,
        {"events": broker, "results": flaky},
        metrics=True,
        wait=0.05,
        lock_renewal_interval=0.05,
    ) as consumer:
        consumer.run_until(lambda s: s.lock_lost >= 1 and s.receive_errors >= 2, timeout=15)
        assert consumer.health is None and consumer.metrics is not None
        registry = consumer.metrics.registry
    get = registry.get_sample_value
    assert get("iris_cloud_lock_renewals_total", {"role": "events"}) == 1
    assert get("iris_cloud_locks_lost_total", {"role": "events"}) == 1
    assert get("iris_cloud_receive_errors_total", {"role": "results", "error": "Unavailable"}) == 2


def test_each_consumer_has_its_own_registry() -> None:
    first, second = MetricsObserver(), MetricsObserver()
    assert first.registry is not second.registry
    from iris_cloud.observers import Delivery
    from iris_cloud.ports import Message

    first.result_saved(Delivery("results", Message(body=b"")))
    assert first.registry.get_sample_value("iris_cloud_results_saved_total", {"role": "results"})
    assert (
        second.registry.get_sample_value("iris_cloud_results_saved_total", {"role": "results"})
        is None
    )


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    broker = MemoryBroker(f"metrics-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigurationError, match=r"iris-cloud\[metrics\]"):
        Consumer(IrisApp(), broker, metrics=True, health_port=0)


def test_kind_labels_are_bounded() -> None:
    assert kind_label("event:OrderGradedEvent") == "event:OrderGradedEvent"
    assert kind_label("result") == "result"
    assert kind_label("event:anything a sender wrote") == "event:other"


OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"


def doc_rows(first_cell: str) -> dict[str, list[str]]:
    """Rows of docs/operations.md tables whose first cell matches, by that cell."""
    rows = {}
    for line in OPERATIONS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and re.fullmatch(first_cell, cells[0].strip("`")):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    rows = doc_rows(r"iris_cloud_\w+")
    assert set(rows) == set(METRICS)
    for name, (kind, labels, _) in METRICS.items():
        assert rows[name][0] == kind, name
        assert rows[name][1] == ", ".join(f"`{label}`" for label in labels), name


def test_every_snapshot_counter_is_documented() -> None:
    from iris_cloud.consumer import ConsumerStats

    assert set(doc_rows(r"[a-z_]+")) >= set(ConsumerStats().as_dict())
