"""Plugin loading: built-in providers registered in code, the rest by entry point.

URLs are resolved to broker and store classes through the hooks in
:mod:`iris_cloud.hookspecs`, gocloud.dev style: the scheme picks the driver.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points, version
from typing import Any
from urllib.parse import urlsplit

import pluggy

from iris_cloud import hookspecs
from iris_cloud.errors import ConfigurationError
from iris_cloud.ports import MessageBroker, ObjectStore

__all__ = [
    "ProviderInfo",
    "broker_schemes",
    "failed",
    "get_plugin_manager",
    "open_broker",
    "open_store",
    "providers",
    "store_schemes",
]

ENTRY_POINT_GROUP = "iris_cloud"
BUILTIN_PLUGINS = {
    "memory": "iris_cloud.providers.memory",
    "local": "iris_cloud.providers.local",
}
# Which distribution to install for a scheme this installation does not serve.
KNOWN_SCHEMES = {
    "awssqs": "iris-cloud[aws]",
    "s3": "iris-cloud[aws]",
    "azuresb": "iris-cloud[azure]",
    "azblob": "iris-cloud[azure]",
    "gcppubsub": "iris-cloud[gcp]",
    "gs": "iris-cloud[gcp]",
}

_pm: pluggy.PluginManager | None = None
failed: dict[str, str] = {}
"""Entry-point plugins that could not be imported, with the reason."""
distributions: dict[str, tuple[str, str]] = {}
_lock = threading.Lock()


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading built-ins and entry points once."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager("iris_cloud")
            pm.add_hookspecs(hookspecs)
            for name, module in BUILTIN_PLUGINS.items():
                pm.register(importlib.import_module(module), name=name)
            _load_entry_points(pm)
            _pm = pm
        return _pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    # One broken provider must not take the CLI and every other provider down
    # with it: it is skipped with a warning and listed by ``iris-cloud providers``.
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            failed[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"iris-cloud plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        pm.register(plugin, name=ep.name)
        if ep.dist is not None:
            distributions[ep.name] = (ep.dist.name, ep.dist.version)


def _schemes(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    # pluggy returns the last-registered plugin first; let it win over built-ins.
    for mapping in reversed(results):
        merged.update(mapping)
    return merged


def broker_schemes() -> dict[str, type[MessageBroker]]:
    """Every broker URL scheme the loaded plugins serve."""
    return _schemes(get_plugin_manager().hook.iris_cloud_broker_schemes())


def store_schemes() -> dict[str, type[ObjectStore]]:
    """Every object-store URL scheme the loaded plugins serve."""
    return _schemes(get_plugin_manager().hook.iris_cloud_store_schemes())


def _resolve(url: str, schemes: dict[str, Any], kind: str) -> Any:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigurationError(f"{kind} URL has no scheme (expected e.g. 'mem://name')")
    if scheme in schemes:
        return schemes[scheme]
    installed = ", ".join(sorted(schemes)) or "none"
    hint = f"; install {KNOWN_SCHEMES[scheme]}" if scheme in KNOWN_SCHEMES else ""
    raise ConfigurationError(
        f"no {kind} provider for scheme {scheme!r} (installed: {installed}){hint}"
    )


def open_broker(url: str, **options: Any) -> MessageBroker:
    """Open the broker endpoint ``url`` with the provider that serves its scheme."""
    cls: type[MessageBroker] = _resolve(url, broker_schemes(), "broker")
    return cls.from_url(url, **options)


def open_store(url: str, **options: Any) -> ObjectStore:
    """Open the object store ``url`` with the provider that serves its scheme."""
    cls: type[ObjectStore] = _resolve(url, store_schemes(), "store")
    return cls.from_url(url, **options)


@dataclass(frozen=True)
class ProviderInfo:
    """One loaded plugin: where it comes from and what it serves."""

    name: str
    distribution: str
    version: str
    broker_schemes: dict[str, type[MessageBroker]]
    store_schemes: dict[str, type[ObjectStore]]


def providers() -> list[ProviderInfo]:
    """Every loaded plugin that serves at least one scheme."""
    pm = get_plugin_manager()
    infos = []
    for plugin in pm.get_plugins():
        brokers: dict[str, type[MessageBroker]] = getattr(
            plugin, "iris_cloud_broker_schemes", dict
        )()
        stores: dict[str, type[ObjectStore]] = getattr(plugin, "iris_cloud_store_schemes", dict)()
        if not brokers and not stores:
            continue
        name = pm.get_name(plugin) or repr(plugin)
        dist_name, dist_version = distributions.get(name, ("iris-cloud", version("iris-cloud")))
        infos.append(
            ProviderInfo(
                name=name,
                distribution=dist_name,
                version=dist_version,
                broker_schemes=brokers,
                store_schemes=stores,
            )
        )
    return sorted(infos, key=lambda i: i.name)
