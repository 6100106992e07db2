"""Helpers of the simulator tests: profiles on mem:// and local://, queue readers."""

from __future__ import annotations

from typing import Any

from iris_cloud.model import Event, OrderResult, parse_message
from iris_cloud.ports import MessageBroker
from iris_cloud.testing import builtin_profile_dict
from iris_cloud.testing.envs import TEST_CLIENT_GUID

CLIENT_GUID = TEST_CLIENT_GUID


profile_dict = builtin_profile_dict


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
