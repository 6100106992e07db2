"""A pointer to a huge payload costs the consumer no more than the configured cap.

Issue 12 section 2: a 64 MiB payload grew the consumer by 130 MB. The payload
is now streamed and refused as soon as it passes ``claim_check_max_bytes``
(here 1 MiB, against an 8 MiB object: the bounded form of that scenario).
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from iris_cloud.claimcheck import POINTER_CLASS, SIZE_PROPERTY
from iris_cloud.config import load_profile
from iris_cloud.ports import Message

CAP = 1024 * 1024


@pytest.mark.parametrize("declared", ["truthfully", "lying small"])
def test_payload_over_the_cap_is_refused_in_bounded_memory(
    declared: str, tmp_path: Path, local_config: Callable[..., Path]
) -> None:
    profile = load_profile(config_file=local_config(claim_check_max_bytes=CAP))
    size = 8 * CAP
    with profile.open_store("claim_check") as store:
        store.put("huge", b"x" * size)
        bucket = store.container
    pointer = json.dumps([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": "huge"}]).encode()
    with profile.open_broker("events") as broker:
        assert broker.claim_check_max_bytes == CAP
        claimed = size if declared == "truthfully" else 10
        broker.send([Message(body=pointer, properties={SIZE_PROPERTY: claimed}), b"next"])
        tracemalloc.start()
        try:
            got = broker.receive(max_messages=10, wait=1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert [m.body for m in got] == [b"next"]
        broker.complete(got[0])
        # Refused from the declared size without a read, or after at most CAP + a chunk.
        assert peak < 3 * CAP, f"peak {peak / 2**20:.1f} MiB"
        [dead] = broker.receive_dead_letters(1, wait=1)
        assert dead.dead_letter_reason == "ClaimCheckFailed"
        assert dead.dead_letter_description in (
            "ValidationError at properties.ExtendedPayloadSize",
            "ValidationError at body[1].s3Key",
        )
        broker.complete(dead)
