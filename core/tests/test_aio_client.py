"""What only the async client has: its twin's API awaited, one event loop, async profiles.

The behaviours both clients share run on both in ``test_client.py``; here,
on an event loop of its own (``asyncio.run``), what is particular to
``AsyncIrisClient``: the same signatures as ``IrisClient``, coroutines;
endpoints opened once by concurrent first calls; the other twin's ports
refused; the profile's async openers and their claim-check wiring.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from iris_cloud import aio
from iris_cloud.aio import AsyncIrisClient, AsyncMessageBroker, AsyncObjectStore
from iris_cloud.aio.builtin import AsyncMemoryBroker
from iris_cloud.client import IrisClient
from iris_cloud.config import Profile
from iris_cloud.errors import ConfigurationError
from iris_cloud.model import OrderRequest
from iris_cloud.providers.memory import MemoryBroker
from wfhelpers import CLIENT_GUID, PROVIDERS, jpeg_bytes, make_profile, new_order

PUBLIC = sorted(
    name
    for name in dir(IrisClient)
    if not name.startswith("_") and name not in ("orders", "gradings", "images")
)


def test_every_sync_method_is_there_with_its_signature_and_docs() -> None:
    iris = IrisClient(orders=MemoryBroker("sig-sync"))
    airis = AsyncIrisClient(orders=AsyncMemoryBroker(MemoryBroker("sig-async")))
    assert {"submit_order", "upload_image", "submit_grading", "close", "resend"} <= set(PUBLIC)
    for name in PUBLIC:
        sync, awaited = getattr(iris, name), getattr(airis, name)
        assert inspect.signature(awaited) == inspect.signature(sync), name
        assert inspect.getdoc(awaited), name
        if name in ("validate_order", "from_profile"):  # no I/O: plain calls on both
            assert not inspect.iscoroutinefunction(awaited), name
        else:
            assert inspect.iscoroutinefunction(awaited), name
            assert not inspect.iscoroutinefunction(sync), name
    assert inspect.getdoc(AsyncIrisClient.submit_order) == inspect.getdoc(IrisClient.submit_order)
    IrisClient.close(iris)  # called on the class, as any method may be
    asyncio.run(AsyncIrisClient.close(airis))
    with pytest.raises(ConfigurationError, match="this IrisClient is closed"):
        iris.orders.send(b"too late")


def test_the_other_twins_ports_are_refused(tmp_path: Path) -> None:
    profile = make_profile("mem", tmp_path)
    broker = profile.open_broker("orders")
    async_store = aio.open_store("mem://refused")
    with pytest.raises(ConfigurationError, match=r"orders= is a sync endpoint.*aio\.open_broker"):
        AsyncIrisClient(profile, orders=broker)
    with pytest.raises(ConfigurationError, match=r"images= is an async endpoint.*AsyncIrisClient"):
        IrisClient(profile, images=async_store)  # type: ignore[arg-type]
    broker.close()
    asyncio.run(async_store.close())


@pytest.mark.parametrize("kind", PROVIDERS)
def test_concurrent_first_calls_open_each_endpoint_once(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    open_broker = Profile.open_async_broker

    async def counting(self: Profile, role: str, **kwargs: Any) -> AsyncMessageBroker:
        opened.append(role)
        await asyncio.sleep(0.05)  # a slow open: the other tasks arrive meanwhile
        return await open_broker(self, role, **kwargs)

    monkeypatch.setattr(Profile, "open_async_broker", counting)
    profile = make_profile(kind, tmp_path)

    async def main() -> list[str]:
        async with AsyncIrisClient(profile) as iris:
            sent = await asyncio.gather(*(iris.submit_order(new_order(f"C-{i}")) for i in range(8)))
            orders = await iris.orders
            got: list[str] = []
            while batch := await orders.receive(10, wait=0.3):
                for message in batch:
                    await orders.complete(message)
                got += [m.correlation_id or "" for m in batch]
        assert sorted(s.correlation_id for s in sent) == sorted(got)
        return got

    assert len(asyncio.run(main())) == 8
    assert opened == ["orders"]


@pytest.mark.parametrize("kind", PROVIDERS)
def test_image_first_and_order_first_on_one_loop(kind: str, tmp_path: Path) -> None:
    profile = make_profile(kind, tmp_path)
    path = tmp_path / "od.jpg"
    path.write_bytes(jpeg_bytes())

    async def main() -> None:
        async with AsyncIrisClient(profile) as iris:
            ref = await iris.upload_image(path)
            sent = await iris.submit_order(
                new_order("AF-1", images=[ref.image(local_id="1", laterality="OD").to_dict()])
            )
            assert sent.control_code == "NW"
            order = OrderRequest.model_validate(new_order("AF-2"))
            tagged = await iris.upload_exam_image(path, order=order, laterality="OS")
            images = await iris.images
            assert isinstance(images, AsyncObjectStore)
            ids = await iris.read_exam_identifiers(await images.get(tagged.file_name))
            assert ids is not None and ids.order_local_id == "AF-2"
            assert ids.client_guid == CLIENT_GUID
            assert (await images.info(tagged.file_name)).metadata["laterality"] == "OS"
            cancel = await iris.cancel_order("AF-1")
            assert cancel.control_code == "CA"
            orders = await iris.orders
            bodies = [json.loads(m.body) for m in await orders.receive(10, wait=0.5)]
        assert [b["OrderControlCode"] for b in bodies] == ["NW", "CA"]

    asyncio.run(main())


def test_async_profile_broker_closes_its_claim_check_store_and_on_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []
    original = AsyncMemoryBroker.close

    async def recording(self: AsyncMemoryBroker) -> None:
        closed.append(type(self).__name__)
        await original(self)

    monkeypatch.setattr(AsyncMemoryBroker, "close", recording)
    good = Profile.from_dict(
        {
            "events": "mem://aio-events",
            "claim_check": "mem://aio-claims",
            "claim_check_sources": ["mem://aio-partner"],
            "claim_check_max_bytes": 1000,
        }
    )
    bad = Profile.from_dict(
        {
            "events": "mem://aio-events",
            "claim_check": "mem://aio-claims",
            "claim_check_sources": [{"url": "mem://aio-partner", "nonsense": 1}],
        }
    )

    async def main() -> None:
        broker = await good.open_async_broker("events")
        assert isinstance(broker.claim_check, AsyncObjectStore)
        assert broker.claim_check.container == "aio-claims"
        assert [s.container for s in broker.claim_check_sources] == ["aio-partner"]
        assert broker.claim_check_max_bytes == 1000
        await broker.close()
        assert closed == ["AsyncMemoryBroker"]
        with pytest.raises(ConfigurationError, match="unknown option"):
            await bad.open_async_broker("events")
        assert closed == ["AsyncMemoryBroker"] * 2  # the half-opened broker was closed
        with pytest.raises(ConfigurationError, match="broker role"):
            await good.open_async_store("events")

    asyncio.run(main())


def test_from_profile_loads_the_named_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "iris-cloud.toml"
    config.write_text(
        f'[profiles.clinic]\nclient_guid = "{CLIENT_GUID}"\norders = "mem://fp-orders"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("IRIS_CLOUD_CONFIG", str(config))
    sync = IrisClient.from_profile("clinic", strict=True)
    awaited = AsyncIrisClient.from_profile("clinic", strict=True)
    for iris, cls in ((sync, IrisClient), (awaited, AsyncIrisClient)):
        assert type(iris) is cls and iris.strict
        assert iris.profile is not None and iris.profile.name == "clinic"
        assert repr(iris) == f"{cls.__name__}(profile='clinic')"
    sync.close()
    asyncio.run(awaited.close())
