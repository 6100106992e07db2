"""The plugin system: documented hooks, scheme resolution, third-party registration, the CLI."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from click.testing import CliRunner
from iris_cloud import hookimpl, hookspecs, open_broker, open_store, plugins
from iris_cloud.cli import main
from iris_cloud.errors import ConfigurationError
from iris_cloud.ports import MessageBroker, ObjectStore
from iris_cloud.providers.local import FileStore, LocalBroker
from iris_cloud.providers.memory import MemoryBroker, MemoryStore
from iris_cloud.testing import require_server


def _hookspecs() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "iris_cloud_spec")
    ]


def test_there_are_hookspecs() -> None:
    assert {"iris_cloud_broker_schemes", "iris_cloud_store_schemes"} <= set(_hookspecs())


@pytest.mark.parametrize("name", _hookspecs())
def test_every_hookspec_is_documented(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and len(doc.split()) >= 5, f"hook {name} needs a docstring saying what to return"


def test_every_hook_is_known_to_the_plugin_manager() -> None:
    pm = plugins.get_plugin_manager()
    for name in _hookspecs():
        assert getattr(pm.hook, name).spec is not None
    # Implementations whose names match no spec would be silently ignored.
    pm.check_pending()


@pytest.mark.parametrize("module", list(plugins.BUILTIN_PLUGINS))
def test_builtin_plugins_implement_both_scheme_hooks(module: str) -> None:
    plugin = plugins.get_plugin_manager().get_plugin(module)
    assert plugin is not None
    for hook in ("iris_cloud_broker_schemes", "iris_cloud_store_schemes"):
        impl = getattr(plugin, hook)
        assert hasattr(impl, "iris_cloud_impl"), f"{module}.{hook} is not a hookimpl"
        assert impl(), f"{module}.{hook} serves no scheme"


def test_builtin_schemes_resolve() -> None:
    assert plugins.broker_schemes()["mem"] is MemoryBroker
    assert plugins.broker_schemes()["local"] is LocalBroker
    assert plugins.store_schemes()["mem"] is MemoryStore
    assert plugins.store_schemes()["file"] is FileStore


def test_open_builtin_urls(tmp_path: Path) -> None:
    with open_broker("mem://plugins-test") as b:
        assert isinstance(b, MemoryBroker)
    with open_store((tmp_path / "s").as_uri()) as s:
        assert isinstance(s, FileStore)
    url = (tmp_path / "q").as_uri().replace("file:", "local:", 1) + "?queue=orders"
    with open_broker(url) as lb:
        assert isinstance(lb, LocalBroker)


def test_unknown_scheme_lists_installed_and_names_the_package(
    builtin_plugins_only: pluggy.PluginManager,
) -> None:
    with pytest.raises(ConfigurationError) as exc:
        open_broker("awssqs://orders?region=eu-west-1")
    text = str(exc.value)
    assert "'awssqs'" in text
    assert "installed: local, mem" in text
    assert "iris-cloud[aws]" in text
    with pytest.raises(ConfigurationError) as exc:
        open_store("gs://bucket/prefix")
    assert "installed: file, mem" in str(exc.value)
    assert "iris-cloud[gcp]" in str(exc.value)


def test_unknown_scheme_without_known_package(builtin_plugins_only: pluggy.PluginManager) -> None:
    with pytest.raises(ConfigurationError) as exc:
        open_broker("kafka://topic")
    assert "installed: local, mem" in str(exc.value)
    assert "iris-cloud[" not in str(exc.value)


def test_url_without_scheme() -> None:
    with pytest.raises(ConfigurationError, match="no scheme"):
        open_broker("orders")


def test_registered_plugin_is_resolvable(mock_provider: Any) -> None:
    with open_broker("mockq://orders") as b:
        assert isinstance(b, mock_provider.broker_class)
        assert isinstance(b, MessageBroker)
        b.send(b"via a plugin")
        with open_broker("mockq://orders") as again:
            assert [m.body for m in again.receive(wait=1)] == [b"via a plugin"]
    with open_store("mocks://images") as s:
        assert isinstance(s, mock_provider.store_class)
    names = [p.name for p in plugins.providers()]
    assert "undo-mock-provider" in names


def test_mock_plugin_removed_after_fixture() -> None:
    assert "mockq" not in plugins.broker_schemes()
    with pytest.raises(ConfigurationError, match="no broker provider for scheme 'mockq'"):
        open_broker("mockq://orders")


def test_providers_command_lists_builtins() -> None:
    result = CliRunner().invoke(main, ["providers"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for scheme in ("mem://", "local://", "file://"):
        assert scheme in result.output


def test_providers_command_json() -> None:
    result = CliRunner().invoke(main, ["providers", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = {p["name"]: p for p in json.loads(result.output)}
    mem = data["memory"]
    assert mem["distribution"] == "iris-cloud"
    assert mem["brokers"]["mem"]["delayed_retry"] is True
    local = data["local"]
    assert set(local["brokers"]) == {"local"} and set(local["stores"]) == {"file"}
    assert local["stores"]["file"]["conditional_create"] is True


def test_providers_command_shows_registered_plugin(mock_provider: Any) -> None:
    result = CliRunner().invoke(main, ["providers", "--json"], catch_exceptions=False)
    data = {p["name"]: p for p in json.loads(result.output)}
    assert set(data["undo-mock-provider"]["brokers"]) == {"mockq"}


# -- the pytest plugin ---------------------------------------------------------------


def test_pytest_plugin_fixtures(
    mem_broker: MessageBroker,
    mem_store: ObjectStore,
    local_broker: MessageBroker,
    local_store: ObjectStore,
) -> None:
    for broker in (mem_broker, local_broker):
        broker.send(b"fixture")
        msg = broker.receive(wait=1)[0]
        assert msg.body == b"fixture"
        broker.complete(msg)
        assert broker.capabilities.max_delivery_count == 3
    for store in (mem_store, local_store):
        store.put("a", b"1")
        assert [o.name for o in store.list()] == ["a"]


def test_pytest_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("iris_cloud")


def test_require_server_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IRIS_CLOUD_REQUIRE_EMULATORS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="port in use"):
        require_server("port in use")


def test_require_server_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRIS_CLOUD_REQUIRE_EMULATORS", "1")
    with pytest.raises(pytest.fail.Exception, match=r"required.*port in use"):
        require_server("port in use")


# -- lazy scheme targets -------------------------------------------------------------


class LazyBroker(MemoryBroker):
    @classmethod
    def from_url(cls, url: str, **options: Any) -> LazyBroker:
        return cls("lazy-" + url.partition("://")[2], **options)


class LazyStore(MemoryStore):
    @classmethod
    def from_url(cls, url: str, **options: Any) -> LazyStore:
        return cls("lazy-" + url.partition("://")[2], **options)


class _LazyPlugin:
    """A plugin that names its classes by import path, as the cloud providers do."""

    __name__ = "LazyPlugin"

    def __init__(self, broker: str, store: str) -> None:
        self.broker, self.store = broker, store

    @hookimpl
    def iris_cloud_broker_schemes(self) -> dict[str, str]:
        return {"lazyq": self.broker}

    @hookimpl
    def iris_cloud_store_schemes(self) -> dict[str, str]:
        return {"lazys": self.store}


@pytest.fixture
def lazy_plugin(
    builtin_plugins_only: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_LazyPlugin]:
    monkeypatch.setattr(plugins, "failed", {})
    # This module is in sys.modules under the name pytest gave it.
    plugin = _LazyPlugin(f"{__name__}:LazyBroker", f"{__name__}:LazyStore")
    builtin_plugins_only.register(plugin, name="lazy")
    yield plugin


def test_import_path_targets_resolve_on_open(lazy_plugin: _LazyPlugin) -> None:
    assert plugins.served_schemes("broker") == ["lazyq", "local", "mem"]
    with open_broker("lazyq://lazy-queue") as b:
        assert isinstance(b, LazyBroker)
    with open_store("lazys://lazy-bucket") as s:
        assert isinstance(s, LazyStore)
    assert plugins.broker_schemes()["lazyq"] is LazyBroker


def test_import_path_that_fails_names_scheme_and_path(lazy_plugin: _LazyPlugin) -> None:
    lazy_plugin.broker = "iris_cloud_nowhere.broker:Broker"
    with pytest.raises(ConfigurationError) as exc:
        open_broker("lazyq://q")
    assert "'lazyq'" in str(exc.value)
    assert "iris_cloud_nowhere.broker:Broker" in str(exc.value)
    assert "ModuleNotFoundError" in str(exc.value)
    # The listing leaves the broken scheme out and records why.
    info = {p.name: p for p in plugins.providers()}["lazy"]
    assert set(info.broker_schemes) == set() and set(info.store_schemes) == {"lazys"}
    assert "iris_cloud_nowhere" in plugins.failed["lazy:lazyq"]
    result = CliRunner().invoke(main, ["providers"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "not loaded lazy:lazyq" in " ".join(result.output.split())
    result = CliRunner().invoke(main, ["providers", "--json"], catch_exceptions=False)
    errors = {p["name"]: p["error"] for p in json.loads(result.output) if "error" in p}
    assert "ModuleNotFoundError" in errors["lazy:lazyq"]


def test_import_path_to_a_non_broker_is_refused(lazy_plugin: _LazyPlugin) -> None:
    lazy_plugin.store = f"{__name__}:LazyBroker"
    with pytest.raises(ConfigurationError, match=r"'lazys'.*not a subclass of ObjectStore"):
        open_store("lazys://bucket")


def test_profile_check_does_not_import_providers(lazy_plugin: _LazyPlugin) -> None:
    lazy_plugin.broker = "iris_cloud_nowhere.broker:Broker"
    # Naming the scheme in a profile is fine; the import happens when it is opened.
    from iris_cloud.config import Profile

    Profile.from_dict({"orders": "lazyq://orders"}, side="integrator")
