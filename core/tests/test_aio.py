"""iris_cloud.aio: resolution through the plugins, upload sources, watch, the claim check.

The port semantics are the contract suite's (test_contract_async.py); these
are what only the async API has.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from iris_cloud import aio, open_broker, open_store
from iris_cloud.aio.builtin import AsyncFileStore, AsyncLocalBroker, AsyncMemoryBroker
from iris_cloud.errors import ConfigurationError, MessageTooLarge, PermissionDenied
from iris_cloud.ports import Message
from iris_cloud.testing.contract import HOSTILE

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_urls_resolve_to_the_async_builtins(tmp_path: Path) -> None:
    assert type(aio.open_broker("mem://a")) is AsyncMemoryBroker
    assert type(aio.open_broker(f"local://{tmp_path}/q?queue=a")) is AsyncLocalBroker
    assert type(aio.open_store(f"file://{tmp_path}/s")) is AsyncFileStore


def test_unserved_scheme_names_the_package() -> None:
    with pytest.raises(ConfigurationError, match=r"iris-cloud\[aws\]"):
        aio.open_broker("awssqs://queue")
    with pytest.raises(ConfigurationError, match="no scheme"):
        aio.open_store("nothing")


def test_a_sync_only_provider_says_so(mock_provider: object) -> None:
    # The conftest's mock provider declares sync classes only.
    with pytest.raises(ConfigurationError, match="has no async class"):
        aio.open_broker("mockq://x")


def test_options_are_the_sync_ones() -> None:
    broker = aio.open_broker("mem://opts?lock_seconds=7", access="w")
    assert isinstance(broker, AsyncMemoryBroker)
    assert broker.sync.lock_seconds == 7
    with pytest.raises(ConfigurationError, match="unknown option"):
        aio.open_broker("mem://opts?lock_secs=7")


def test_async_and_sync_share_a_mem_queue() -> None:
    async def main() -> list[bytes]:
        async with aio.open_broker("mem://shared-q") as broker:
            await broker.send([b"from async", Message(b"two")])
            with open_broker("mem://shared-q") as sync:
                got = sync.receive(max_messages=10, wait=1)
                for m in got:
                    sync.complete(m)
                sync.send(b"from sync")
            back = await broker.receive(max_messages=1, wait=1)
            await broker.complete(back[0])
            return [m.body for m in got + back]

    assert run(main()) == [b"from async", b"two", b"from sync"]


def test_send_only_refuses_before_the_claim_check_writes() -> None:
    async def main() -> None:
        store = aio.open_store("mem://cc-refused")
        async with aio.open_broker(
            "mem://refused?max_message_bytes=10", access="r", claim_check=store
        ) as broker:
            with pytest.raises(PermissionDenied):
                await broker.send(b"x" * 100)
        assert [o async for o in store.list()] == []

    run(main())


def test_too_large_without_claim_check() -> None:
    async def main() -> None:
        async with aio.open_broker("mem://big?max_message_bytes=10") as broker:
            with pytest.raises(MessageTooLarge):
                await broker.send(b"x" * 11)

    run(main())


def test_claim_check_through_an_async_store() -> None:
    async def main() -> None:
        store = aio.open_store("mem://cc-async")
        async with aio.open_broker("mem://cc-q?max_message_bytes=100", claim_check=store) as b:
            await b.send(b"y" * 1000)
            assert len([o async for o in store.list()]) == 1
            (msg,) = await b.receive(wait=1)
            assert msg.body == b"y" * 1000
            await b.complete(msg)

    run(main())


def test_a_sync_claim_check_store_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="async store"):
        aio.open_broker("mem://x", claim_check=open_store("mem://sync-cc"))


async def _gen(*chunks: Any) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


class _AsyncReadable:
    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        return self._buf.read(size)


@pytest.mark.parametrize("url", ["mem://sources", "file"])
def test_put_sources(url: str, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"from a path")

    async def main() -> None:
        store = aio.open_store(url if url != "file" else f"file://{tmp_path}/store")
        async with store:
            await store.put("iter", _gen(b"a", b"", bytearray(b"b"), memoryview(b"c")))
            await store.put("readable", _AsyncReadable(b"r" * 100_000))
            await store.put("path", src)
            await store.put("file", io.BytesIO(b"file object"))
            await store.put("bytes", b"bytes", content_type="text/plain", metadata={"k": "v"})
            assert await store.get("iter") == b"abc"
            assert await store.get("readable") == b"r" * 100_000
            assert await store.get("path") == b"from a path"
            assert await store.get("file") == b"file object"
            info = await store.info("bytes")
            assert (info.content_type, dict(info.metadata)) == ("text/plain", {"k": "v"})
            with pytest.raises(TypeError, match="not bytes"):
                await store.put("bad-chunk", _gen(b"ok", HOSTILE))
            assert not await store.exists("bad-chunk")
            with pytest.raises(TypeError, match="cannot upload"):
                await store.put("bad", 42)  # type: ignore[arg-type]
            with pytest.raises(ConfigurationError):
                await store.put("../escape", b"x")
            names = [o.name async for o in store.list()]
            assert names == ["bytes", "file", "iter", "path", "readable"]

    run(main())


def test_open_read_streams_in_chunks(tmp_path: Path) -> None:
    async def main() -> None:
        async with aio.open_store(f"file://{tmp_path}/s") as store:
            await store.put("big", b"z" * (3 * 1024 * 1024 + 5))
            async with await store.open_read("big") as reader:
                sizes = [len(c) async for c in reader]
            assert sum(sizes) == 3 * 1024 * 1024 + 5 and max(sizes) <= 1024 * 1024
            await store.download_to("big", tmp_path / "out" / "big")
            assert (tmp_path / "out" / "big").stat().st_size == sum(sizes)

    run(main())


def test_watch_yields_new_objects_until_stopped() -> None:
    async def main() -> list[str]:
        store = aio.open_store("mem://watched")
        await store.put("old", b"o")
        stop = asyncio.Event()
        seen: list[str] = []

        async def watch() -> None:
            async for obj in store.watch(poll_interval=0.05, stop=stop):
                seen.append(obj.name)
                if len(seen) == 2:
                    stop.set()

        task = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        await store.put("new1", b"1")
        await store.put("new2", b"2")
        await asyncio.wait_for(task, 10)
        return seen

    assert run(main()) == ["new1", "new2"]
