"""Contract-suite environments for the built-in providers (``mem://``, ``local://``, ``file://``).

They implement :class:`~iris_cloud.testing.contract.BrokerContractEnv` and
:class:`~iris_cloud.testing.contract.StoreContractEnv`; the ``access`` option
of the built-in providers stands in for IRIS's write-only / read-only
credentials.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from iris_cloud.testing.contract import HOSTILE

if TYPE_CHECKING:
    from iris_cloud.ports import MessageBroker, ObjectStore

__all__ = [
    "LocalBrokerEnv",
    "LocalStoreEnv",
    "MemoryBrokerEnv",
    "MemoryStoreEnv",
    "builtin_profile_dict",
]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class MemoryBrokerEnv:
    """Fresh ``mem://`` queues; each ``new_queue`` has its own name."""

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """A new queue URL carrying the lock and delivery settings as query parameters."""
        name = _unique("contract")
        return f"mem://{name}?lock_seconds={lock_seconds}&max_delivery_count={max_delivery_count}"

    def open(self, url: str, *, claim_check: ObjectStore | None = None) -> MessageBroker:
        """Open ``url`` with full rights."""
        from iris_cloud.providers.memory import MemoryBroker

        return MemoryBroker.from_url(url, claim_check=claim_check)

    def claim_check_store(self) -> ObjectStore:
        """A fresh ``mem://`` container."""
        from iris_cloud.providers.memory import MemoryStore

        return MemoryStore.from_url(f"mem://{_unique('claim-check')}")

    def open_send_only(self, url: str) -> MessageBroker:
        """Open ``url`` with ``access="w"`` (send only)."""
        from iris_cloud.providers.memory import MemoryBroker

        return MemoryBroker.from_url(url, access="w")

    def open_receive_only(self, url: str) -> MessageBroker:
        """Open ``url`` with ``access="r"`` (receive and settle only)."""
        from iris_cloud.providers.memory import MemoryBroker

        return MemoryBroker.from_url(url, access="r")


class MemoryStoreEnv:
    """Fresh ``mem://`` containers."""

    def new_store(self) -> ObjectStore:
        """A new, empty container."""
        from iris_cloud.providers.memory import MemoryStore

        return MemoryStore.from_url(f"mem://{_unique('contract')}")

    def open_write_only(self, store: ObjectStore) -> ObjectStore:
        """The same container with ``access="w"``."""
        from iris_cloud.providers.memory import MemoryStore

        return MemoryStore.from_url(f"mem://{store.container}", access="w")

    def open_read_only(self, store: ObjectStore) -> ObjectStore:
        """The same container with ``access="r"``."""
        from iris_cloud.providers.memory import MemoryStore

        return MemoryStore.from_url(f"mem://{store.container}", access="r")


class LocalBrokerEnv:
    """Fresh ``local://`` queues in one SQLite database under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _url(self, queue: str, query: str = "") -> str:
        base = (self.root / "queues").as_uri().replace("file:", "local:", 1)
        return f"{base}?queue={queue}{query}"

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """A new queue URL carrying the lock and delivery settings as query parameters."""
        return self._url(
            _unique("contract"),
            f"&lock_seconds={lock_seconds}&max_delivery_count={max_delivery_count}",
        )

    def open(self, url: str, *, claim_check: ObjectStore | None = None) -> MessageBroker:
        """Open ``url`` with full rights."""
        from iris_cloud.providers.local import LocalBroker

        return LocalBroker.from_url(url, claim_check=claim_check)

    def send_undecodable(self, url: str) -> list[str]:
        """Insert rows no decoder accepts straight into the queue database."""
        from iris_cloud.providers.local import DATABASE_NAME

        queue = dict(parse_qsl(urlsplit(url).query))["queue"]
        cases = {
            "properties not JSON": (HOSTILE, b"x"),
            "properties not a mapping": (json.dumps([HOSTILE]), b"x"),
            "property value not a scalar": (json.dumps({"k": {"v": HOSTILE}}), b"x"),
            "body stored as text": ("{}", HOSTILE),
        }
        now = time.time()
        database = self.root / "queues" / DATABASE_NAME
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.executemany(
                "INSERT INTO messages (queue, visible_at, enqueued_at, message_id, "
                "properties, body) VALUES (?, ?, ?, ?, ?, ?)",
                [(queue, now, now, uuid.uuid4().hex, p, body) for p, body in cases.values()],
            )
        return list(cases)

    def claim_check_store(self) -> ObjectStore:
        """A ``file://`` store beside the queues."""
        from iris_cloud.providers.local import FileStore

        return FileStore.from_url((self.root / _unique("claim-check")).as_uri())

    def open_send_only(self, url: str) -> MessageBroker:
        """Open ``url`` with ``access="w"`` (send only)."""
        from iris_cloud.providers.local import LocalBroker

        return LocalBroker.from_url(url, access="w")

    def open_receive_only(self, url: str) -> MessageBroker:
        """Open ``url`` with ``access="r"`` (receive and settle only)."""
        from iris_cloud.providers.local import LocalBroker

        return LocalBroker.from_url(url, access="r")


class LocalStoreEnv:
    """Fresh ``file://`` directories under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_store(self) -> ObjectStore:
        """A new, empty directory store."""
        from iris_cloud.providers.local import FileStore

        return FileStore.from_url((self.root / _unique("store")).as_uri())

    def open_write_only(self, store: ObjectStore) -> ObjectStore:
        """The same directory with ``access="w"``."""
        from iris_cloud.providers.local import FileStore

        return FileStore.from_url(Path(store.container).as_uri(), access="w")

    def open_read_only(self, store: ObjectStore) -> ObjectStore:
        """The same directory with ``access="r"``."""
        from iris_cloud.providers.local import FileStore

        return FileStore.from_url(Path(store.container).as_uri(), access="r")


TEST_CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"


def builtin_profile_dict(kind: str, root: Path, **overrides: Any) -> dict[str, Any]:
    """An integrator profile on fresh ``mem://`` (``kind="mem"``) or ``local://`` + ``file://``
    endpoints under ``root``, with short locks and backoff so tests run fast.

    Pass it to :meth:`iris_cloud.config.Profile.from_dict`; ``overrides`` replace roles or
    settings.
    """
    from iris_cloud.config import BROKER_ROLES, STORE_ROLES

    tag = uuid.uuid4().hex[:8]
    data: dict[str, Any] = {"client_guid": TEST_CLIENT_GUID}
    for role in BROKER_ROLES:
        if kind == "mem":
            data[role] = {"url": f"mem://{role}-{tag}", "lock_seconds": 2}
        else:
            data[role] = {"url": f"local://{root}/queues?queue={role}", "lock_seconds": 2}
    for role in STORE_ROLES:
        data[role] = f"mem://{role}-{tag}" if kind == "mem" else f"file://{root}/{role}"
    data["consumer"] = {"wait": 0.1, "backoff_initial": 0.05, "backoff_max": 0.2}
    data.update(overrides)
    return data
