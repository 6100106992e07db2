"""The async GCP classes (``iris_cloud_gcp.aio``) as ``iris_cloud.aio`` opens them.

Their contract suites are in ``test_broker_contract.py`` and
``test_store_contract.py``, beside the sync classes'.
"""

from __future__ import annotations

import asyncio

from iris_cloud import aio
from iris_cloud_gcp.aio import AsyncGcsStore, AsyncPubSubBroker
from iris_cloud_gcp.testing import GcpServers, PubSubBrokerEnv


def test_open_broker_and_store_resolve_the_async_classes(servers: GcpServers) -> None:
    env = PubSubBrokerEnv(servers)
    url = env.new_queue(lock_seconds=10)
    bucket = servers.gcs.create_bucket()

    async def main() -> None:
        async with (
            aio.open_broker(url, emulator_host=servers.pubsub_host) as broker,
            aio.open_store(f"gs://{bucket}", endpoint=servers.gcs.endpoint) as store,
        ):
            assert isinstance(broker, AsyncPubSubBroker) and isinstance(store, AsyncGcsStore)
            await broker.send([b"one", b"two"])
            got: list[bytes] = []
            while len(got) < 2:
                for message in await broker.receive(max_messages=2, wait=5):
                    got.append(message.body)
                    await broker.complete(message)
            assert sorted(got) == [b"one", b"two"]
            await store.put("a.bin", b"abc")
            assert await store.get("a.bin") == b"abc"

    try:
        asyncio.run(main())
    finally:
        env.close()
