"""The embedded default (``local://`` queues, ``file://`` stores) passes the contract suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from iris_cloud.testing import BrokerContract, LocalBrokerEnv, LocalStoreEnv, StoreContract


class TestLocalBroker(BrokerContract):
    @pytest.fixture
    def broker_env(self, tmp_path: Path) -> LocalBrokerEnv:
        return LocalBrokerEnv(tmp_path)


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store_env(self, tmp_path: Path) -> LocalStoreEnv:
        return LocalStoreEnv(tmp_path)
