"""The async built-in providers (``iris_cloud.aio``) pass the same contract suite.

The suite's own tests, unchanged, on blocking facades that run the async
ports' methods on an event loop (:mod:`iris_cloud.testing.blocking`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from iris_cloud.aio.builtin import (
    AsyncFileStore,
    AsyncLocalBroker,
    AsyncMemoryBroker,
    AsyncMemoryStore,
)
from iris_cloud.testing import (
    BrokerContract,
    LocalBrokerEnv,
    LocalStoreEnv,
    MemoryBrokerEnv,
    MemoryStoreEnv,
    StoreContract,
)
from iris_cloud.testing.blocking import (
    BlockingBrokerEnv,
    BlockingStoreEnv,
    LoopThread,
    ThreadedBrokerEnv,
    ThreadedStoreEnv,
)


class TestAsyncMemoryBroker(BrokerContract):
    @pytest.fixture
    def broker_env(self, loop_thread: LoopThread) -> BlockingBrokerEnv:
        env = ThreadedBrokerEnv(MemoryBrokerEnv(), AsyncMemoryBroker, AsyncMemoryStore)
        return BlockingBrokerEnv(env, loop_thread)


class TestAsyncMemoryStore(StoreContract):
    large_object_in_constant_memory = False

    @pytest.fixture
    def store_env(self, loop_thread: LoopThread) -> BlockingStoreEnv:
        return BlockingStoreEnv(ThreadedStoreEnv(MemoryStoreEnv(), AsyncMemoryStore), loop_thread)


class TestAsyncLocalBroker(BrokerContract):
    @pytest.fixture
    def broker_env(self, tmp_path: Path, loop_thread: LoopThread) -> BlockingBrokerEnv:
        env = ThreadedBrokerEnv(LocalBrokerEnv(tmp_path), AsyncLocalBroker, AsyncFileStore)
        return BlockingBrokerEnv(env, loop_thread)


class TestAsyncFileStore(StoreContract):
    @pytest.fixture
    def store_env(self, tmp_path: Path, loop_thread: LoopThread) -> BlockingStoreEnv:
        env = ThreadedStoreEnv(LocalStoreEnv(tmp_path), AsyncFileStore)
        return BlockingStoreEnv(env, loop_thread)
