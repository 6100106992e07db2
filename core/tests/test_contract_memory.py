"""The ``mem://`` provider passes the whole contract suite."""

from __future__ import annotations

import pytest
from iris_cloud.testing import BrokerContract, MemoryBrokerEnv, MemoryStoreEnv, StoreContract


class TestMemoryBroker(BrokerContract):
    @pytest.fixture
    def broker_env(self) -> MemoryBrokerEnv:
        return MemoryBrokerEnv()


class TestMemoryStore(StoreContract):
    # Objects are bytes in this process: the constant-memory test cannot apply.
    large_object_in_constant_memory = False

    @pytest.fixture
    def store_env(self) -> MemoryStoreEnv:
        return MemoryStoreEnv()
