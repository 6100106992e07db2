"""Fixed-size blocks from an async stream of chunks, for uploads in parts."""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["BlockReader"]


class BlockReader:
    """Reads exactly ``size`` bytes at a time from async chunks of any size.

    The async twin of :func:`iris_cloud.ports.read_full`: an async provider
    uploading in parts calls ``await reader.read_full(size)`` where a sync one
    calls ``read_full(stream, size)``; a block is shorter only at the end.
    """

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    async def read_full(self, size: int) -> bytes:
        """The next ``size`` bytes; fewer only at the end (``b""`` once it is reached)."""
        parts = [self._left] if self._left else []
        have = len(self._left)
        self._left = b""
        while have < size:
            chunk = await anext(self._chunks, None)
            if chunk is None:  # an empty chunk is not the end: only the iterator's end is
                break
            parts.append(chunk)
            have += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)  # no copy of a whole chunk
        if len(data) > size:
            data, self._left = data[:size], data[size:]
        return data
