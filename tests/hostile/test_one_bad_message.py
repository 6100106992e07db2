"""One bad message never costs another and never stops a consumer (issue 12, sections 1-2).

README: decoding is per message; a claim-check pointer is validated before
anything is fetched; a message that fails either is dead-lettered alone with
a reason that names the failure's class and field paths, never a value.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iris_cloud.claimcheck import POINTER_CLASS, SIZE_PROPERTY
from iris_cloud.config import load_profile
from iris_cloud.model.samples import sample_files
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker, MemoryStore
from iris_cloud.testing import LocalBrokerEnv
from iris_cloud.testing.contract import HOSTILE

pytestmark = pytest.mark.timeout(120)

EVENT = next(p for p in sample_files() if p.name == "event-order-graded.json").read_bytes()
# A reason names classes and field paths: "ValidationError at body[1].s3Key", "NotFound".
REASON_TEXT = re.compile(r"^[A-Za-z_]\w*( at [\w\[\].<>]+(, [\w\[\].<>]+)*)?$")


def _pointer(fields: Any, size: int = 10) -> Message:
    return Message(
        body=json.dumps([POINTER_CLASS, fields]).encode(), properties={SIZE_PROPERTY: size}
    )


def _hostile_heads(tmp_path: Path) -> dict[str, Callable[[], Message | None]]:
    """Messages a sender can put at the head of the queue; ``None``: put there raw."""
    claims = tmp_path / "claim_check"
    bucket = str(claims)

    def symlink_out() -> Message:
        # An object inside the store that is a symlink to a file outside it.
        outside = tmp_path / "outside"
        outside.mkdir(exist_ok=True)
        (outside / "secret").write_bytes(HOSTILE.encode())
        claims.mkdir(exist_ok=True)
        (claims / "escape").symlink_to(outside / "secret")
        return _pointer({"s3BucketName": bucket, "s3Key": "escape"})

    def oversized() -> Message:
        claims.mkdir(exist_ok=True)
        (claims / "big").write_bytes(b"x" * (2 * 1024 * 1024))
        return _pointer({"s3BucketName": bucket, "s3Key": "big"})

    def undecodable() -> None:
        LocalBrokerEnv(tmp_path).send_undecodable(f"local://{tmp_path}/queues?queue=events")

    return {
        "pointer nested 100,000 deep": lambda: Message(
            body=b"[" * 100_000 + b"]" * 100_000, properties={SIZE_PROPERTY: 10}
        ),
        "another bucket": lambda: _pointer({"s3BucketName": "/etc", "s3Key": "passwd"}),
        "dot-dot key": lambda: _pointer({"s3BucketName": bucket, "s3Key": "../outside/secret"}),
        "reserved key": lambda: _pointer({"s3BucketName": bucket, "s3Key": ".iris-cloud/x"}),
        "non-string key": lambda: _pointer({"s3BucketName": bucket, "s3Key": ["x"]}),
        "symlink out of the store": symlink_out,
        "payload over the cap": oversized,
        "rows that do not decode": undecodable,
    }


@pytest.mark.parametrize("head", list(_hostile_heads(Path("/"))))
def test_a_bad_head_message_does_not_stop_listen(
    head: str,
    tmp_path: Path,
    local_config: Callable[..., Path],
    cli: Callable[..., Result],
) -> None:
    config = str(local_config(claim_check_max_bytes=1024 * 1024))
    profile = load_profile(config_file=config)
    with profile.open_broker("events") as broker:
        bad = _hostile_heads(tmp_path)[head]()
        if bad is not None:
            broker.send(bad)
        broker.send(EVENT)
    # Before the fix each start died on the same head message; now every start
    # handles the good one behind it.
    for _ in range(2):
        out = cli("listen", "events", "--config", config, "--count", "1", "--timeout", "30")
        assert out.exit_code == 0, out.output
        assert "OrderGradedEvent" in out.output and "handled 1" in out.output
        assert HOSTILE not in out.output
        with profile.open_broker("events") as broker:
            broker.send(EVENT)
    with profile.open_broker("events") as broker:
        dead = broker.receive_dead_letters(10, wait=1)
        assert dead, "the hostile message was not dead-lettered"
        for d in dead:
            assert d.dead_letter_reason in ("ClaimCheckFailed", "DecodeFailed")
            assert REASON_TEXT.match(d.dead_letter_description or ""), d.dead_letter_description
            assert HOSTILE.encode() not in d.body


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_keys = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["../x", "/abs", "a/../b", ".iris-cloud/meta/x", "a\x00b", "a\\b", "."]),
    _json,
)


@st.composite
def _pointers(draw: st.DrawFn, bucket: str) -> Message:
    shape = draw(st.sampled_from(["pointer", "json", "bytes"]))
    if shape == "bytes":
        body = draw(st.binary(max_size=200))
    elif shape == "json":
        body = json.dumps(draw(_json)).encode()
    else:
        fields = {
            "s3BucketName": draw(st.one_of(st.just(bucket), _json)),
            "s3Key": draw(_keys),
        }
        body = json.dumps([draw(st.sampled_from([POINTER_CLASS, "x"])), fields]).encode()
    size = draw(st.one_of(st.integers(-5, 10**9), st.text(max_size=5), st.booleans()))
    return Message(body=body, properties={SIZE_PROPERTY: size})


_BUCKET = "hostile-claims"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile=_pointers(_BUCKET))
def test_any_pointer_costs_no_other_message(hostile: Message) -> None:
    store = MemoryStore(_BUCKET)
    store.put("present", b"not yours", overwrite=True)
    with MemoryBroker(f"q-{uuid.uuid4().hex}", claim_check=store) as broker:
        broker.send([b"before", hostile, b"after"])
        got = broker.receive(max_messages=10, wait=0)
        bodies = sorted(m.body for m in got)
        # The pointer is delivered only if it validly names the one object in the store.
        assert bodies in ([b"after", b"before"], [b"after", b"before", b"not yours"])
        dead = broker.receive_dead_letters(10, wait=0)
        assert len(got) + len(dead) == 3
        for d in dead:
            assert d.dead_letter_reason == "ClaimCheckFailed"
            assert REASON_TEXT.match(d.dead_letter_description or ""), d.dead_letter_description
