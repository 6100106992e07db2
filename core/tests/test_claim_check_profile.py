"""The profile's claim-check settings: the cap and the stores a pointer may name."""

from __future__ import annotations

import json
import uuid

from iris_cloud.claimcheck import POINTER_CLASS, SIZE_PROPERTY
from iris_cloud.config import Profile
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryStore


def _pointer(bucket: str, key: str) -> Message:
    body = json.dumps([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}]).encode()
    return Message(body=body, properties={SIZE_PROPERTY: 7})


def test_pointers_may_name_the_claim_check_store_or_a_listed_source() -> None:
    tag = uuid.uuid4().hex[:8]
    ours, partner, stranger = f"ours-{tag}", f"partner-{tag}", f"stranger-{tag}"
    for container in (ours, partner, stranger):
        MemoryStore(container, prefix="inbox").put("x", b"payload")
    profile = Profile.from_dict(
        {
            "events": f"mem://events-{tag}",
            "claim_check": f"mem://{ours}/inbox",
            "claim_check_sources": [f"mem://{partner}/inbox"],
            "claim_check_max_bytes": 1000,
        }
    )
    with profile.open_broker("events") as broker:
        assert broker.claim_check_max_bytes == 1000
        assert [s.container for s in broker.claim_check_sources] == [partner]
        broker.send([_pointer(b, "inbox/x") for b in (ours, partner, stranger)])
        got = broker.receive(max_messages=10, wait=0.5)
        assert [m.body for m in got] == [b"payload", b"payload"]
        [dead] = broker.receive_dead_letters(10, wait=0.5)
        assert dead.dead_letter_description == "ValidationError at body[1].s3BucketName"
    masked = profile.masked()
    assert masked["claim_check_max_bytes"] == 1000
    assert masked["claim_check_sources"] == [{"url": f"mem://{partner}/inbox"}]
    mirror = profile.mirror()
    assert mirror.claim_check_max_bytes == 1000
    assert mirror.claim_check_sources == profile.claim_check_sources
