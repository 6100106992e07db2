"""Shared fixtures of the core tests.

``mock_provider`` registers a plugin in code, the way llm's tests register mock
models: a module-like object with hookimpls, added to the live plugin manager
for one test and removed afterwards. ``builtin_plugins_only`` swaps in a plugin
manager holding just the built-ins, so tests about "what is installed" do not
depend on which provider packages this environment has.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

import pluggy
import pytest
from consumers import ENGINES, Consume, open_consumer
from iris_cloud import ConsumerObserver, Delivery, Outcome, hookimpl, hookspecs, plugins
from iris_cloud.ports import MessageBroker, ObjectStore
from iris_cloud.providers.memory import MemoryBroker, MemoryStore

MOCK_PLUGIN_NAME = "undo-mock-provider"


class MockBroker(MemoryBroker):
    """A third-party-style broker: ``mockq://NAME``, backed by the in-memory queue."""

    scheme = "mockq"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls(f"mockq-{urlsplit(url).netloc}", **options)


class MockStore(MemoryStore):
    """A third-party-style store: ``mocks://NAME``."""

    scheme = "mocks"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        return cls(f"mocks-{urlsplit(url).netloc}", **options)


class MockProviderPlugin:
    """What an installed provider package's ``provider`` module provides."""

    __name__ = "MockProviderPlugin"
    broker_class = MockBroker
    store_class = MockStore

    @hookimpl
    def iris_cloud_broker_schemes(self) -> dict[str, type[MessageBroker]]:
        return {"mockq": MockBroker}

    @hookimpl
    def iris_cloud_store_schemes(self) -> dict[str, type[ObjectStore]]:
        return {"mocks": MockStore}


@pytest.fixture
def mock_provider() -> Iterator[MockProviderPlugin]:
    """Register :class:`MockProviderPlugin` for one test."""
    pm = plugins.get_plugin_manager()
    plugin = MockProviderPlugin()
    pm.register(plugin, name=MOCK_PLUGIN_NAME)
    try:
        yield plugin
    finally:
        pm.unregister(name=MOCK_PLUGIN_NAME)


@pytest.fixture
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch) -> pluggy.PluginManager:
    """A plugin manager with only the built-in providers, for the duration of a test."""
    pm = pluggy.PluginManager("iris_cloud")
    pm.add_hookspecs(hookspecs)
    for name, module in plugins.BUILTIN_PLUGINS.items():
        pm.register(importlib.import_module(module), name=name)
    monkeypatch.setattr(plugins, "_pm", pm)
    return pm


class _Observing(ConsumerObserver):
    """Observes every delivery: the consumer takes its steps for each."""

    def message_finished(self, delivery: Delivery, outcome: Outcome) -> None:
        pass


@pytest.fixture(params=[(e, p) for e in ENGINES for p in ("quiet", "observed")], ids=str)
def consume(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Consume:
    """The sync Consumer, then the AsyncConsumer: the same behaviours on each, and on
    each of the two ways a delivery goes: ``quiet`` (no observer observes it: plain
    calls) and ``observed`` (an observer is told of it: steps)."""
    engine, path = request.param
    if path == "quiet":
        # No tracing observer: once a test in the session set an SDK, it observes all.
        monkeypatch.setattr("iris_cloud.consumelogic.default_observers", lambda given: [])
        return functools.partial(open_consumer, engine)

    def observed(*args: Any, observers: Sequence[ConsumerObserver] = (), **kwargs: Any) -> Any:
        return open_consumer(engine, *args, observers=[*observers, _Observing()], **kwargs)

    return observed
