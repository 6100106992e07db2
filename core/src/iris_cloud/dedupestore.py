"""Duplicate suppression shared by hosts: markers in an object store.

:class:`StoreDedupe` keeps what :class:`~iris_cloud.dedupe.Dedupe` keeps in a
SQLite file as small objects in any :class:`~iris_cloud.ports.ObjectStore`
whose ``put(overwrite=False)`` is atomic (``capabilities.conditional_create``:
S3 ``If-None-Match``, Blob conditional commit, GCS ``ifGenerationMatch=0``,
file:// hard links), so consumers on several hosts share it. Object names are
derived from the key (message id / TransactionId) by SHA-256, never from its
text: a sender's id names nothing in the store.

- ``handled/<sha256>``: the key was handled. Written **after** the handler
  returned and before the message is completed, with a conditional create
  (a marker already there is fine). Never rewritten; a lifecycle rule on the
  store removes markers older than the retention (they are ignored then).
- ``claims/<sha256>/<sequence>``: a claim on the key while a handler runs,
  ``{"until": epoch seconds}``. A claim is taken by creating the next sequence
  number after the highest listed, conditionally, when that highest claim has
  expired or was released: two consumers that see the same state race for the
  same name and one wins. Claims are rewritten only by their owner (refreshed,
  or released by setting ``until`` to 0) and are never deleted before the key
  is handled, so the sequence has no gaps for a stale listing to fall into.

After a claim is taken the handled markers are looked at again: a copy whose
handler finished (marked, then released) between our first look and our
claim is recognised as a duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from iris_cloud.errors import AlreadyExists, ConfigurationError, IrisCloudError, NotFound
from iris_cloud.logs import get_logger
from iris_cloud.ports import ObjectStore

__all__ = ["StoreDedupe"]

log = get_logger(__name__)

_SEQUENCE_DIGITS = 12
_CLAIM_ATTEMPTS = 5


def key_digest(key: str) -> str:
    """The hex SHA-256 of ``key``: the only form of a key that names an object."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class StoreDedupe:
    """Handled keys and claims as objects in ``store`` (see the module docstring).

    Args:
        store: where the markers live (a bucket, or a prefix of one, for
            dedupe only); it must enforce ``put(overwrite=False)`` atomically.
        retention_days: how long a handled marker counts.
        close_store: close ``store`` with this object.
    """

    def __init__(
        self, store: ObjectStore, *, retention_days: float = 14.0, close_store: bool = False
    ) -> None:
        if not store.capabilities.conditional_create:
            raise ConfigurationError(
                f"{type(store).__name__} cannot create an object only if it is absent "
                "(capabilities.conditional_create is False), which a shared dedupe store needs"
            )
        self.store = store
        self.retention = retention_days * 86400.0
        self.close_store = close_store
        self._lock = threading.Lock()
        self._claims: dict[str, list[str]] = {}

    # -- handled markers -------------------------------------------------------
    def seen(self, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` was marked handled within the retention."""
        cutoff = time.time() - self.retention
        for key in keys:
            if not key:
                continue
            try:
                info = self.store.info(f"handled/{key_digest(key)}")
            except NotFound:
                continue
            at = info.last_modified
            if at is None or at.timestamp() >= cutoff:
                return True
        return False

    def mark(self, keys: Iterable[str], token: str | None = None) -> None:
        """Remember ``keys`` as handled, then drop the claim ``token``."""
        stamp = json.dumps({"at": datetime.now(UTC).isoformat()}).encode()
        for key in keys:
            if not key:
                continue
            # Already there: marked by another copy's handler, the same fact.
            with contextlib.suppress(AlreadyExists):
                self.store.put(
                    f"handled/{key_digest(key)}",
                    stamp,
                    content_type="application/json",
                    overwrite=False,
                )
        if token is not None:
            # Handled now: the claims of these keys are no longer looked at.
            for name in self._forget(token):
                self._quietly(self.store.delete, name)

    # -- claims ----------------------------------------------------------------
    def claim(self, keys: Iterable[str], ttl: float) -> str | None:
        """Claim ``keys`` for ``ttl`` seconds; the claim's token, or ``None`` when taken.

        ``None`` when another consumer holds a live claim on any key, or a key
        was marked handled meanwhile.
        """
        wanted = [k for k in keys if k]
        token = uuid.uuid4().hex
        names: list[str] = []
        for key in wanted:
            name = self._claim_one(key_digest(key), ttl)
            if name is None:
                self._expire(names)
                return None
            names.append(name)
        if names and self.seen(wanted):
            self._expire(names)
            return None
        with self._lock:
            self._claims[token] = names
        return token

    def refresh(self, token: str, ttl: float) -> None:
        """Extend the claim ``token`` to ``ttl`` seconds from now (a long handler's)."""
        with self._lock:
            names = list(self._claims.get(token, ()))
            # Under the lock: a refresh racing a release must not revive the claim.
            for name in names:
                self._write_claim(name, time.time() + ttl, overwrite=True)

    def release(self, token: str) -> None:
        """Drop the claim ``token`` (its handler failed: another copy may run)."""
        self._expire(self._forget(token))

    def _claim_one(self, digest: str, ttl: float) -> str | None:
        prefix = f"claims/{digest}/"
        for _ in range(_CLAIM_ATTEMPTS):
            last = None
            for info in self.store.list(prefix):
                if info.name.rsplit("/", 1)[-1].isdigit():
                    last = info.name
            sequence = 0
            if last is not None:
                try:
                    until = json.loads(self.store.get(last)).get("until", 0)
                except NotFound:
                    continue  # deleted as handled meanwhile: look again
                except ValueError:
                    until = 0  # not ours to read: treat it as lapsed
                if not isinstance(until, int | float) or until > time.time():
                    return None
                sequence = int(last.rsplit("/", 1)[-1]) + 1
            name = f"{prefix}{sequence:0{_SEQUENCE_DIGITS}d}"
            try:
                self._write_claim(name, time.time() + ttl, overwrite=False)
            except AlreadyExists:
                return None  # another consumer took this one first
            return name
        return None

    def _write_claim(self, name: str, until: float, *, overwrite: bool) -> None:
        data = json.dumps({"until": until}).encode()
        self.store.put(name, data, content_type="application/json", overwrite=overwrite)

    def _forget(self, token: str) -> list[str]:
        with self._lock:
            return self._claims.pop(token, [])

    def _expire(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                self._quietly(self._write_claim, name, 0.0, overwrite=True)

    @staticmethod
    def _quietly(call: Callable[..., object], *args: object, **kwargs: object) -> None:
        """Best effort: a claim left live lapses after its ttl, a claim left behind is inert."""
        try:
            call(*args, **kwargs)
        except IrisCloudError as exc:
            log.warning("dedupe store call failed (%s); it lapses by itself", type(exc).__name__)

    def __len__(self) -> int:
        return sum(1 for _ in self.store.list("handled/"))

    def close(self) -> None:
        """Close the store if this object owns it."""
        if self.close_store:
            self.store.close()

    def __repr__(self) -> str:
        return f"StoreDedupe(store={self.store!r})"
