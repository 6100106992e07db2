"""The same order workflow code, unchanged, on every provider.

:func:`run_exchange` takes the integrator's and the platform's
:class:`~iris_cloud.config.Profile` and runs the IRIS exchange against the
simulator: an Image First order (JPEGs uploaded first), an Order First order
(a tagged DICOM and a tagged JPEG after the order) and a cancellation. It runs
on ``mem://``, ``local://`` and, through each provider's ``testing`` module
(its test servers and ``workflow_profiles``), on AWS (moto), Azure (Azurite +
the Service Bus emulator; with IRIS-shaped least-privilege credentials and
with full rights) and Google Cloud (the Cloud Storage and Pub/Sub emulators).
Each runs again with the async API: the same steps through an
:class:`~iris_cloud.aio.AsyncIrisClient` and an
:class:`~iris_cloud.aio.AsyncConsumer` with ``async def`` handlers, each
driven from this sync test on a loop in a thread.

A provider whose testing module is missing or whose servers cannot start is
skipped with the reason, or fails when ``IRIS_CLOUD_REQUIRE_EMULATORS=1``.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from iris_cloud.aio import AsyncConsumer, AsyncIrisClient
from iris_cloud.client import IrisClient
from iris_cloud.config import BROKER_ROLES, STORE_ROLES, Profile
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.model import Event, OrderRequest, OrderResult
from iris_cloud.testing import require_server
from iris_cloud.testing.blocking import BlockingClient, BlockingConsumer, shared_loop
from iris_cloud_simulator import Simulator
from iris_cloud_simulator.samples import dicom_image, jpeg_image, new_local_id, sample_order

CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
CONSUMER = {"wait": 0.5, "backoff_initial": 0.1, "backoff_max": 1.0}
TIMEOUT = 120.0
GRADED = [
    "OrderCreationReceipt",
    "ImageReceipt",
    "ImageReceipt",
    "ReadyForGradingEvent",
    "GradingReceipt",
    "OrderGradedEvent",
    "ResultsDeliveryReceipt",
]


class Seen:
    """What the integrator's listener received, by order LocalId."""

    def __init__(self) -> None:
        self.events: dict[str, list[str]] = {}
        self.results: dict[str, OrderResult] = {}
        self.cond = threading.Condition()

    def on_event(self, event: Event) -> None:
        with self.cond:
            self.events.setdefault(event.order_local_id or "", []).append(event.result_object_type)
            self.cond.notify_all()

    def on_result(self, result: OrderResult) -> None:
        local_id = result.order.local_id if result.order else None
        with self.cond:
            self.results[local_id or ""] = result
            self.cond.notify_all()

    def has_event(self, local_id: str, kind: str) -> bool:
        return kind in self.events.get(local_id, [])

    def wait(self, done: Any, timeout: float) -> bool:
        with self.cond:
            return bool(self.cond.wait_for(done, timeout))


def integrator_side(engine: str, integrator: Profile, seen: Seen) -> tuple[Any, Any]:
    """The client and the listener of ``engine``: the sync API, or the async one driven sync."""
    app = IrisApp()
    roles = ("events", "results")
    if engine == "sync":
        app.on(Event)(seen.on_event)
        app.on(OrderResult)(seen.on_result)
        return IrisClient(integrator), Consumer.from_profile(app, integrator, roles=roles)

    @app.on(Event)
    async def on_event(event: Event) -> None:
        seen.on_event(event)

    @app.on(OrderResult)
    async def on_result(result: OrderResult) -> None:
        seen.on_result(result)

    loop = shared_loop()
    client = BlockingClient(AsyncIrisClient(integrator), loop)
    return client, BlockingConsumer(
        loop.run(AsyncConsumer.from_profile(app, integrator, roles)), loop
    )


def run_exchange(
    integrator: Profile, platform: Profile, state_dir: Path, engine: str = "sync"
) -> None:
    """The integrator's workflow against the simulator; asserts every event and result."""
    seen = Seen()
    client, listener = integrator_side(engine, integrator, seen)
    with (
        Simulator(platform, state_dir, poll_interval=0.2) as simulator,
        client as iris,
    ):
        thread = threading.Thread(target=listener.run_until, daemon=True)
        simulator.start()
        thread.start()
        try:
            # Image First: images first, the order references them
            image_first = new_local_id("IF")
            refs = [iris.upload_image(jpeg_image(1)), iris.upload_image(jpeg_image(2))]
            iris.submit_order(
                sample_order(
                    image_first,
                    images=[
                        refs[0].image(local_id=f"{image_first}-OD", laterality="OD").to_dict(),
                        refs[1].image(local_id=f"{image_first}-OS", laterality="OS").to_dict(),
                    ],
                )
            )
            # Order First: the order, then images carrying its identifiers
            request = OrderRequest.model_validate(sample_order(new_local_id("OF")))
            order_first = request.order.local_id
            iris.submit_order(request)
            iris.upload_exam_image(dicom_image(), order=request, laterality="OD")
            iris.upload_exam_image(jpeg_image(3), order=request, laterality="OS")
            # a cancellation once IRIS confirmed the order
            cancelled = new_local_id("CA")
            iris.submit_order(sample_order(cancelled))
            assert seen.wait(lambda: seen.has_event(cancelled, "OrderCreationReceipt"), TIMEOUT), (
                f"no OrderCreationReceipt for {cancelled}: {seen.events}"
            )
            iris.cancel_order(cancelled)

            def complete() -> bool:
                return all(
                    lid in seen.results and seen.has_event(lid, "ResultsDeliveryReceipt")
                    for lid in (image_first, order_first)
                ) and seen.has_event(cancelled, "OrderCancelled")

            assert seen.wait(complete, TIMEOUT), f"incomplete after {TIMEOUT}s: {seen.events}"
            time.sleep(0.5)  # anything extra (a duplicate, a stray event) would show up now
        finally:
            listener.stop()
            thread.join()
            listener.close()
            simulator.stop()

    # Brokers other than mem/local need not keep the order of messages.
    assert Counter(seen.events[image_first]) == Counter(GRADED)
    assert Counter(seen.events[order_first]) == Counter(GRADED)
    assert seen.events[cancelled] == ["OrderCreationReceipt", "OrderCancelled"]
    assert set(seen.results) == {image_first, order_first}
    for local_id in (image_first, order_first):
        result = seen.results[local_id]
        assert result.result_code == "F"
        assert result.gradings is not None and result.gradings.od is not None
        assert result.image_details is not None and result.image_details.total_count == 2
        assert result.results_document is not None
        assert result.results_document.decode().startswith(b"%PDF")


# ------------------------------------------------------------------ providers


def _testing_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require_server(f"{name} is not importable ({exc})")


def _profiles(integrator: dict[str, Any], platform: dict[str, Any]) -> tuple[Profile, Profile]:
    common = {"client_guid": CLIENT_GUID, "consumer": CONSUMER}
    return (
        Profile.from_dict({**integrator, **common}),
        Profile.from_dict({**platform, **common}, side="platform"),
    )


@contextlib.contextmanager
def _server(name: str, factory: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Enter a test server's context manager; an error while starting skips (or fails)."""
    manager = factory(*args, **kwargs)
    try:
        server = manager.__enter__()
    except Exception as exc:
        require_server(f"{name}: {type(exc).__name__}: {exc}")
    try:
        yield server
    except BaseException as exc:
        if not manager.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        manager.__exit__(None, None, None)


@contextlib.contextmanager
def provider_profiles(provider: str, root: Path) -> Iterator[tuple[Profile, Profile]]:
    """(integrator, platform) profiles of one exchange on ``provider``."""
    if provider in ("mem", "local"):
        tag = uuid.uuid4().hex[:8]
        data: dict[str, Any] = {}
        for role in BROKER_ROLES:
            data[role] = (
                f"mem://{role}-{tag}"
                if provider == "mem"
                else {"url": f"local://{root}/queues?queue={role}", "lock_seconds": 5}
            )
        for role in STORE_ROLES:
            data[role] = f"mem://{role}-{tag}" if provider == "mem" else f"file://{root}/{role}"
        integrator = Profile.from_dict({**data, "client_guid": CLIENT_GUID, "consumer": CONSUMER})
        yield integrator, integrator.mirror()
    elif provider == "aws":
        testing = _testing_module("iris_cloud_aws.testing")
        with _server("moto", testing.moto_server) as server:
            yield _profiles(*testing.workflow_profiles(server))
    elif provider.startswith("azure"):
        testing = _testing_module("iris_cloud_azure.testing")
        with (
            _server("Azurite", testing.azurite) as blob,
            _server("Service Bus emulator", testing.servicebus, lock_duration=5.0) as bus,
        ):
            yield _profiles(
                *testing.workflow_profiles(
                    blob, bus, iris_credentials=provider == "azure-iris-credentials"
                )
            )
    elif provider == "gcp":
        testing = _testing_module("iris_cloud_gcp.testing")
        with _server("GCS + Pub/Sub emulators", testing.gcp_servers) as servers:
            yield _profiles(*testing.workflow_profiles(servers))
    else:
        raise AssertionError(f"unknown provider {provider}")


@pytest.mark.parametrize("engine", ["sync", "async"])
@pytest.mark.parametrize(
    "provider", ["mem", "local", "aws", "azure", "azure-iris-credentials", "gcp"]
)
def test_order_workflow(provider: str, engine: str, tmp_path: Path) -> None:
    with provider_profiles(provider, tmp_path / "exchange") as (integrator, platform):
        run_exchange(integrator, platform, tmp_path / "simulator", engine)
