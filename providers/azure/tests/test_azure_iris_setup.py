"""The IRIS-hosted setup: exactly the credentials IRIS hands out, through profiles and plugins.

The integrator holds a Send-only key for orders and gradings, a Listen-only
key for events and results, a write-only SAS URL for the image container and
a read/write SAS URL for the claim-check container; the platform holds the
mirror. Everything is opened the way a profile is: ``open_broker(url, **options)``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import iris_cloud
import pytest
from iris_cloud.errors import PermissionDenied
from iris_cloud.ports import Message, MessageBroker, ObjectStore
from iris_cloud_azure import AzureBlobStore, ServiceBusBroker
from iris_cloud_azure.testing import AzuriteServer, ServiceBusServer, workflow_profiles

ROLES = {"orders", "events", "results", "gradings", "images", "results_store", "claim_check"}


def _broker(endpoint: dict[str, Any], **extra: Any) -> MessageBroker:
    options = dict(endpoint)
    return iris_cloud.open_broker(options.pop("url"), **options, **extra)


def _store(endpoint: dict[str, Any]) -> ObjectStore:
    options = dict(endpoint)
    return iris_cloud.open_store(options.pop("url"), **options)


def test_profiles_cover_every_role(
    azurite_server: AzuriteServer, sb_server: ServiceBusServer
) -> None:
    integrator, platform = workflow_profiles(azurite_server, sb_server)
    assert set(integrator) == set(platform) == ROLES
    for role in ("orders", "events", "results", "gradings"):
        assert integrator[role]["url"] == platform[role]["url"]
        assert integrator[role]["connection_string"] != platform[role]["connection_string"]
    assert "sas_url" in integrator["images"] and "sas_url" not in platform["images"]


def test_iris_hosted_exchange(azurite_server: AzuriteServer, sb_server: ServiceBusServer) -> None:
    integrator, platform = workflow_profiles(azurite_server, sb_server)
    order = json.dumps({"ClientGuid": "0b3c5a5e", "LocalId": "A-1", "Version": "2.3.1"}).encode()

    # Integrator: upload the image with the write-only SAS and keep the receipt.
    images = _store(integrator["images"])
    assert isinstance(images, AzureBlobStore)
    caps = images.capabilities
    assert caps.can_write and not caps.can_read and not caps.can_list
    receipt = images.put(
        "A-1/od.jpg", b"\xff\xd8jpeg", content_type="image/jpeg", metadata={"LocalId": "A-1"}
    )
    assert receipt.size == 6 and receipt.etag
    for call, right in (
        (lambda: images.exists("A-1/od.jpg"), "read"),
        (lambda: list(images.list()), "list"),
    ):
        with pytest.raises(PermissionDenied) as exc:
            call()
        assert exc.value.right == right

    # Integrator: send the order; its key cannot read the queue back.
    with _broker(integrator["orders"]) as orders:
        assert isinstance(orders, ServiceBusBroker)
        orders.send(Message(body=order, subject="Order", properties={"LocalId": "A-1"}))
        with pytest.raises(PermissionDenied) as exc:
            orders.receive(max_messages=1, wait=0.2)
        assert exc.value.right == "receive"

    # Platform: receive the order, read the image, answer with an event and a large result.
    platform_claim = _store(platform["claim_check"])
    with _broker(platform["orders"]) as p_orders:
        (got,) = p_orders.receive(max_messages=1, wait=5)
        assert got.body == order and got.subject == "Order"
        p_orders.complete(got)
        with pytest.raises(PermissionDenied) as exc:
            p_orders.send(b"the platform does not send orders")
        assert exc.value.right == "send"
    assert _store(platform["images"]).get("A-1/od.jpg") == b"\xff\xd8jpeg"
    report = os.urandom(400 * 1024)  # a result with an embedded PDF: over 256 KB
    with _broker(platform["events"]) as p_events:
        p_events.send(Message(body=b'{"EventType": "OrderReceived"}', subject="Event"))
    with _broker(platform["results"], claim_check=platform_claim) as p_results:
        p_results.send(Message(body=report, subject="Result"))

    # Integrator: receive both with Listen-only keys; the claim check reads via its SAS.
    with _broker(integrator["events"]) as events:
        (event,) = events.receive(max_messages=1, wait=5)
        assert event.subject == "Event"
        events.complete(event)
        with pytest.raises(PermissionDenied) as exc:
            events.send(b"integrators do not send events")
        assert exc.value.right == "send"
    with _broker(integrator["results"], claim_check=_store(integrator["claim_check"])) as results:
        (result,) = results.receive(max_messages=1, wait=5)
        assert result.body == report
        results.complete(result)

    # Gradings travel like orders: integrator sends, platform listens.
    with _broker(integrator["gradings"]) as gradings:
        gradings.send(b'{"Grading": 1}')
    with _broker(platform["gradings"]) as p_gradings:
        (grading,) = p_gradings.receive(max_messages=1, wait=5)
        p_gradings.complete(grading)


def test_own_subscription_profiles_have_full_rights(
    azurite_server: AzuriteServer, sb_server: ServiceBusServer
) -> None:
    integrator, _platform = workflow_profiles(azurite_server, sb_server, iris_credentials=False)
    images = _store(integrator["images"])
    assert images.capabilities.can_read and images.capabilities.signed_urls
    images.put("x.jpg", b"x")
    assert images.exists("x.jpg")
    with _broker(integrator["events"]) as events:
        events.send(b"own subscription: any direction")
        (msg,) = events.receive(max_messages=1, wait=5)
        events.complete(msg)
