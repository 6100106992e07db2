"""Helpers of the simulator tests: profiles on mem:// and local://, queue readers."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from iris_cloud.config import BROKER_ROLES, STORE_ROLES
from iris_cloud.model import Event, OrderResult, parse_message
from iris_cloud.ports import MessageBroker

CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"


def profile_dict(kind: str, root: Path, **overrides: Any) -> dict[str, Any]:
    """An integrator profile on fresh ``mem://`` or ``local://`` + ``file://`` endpoints."""
    tag = uuid.uuid4().hex[:8]
    data: dict[str, Any] = {"client_guid": CLIENT_GUID}
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


class Reader:
    """Drains a broker the integrator receives from, parsing every message."""

    def __init__(self, broker: MessageBroker) -> None:
        self.broker = broker

    def drain(self, wait: float = 0.2) -> list[Any]:
        out: list[Any] = []
        while True:
            batch = self.broker.receive(max_messages=50, wait=wait)
            if not batch:
                return out
            for msg in batch:
                out.append(parse_message(msg.body))
                self.broker.complete(msg)

    def events(self, wait: float = 0.2) -> list[Event]:
        found = self.drain(wait)
        assert all(isinstance(e, Event) for e in found)
        return found

    def results(self, wait: float = 0.2) -> list[OrderResult]:
        found = self.drain(wait)
        assert all(isinstance(r, OrderResult) for r in found)
        return found
