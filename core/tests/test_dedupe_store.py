"""StoreDedupe: claims and handled markers in an object store, shared by processes."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from iris_cloud.capabilities import Capabilities
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.dedupe import Dedupe, open_dedupe
from iris_cloud.dedupestore import StoreDedupe
from iris_cloud.errors import ConfigurationError
from iris_cloud.plugins import open_store
from iris_cloud.providers.memory import MemoryBroker, MemoryStore
from iris_cloud.testing.shareddedupe import run_two_consumers

pytestmark = pytest.mark.timeout(120)

HOSTILE = "id:../../etc/passwd\n\x1b[2J\u202e" + "x" * 2000


def pair(tmp_path: Path) -> tuple[StoreDedupe, StoreDedupe]:
    """Two dedupe objects on two store objects of one directory, as two hosts have."""
    url = f"file://{tmp_path}/dedupe"
    return (
        StoreDedupe(open_store(url), close_store=True),
        StoreDedupe(open_store(url), close_store=True),
    )


def test_a_claim_holds_until_released_or_handled(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    keys = ["id:m1", "tx:t1"]
    token = a.claim(keys, ttl=60)
    assert token is not None
    assert b.claim(keys, ttl=60) is None
    assert b.claim(["tx:t1"], ttl=60) is None  # any one key claimed is enough
    a.release(token)
    again = b.claim(keys, ttl=60)
    assert again is not None
    b.mark(keys, again)
    assert a.seen(["id:m1"]) and a.seen(["tx:t1", "id:other"]) and not a.seen(["id:other"])
    assert a.claim(keys, ttl=60) is None  # handled: nobody claims it again
    assert len(a) == 2


def test_an_expired_claim_is_taken_over_once(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    assert a.claim(["id:m2"], ttl=0.2) is not None
    time.sleep(0.3)  # the claimant crashed: its claim lapses
    takers = [b.claim(["id:m2"], ttl=60), a.claim(["id:m2"], ttl=60)]
    assert takers[0] is not None and takers[1] is None


def test_refresh_keeps_a_claim_alive(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    token = a.claim(["id:m3"], ttl=0.5)
    assert token is not None
    for _ in range(3):
        time.sleep(0.25)
        a.refresh(token, ttl=0.5)
    assert b.claim(["id:m3"], ttl=60) is None


def test_object_names_are_digests_never_the_sender_text(tmp_path: Path) -> None:
    a, _ = pair(tmp_path)
    token = a.claim([HOSTILE], ttl=60)
    assert token is not None
    a.mark([HOSTILE], token)
    assert a.seen([HOSTILE])
    for path in (tmp_path / "dedupe").rglob("*"):
        rel = path.relative_to(tmp_path / "dedupe").as_posix()
        if not rel.startswith(".iris-cloud"):
            assert re.fullmatch(r"(handled|claims)(/[0-9a-f]{64}(/[0-9]{12})?)?", rel), rel


def test_a_store_without_conditional_create_is_refused() -> None:
    store = MemoryStore("dedupe-refused")
    store.capabilities = Capabilities(conditional_create=False)
    with pytest.raises(ConfigurationError, match="conditional_create"):
        StoreDedupe(store)


def test_settings_pick_the_backend(tmp_path: Path) -> None:
    sqlite = open_dedupe(str(tmp_path / "d.sqlite3"))
    assert isinstance(sqlite, Dedupe)
    sqlite.close()
    shared = open_dedupe(f"file://{tmp_path}/d")
    assert isinstance(shared, StoreDedupe)
    shared.close()
    table = open_dedupe({"url": f"file://{tmp_path}/d"})
    assert isinstance(table, StoreDedupe)
    table.close()
    profile = Profile.from_dict(
        {"events": "mem://dd-events", "consumer": {"dedupe": f"file://{tmp_path}/d"}}
    )
    with Consumer.from_profile(IrisApp(), profile, roles=("events",)) as consumer:
        assert isinstance(consumer.dedupe, StoreDedupe)
    with Consumer(IrisApp(), MemoryBroker("dd-q"), dedupe=f"file://{tmp_path}/d") as consumer:
        assert isinstance(consumer.dedupe, StoreDedupe)
    assert json.dumps(profile.masked()["consumer"]["dedupe"]).startswith('"file://')


def test_two_processes_on_a_file_store_run_the_side_effect_once(tmp_path: Path) -> None:
    data = {
        "events": f"local://{tmp_path}/queues?queue=events&lock_seconds=1",
        "consumer": {"dedupe": f"file://{tmp_path}/dedupe"},
    }
    run = run_two_consumers(data, tmp_path / "state", lock_seconds=1)
    assert run.effects == 1
    assert run.total("handled") == 1 and run.total("duplicates") == 1
    assert run.total("deferred") >= 1  # the redelivered copy came while the first ran
