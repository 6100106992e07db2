"""Uploads in parts: fixed-size blocks from async chunks, and bounded parts in flight."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from iris_cloud.aio.blocks import BlockReader
from iris_cloud.parts import AsyncPartPool, PartPool


async def _chunks(*chunks: bytes):  # type: ignore[no-untyped-def]
    for chunk in chunks:
        yield chunk


def test_block_reader_cuts_exact_blocks_across_chunks_and_empty_ones() -> None:
    async def main() -> list[bytes]:
        reader = BlockReader(_chunks(b"ab", b"", b"cdefg", b"h", b"", b"ij"))
        return [await reader.read_full(3) for _ in range(5)]

    assert asyncio.run(main()) == [b"abc", b"def", b"ghi", b"j", b""]


def test_part_pool_bounds_what_is_in_flight_and_keeps_order() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def part(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01 * (n % 3))
        with lock:
            running -= 1
        return n

    pool = PartPool(2, "test")
    try:
        for n in range(8):
            pool.submit(part, n)
        assert pool.results() == list(range(8))
    finally:
        pool.close()
    assert most <= 2


def test_async_part_pool_bounds_and_raises_the_first_failure() -> None:
    running, most = 0, 0

    async def part(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01 * (n % 3))
        running -= 1
        if n == 3:
            raise ValueError("part 3")
        return n

    async def main() -> None:
        pool = AsyncPartPool(2)
        try:
            with pytest.raises(ValueError, match="part 3"):
                for n in range(8):
                    await pool.submit(part, n)
                await pool.results()
        finally:
            await pool.close()

    asyncio.run(main())
    assert most <= 2


def test_drain_waits_for_the_parts_in_flight_whatever_their_outcome() -> None:
    finished: list[int] = []

    def part(n: int) -> None:
        time.sleep(0.05)
        finished.append(n)
        if n == 0:
            raise ValueError("part 0")

    pool = PartPool(3, "test")
    try:
        for n in range(3):
            pool.submit(part, n)
        pool.drain()
        assert sorted(finished) == [0, 1, 2]
    finally:
        pool.close()


def test_async_drain_waits_rather_than_cancels() -> None:
    finished: list[int] = []

    async def part(n: int) -> None:
        await asyncio.sleep(0.05)
        finished.append(n)
        if n == 0:
            raise ValueError("part 0")

    async def main() -> None:
        pool = AsyncPartPool(3)
        try:
            for n in range(3):
                await pool.submit(part, n)
            await pool.drain()
            assert sorted(finished) == [0, 1, 2]
        finally:
            await pool.close()

    asyncio.run(main())
