"""Opening async endpoints by URL: :func:`open_broker` / :func:`open_store`.

Re-exported by :mod:`iris_cloud.aio`; a module of its own so that the
profile (:mod:`iris_cloud.config`) opens async endpoints without importing
the client, which is built on the profile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iris_cloud.plugins import resolve

if TYPE_CHECKING:
    from iris_cloud.aio.ports import AsyncMessageBroker, AsyncObjectStore

__all__ = ["open_broker", "open_store"]


def open_broker(url: str, **options: Any) -> AsyncMessageBroker:
    """The async broker endpoint ``url``, from the plugin serving its scheme.

    Same URLs and options as :func:`iris_cloud.open_broker`; ``claim_check``
    must be an :class:`AsyncObjectStore`. A scheme whose provider has no async
    class raises :class:`~iris_cloud.errors.ConfigurationError` saying so.
    """
    cls: type[AsyncMessageBroker] = resolve(url, "async_broker")
    return cls.from_url(url, **options)


def open_store(url: str, **options: Any) -> AsyncObjectStore:
    """The async object store ``url``, from the plugin serving its scheme."""
    cls: type[AsyncObjectStore] = resolve(url, "async_store")
    return cls.from_url(url, **options)
