"""Plugin loading: built-in providers registered in code, the rest by entry point.

URLs are resolved to broker and store classes through the hooks in
:mod:`iris_cloud.hookspecs`, gocloud.dev style: the scheme picks the driver.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points, version
from typing import Any, Literal
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
    "lazy_exports",
    "open_broker",
    "open_store",
    "providers",
    "resolve",
    "served_schemes",
    "store_schemes",
    "unserved_scheme_message",
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


Kind = Literal["broker", "store", "async_broker", "async_store"]
"""Which scheme hook: ``iris_cloud_{kind}_schemes``."""
SchemeTarget = type[Any] | str
"""What a scheme hook maps a scheme to: the class, or ``"module:Class"`` to import on use."""


def _merged(results: list[dict[str, SchemeTarget]]) -> dict[str, SchemeTarget]:
    merged: dict[str, SchemeTarget] = {}
    # pluggy returns the last-registered plugin first; let it win over built-ins.
    for mapping in reversed(results):
        merged.update(mapping)
    return merged


def _targets(kind: Kind) -> dict[str, SchemeTarget]:
    hook = getattr(get_plugin_manager().hook, f"iris_cloud_{kind}_schemes")
    return _merged(hook())


def _base(kind: Kind) -> type[Any]:
    if kind == "broker":
        return MessageBroker
    if kind == "store":
        return ObjectStore
    # Imported on use: a sync process never imports asyncio's side of the ports.
    from iris_cloud.aio.ports import AsyncMessageBroker, AsyncObjectStore

    return AsyncMessageBroker if kind == "async_broker" else AsyncObjectStore


def _label(kind: Kind) -> str:
    return kind.replace("_", " ")


def _load(scheme: str, target: SchemeTarget, kind: Kind) -> type[Any]:
    base = _base(kind)
    label = _label(kind)
    cls = target
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"the {label} provider for scheme {scheme!r} cannot be imported "
                f"({target}): {type(exc).__name__}: {exc}"
            ) from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigurationError(
            f"the {label} provider for scheme {scheme!r} is {target!r}, "
            f"not a subclass of {base.__name__}"
        )
    return cls


def public_options(scheme: str) -> frozenset[str]:
    """The options of ``scheme`` that hold no secret (``iris_cloud_public_options``)."""
    names: set[str] = set()
    for mapping in get_plugin_manager().hook.iris_cloud_public_options():
        names.update(mapping.get(scheme, ()))
    return frozenset(names)


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports each export from its module on first access.

    A provider package uses it so that importing the package (as loading its
    plugin does) does not import the cloud SDK::

        __getattr__ = lazy_exports(__name__, {"SqsBroker": "iris_cloud_aws.broker"})
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def served_schemes(kind: Kind) -> list[str]:
    """The URL schemes of ``kind`` (``"broker"``, ``"store"``, ``"async_broker"``,
    ``"async_store"``) served, without importing them."""
    return sorted(_targets(kind))


def broker_schemes() -> dict[str, type[MessageBroker]]:
    """Every broker URL scheme the loaded plugins serve, each class imported."""
    return {s: _load(s, t, "broker") for s, t in _targets("broker").items()}


def store_schemes() -> dict[str, type[ObjectStore]]:
    """Every object-store URL scheme the loaded plugins serve, each class imported."""
    return {s: _load(s, t, "store") for s, t in _targets("store").items()}


def unserved_scheme_message(scheme: str, kind: Kind) -> str:
    """Why ``scheme`` cannot be opened: the installed schemes and the package to install."""
    installed = ", ".join(served_schemes(kind)) or "none"
    sync_kind: Kind = "broker" if kind == "async_broker" else "store"
    if kind.startswith("async") and scheme in _targets(sync_kind):
        return (
            f"the {sync_kind} provider for scheme {scheme!r} has no async class "
            f"(async {sync_kind}s installed: {installed}); use the sync port"
        )
    hint = f"; install {KNOWN_SCHEMES[scheme]}" if scheme in KNOWN_SCHEMES else ""
    return f"no {_label(kind)} provider for scheme {scheme!r} (installed: {installed}){hint}"


def resolve(url: str, kind: Kind) -> type[Any]:
    """The class serving ``url``'s scheme for ``kind``; :class:`ConfigurationError` if none."""
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigurationError(f"{_label(kind)} URL has no scheme (expected e.g. 'mem://name')")
    targets = _targets(kind)
    if scheme not in targets:
        raise ConfigurationError(unserved_scheme_message(scheme, kind))
    return _load(scheme, targets[scheme], kind)


def open_broker(url: str, **options: Any) -> MessageBroker:
    """Open the broker endpoint ``url`` with the provider that serves its scheme."""
    cls: type[MessageBroker] = resolve(url, "broker")
    return cls.from_url(url, **options)


def open_store(url: str, **options: Any) -> ObjectStore:
    """Open the object store ``url`` with the provider that serves its scheme."""
    cls: type[ObjectStore] = resolve(url, "store")
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
    """Every loaded plugin that serves at least one scheme, its classes imported.

    A scheme whose class cannot be imported is left out and recorded in
    :data:`failed`, as a plugin that cannot be loaded is.
    """
    pm = get_plugin_manager()
    infos = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        loaded: dict[str, dict[str, type[Any]]] = {}
        kind: Kind
        for kind in ("broker", "store"):
            hook = getattr(plugin, f"iris_cloud_{kind}_schemes", dict)
            loaded[kind] = {}
            for scheme, target in hook().items():
                try:
                    loaded[kind][scheme] = _load(scheme, target, kind)
                except ConfigurationError as exc:
                    failed[f"{name}:{scheme}"] = str(exc)
        if not loaded["broker"] and not loaded["store"]:
            continue
        dist_name, dist_version = distributions.get(name, ("iris-cloud", version("iris-cloud")))
        infos.append(
            ProviderInfo(
                name=name,
                distribution=dist_name,
                version=dist_version,
                broker_schemes=loaded["broker"],
                store_schemes=loaded["store"],
            )
        )
    return sorted(infos, key=lambda i: i.name)
