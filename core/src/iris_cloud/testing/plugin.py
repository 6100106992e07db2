"""The iris-cloud pytest plugin (entry point ``pytest11: iris_cloud``).

Installed with iris-cloud, so any project's tests get these fixtures without
configuration:

* ``mem_broker`` / ``mem_store`` — a fresh in-process queue / container
  (``mem://``), unique per test;
* ``local_broker`` / ``local_store`` — the embedded default under the test's
  ``tmp_path`` (``local://`` SQLite queue, ``file://`` directory);
* ``spans`` — the OpenTelemetry spans finished during the test
  (:class:`~iris_cloud.testing.spans.SpanRecorder`; skips without
  ``opentelemetry-sdk``).

:func:`require_server` is what test-server fixtures call when their server
cannot start: it fails the test when ``IRIS_CLOUD_REQUIRE_EMULATORS=1`` (CI)
and skips it, with the reason, elsewhere.

Provider modules are imported inside the fixtures, so a project that never
uses them pays nothing at pytest start-up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from iris_cloud.ports import MessageBroker, ObjectStore
    from iris_cloud.testing.blocking import LoopThread
    from iris_cloud.testing.spans import SpanRecorder

__all__ = [
    "emulators_required",
    "local_broker",
    "local_store",
    "loop_thread",
    "mem_broker",
    "mem_store",
    "require_server",
    "spans",
]

REQUIRE_ENV = "IRIS_CLOUD_REQUIRE_EMULATORS"


def emulators_required() -> bool:
    """Whether test servers must start (``IRIS_CLOUD_REQUIRE_EMULATORS=1``, as in CI)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def require_server(reason: str) -> NoReturn:
    """A test server could not start: fail in CI, skip elsewhere, saying why."""
    if emulators_required():
        pytest.fail(f"test server required ({REQUIRE_ENV}=1) but unavailable: {reason}")
    pytest.skip(f"test server unavailable: {reason}")


@pytest.fixture
def mem_broker() -> Iterator[MessageBroker]:
    """A fresh ``mem://`` queue (2 s locks, 3 deliveries before dead-letter)."""
    from iris_cloud.providers.memory import MemoryBroker

    with MemoryBroker.from_url(
        f"mem://test-{uuid.uuid4().hex}", lock_seconds=2.0, max_delivery_count=3
    ) as broker:
        yield broker


@pytest.fixture
def mem_store() -> Iterator[ObjectStore]:
    """A fresh, empty ``mem://`` container."""
    from iris_cloud.providers.memory import MemoryStore

    with MemoryStore.from_url(f"mem://test-{uuid.uuid4().hex}") as store:
        yield store


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[MessageBroker]:
    """A ``local://`` SQLite queue under ``tmp_path`` (2 s locks, 3 deliveries)."""
    from iris_cloud.providers.local import LocalBroker

    url = f"{(tmp_path / 'queues').as_uri().replace('file:', 'local:', 1)}?queue=test"
    with LocalBroker.from_url(url, lock_seconds=2.0, max_delivery_count=3) as broker:
        yield broker


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[ObjectStore]:
    """A ``file://`` store in ``tmp_path / "store"``."""
    from iris_cloud.providers.local import FileStore

    with FileStore.from_url((tmp_path / "store").as_uri()) as store:
        yield store


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    """An event loop in a thread, for blocking facades over async ports (one per session)."""
    from iris_cloud.testing.blocking import LoopThread

    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture
def spans() -> Iterator[SpanRecorder]:
    """The spans finished during the test, in memory (skips without opentelemetry-sdk)."""
    pytest.importorskip("opentelemetry.sdk.trace", reason="needs opentelemetry-sdk")
    from iris_cloud.testing.spans import recording

    with recording() as recorder:
        yield recorder
