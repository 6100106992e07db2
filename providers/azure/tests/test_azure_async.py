"""The async Azure classes (``iris_cloud_azure.aio``) pass the same contract suite.

The suite's own tests, unchanged, through blocking facades that run the
async ports' methods on an event loop (:mod:`iris_cloud.testing.blocking`),
on the session's emulators.
"""

from __future__ import annotations

import asyncio

import pytest
from iris_cloud import aio
from iris_cloud.testing import BrokerContract, StoreContract
from iris_cloud.testing.blocking import BlockingBrokerEnv, BlockingStoreEnv, LoopThread
from iris_cloud_azure.aio import AsyncAzureBlobStore, AsyncServiceBusBroker
from iris_cloud_azure.testing import (
    AzuriteServer,
    BlobStoreEnv,
    ServiceBusBrokerEnv,
    ServiceBusServer,
    unique_name,
)


class TestAsyncServiceBusContract(BrokerContract):
    """The broker contract on ``azure.servicebus.aio``, with IRIS-shaped keys.

    The sync broker runs the contract with both kinds of credentials; the
    async one shares its decisions, so it runs once, with the narrower kind.
    """

    @pytest.fixture
    def broker_env(self, sb_env: ServiceBusBrokerEnv, loop_thread: LoopThread) -> BlockingBrokerEnv:
        return BlockingBrokerEnv(sb_env.iris_shaped_view().async_view(), loop_thread)


class TestAsyncAzureBlobContract(StoreContract):
    """The store contract on ``azure.storage.blob.aio``, paging by 5."""

    @pytest.fixture
    def store_env(self, azurite_server: AzuriteServer, loop_thread: LoopThread) -> BlockingStoreEnv:
        env = BlobStoreEnv(azurite_server, page_size=5, asynchronous=True)
        return BlockingStoreEnv(env, loop_thread)


def test_open_broker_and_store_resolve_the_async_classes(
    sb_server: ServiceBusServer, azurite_server: AzuriteServer
) -> None:
    queue = unique_name("aio")
    sb_server.create_queue(queue)
    container = unique_name("aio")
    azurite_server.create_container(container)

    async def main() -> None:
        conn = sb_server.connection_string(entity=queue)
        async with (
            aio.open_broker(sb_server.url(queue), connection_string=conn) as broker,
            aio.open_store(
                azurite_server.store_url(container),
                connection_string=azurite_server.connection_string,
            ) as store,
        ):
            assert isinstance(broker, AsyncServiceBusBroker)
            assert isinstance(store, AsyncAzureBlobStore)
            shown = repr(broker)
            assert "AsyncServiceBusBroker(" in shown and "SharedAccessKey" not in shown
            await broker.send(b"hello")
            got = await broker.receive(max_messages=1, wait=5)
            assert [m.body for m in got] == [b"hello"]
            await broker.complete(got[0])
            await store.put("a.bin", b"abc")
            assert await store.get("a.bin") == b"abc"

    asyncio.run(main())
