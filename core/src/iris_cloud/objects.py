"""What object stores hand back and the names they take, below the ports.

:class:`ObjectInfo`, :data:`NotificationParser` and :func:`check_object_name`
are shared by :mod:`iris_cloud.ports`, the claim check and
:mod:`iris_cloud.watching`; they live here so that those modules import this
one instead of each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from iris_cloud.errors import ConfigurationError
from iris_cloud.messages import Message

__all__ = ["NotificationParser", "ObjectInfo", "check_object_name"]


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows of one object."""

    name: str
    size: int
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    """The version tag, unquoted: services quote it in some replies and not in
    others, and one form keeps put / info / list / watch results comparable."""
    last_modified: datetime | None = None

    def __post_init__(self) -> None:
        if self.etag is not None:
            object.__setattr__(self, "etag", self.etag.strip('"') or None)


NotificationParser = Callable[[Message], Iterable[ObjectInfo]]
"""Turns one notification into the objects it announces as created, named as
the store names them (its prefix removed); anything else yields nothing."""


def check_object_name(name: str) -> str:
    """Return ``name`` if it is a safe relative object name, else raise ConfigurationError.

    Rejected: empty names, absolute paths, ``..`` segments, NUL and backslashes,
    which would escape a prefix or a directory on some provider.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError("object name must be a non-empty string")
    if "\x00" in name:
        raise ConfigurationError("object name must not contain NUL")
    if "\\" in name:
        raise ConfigurationError("object name must not contain backslashes")
    if name.startswith("/"):
        raise ConfigurationError("object name must be relative (no leading '/')")
    segments = name.split("/")
    if "." in segments or ".." in segments:
        raise ConfigurationError("object name must not contain '.' or '..' segments")
    return name
