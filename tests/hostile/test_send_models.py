"""``broker.send``: a pydantic model is one message; a dict is refused, not split by key.

``send({...})`` used to iterate the mapping and send one message per key,
and ``send(model)`` iterated the model's field pairs ("cannot send a tuple").
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from iris_cloud.model import OrderRequest, sample_files
from iris_cloud.ports import MessageBroker
from iris_cloud.providers.local import LocalBroker
from iris_cloud.providers.memory import MemoryBroker
from pydantic import BaseModel, ConfigDict, Field

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["mem", "local"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "mem":
        with MemoryBroker(f"hostile-{uuid.uuid4().hex}") as b:
            yield b
    else:
        with LocalBroker.from_url(f"local://{tmp_path}/q?queue=send") as b:
            yield b


def drain(broker: MessageBroker) -> list[bytes]:
    got = broker.receive(10, wait=0.5)
    for m in got:
        broker.complete(m)
    return [m.body for m in got]


class Note(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    patient_ref: str = Field(alias="PatientRef")
    count: int = Field(alias="Count")


@pytest.mark.parametrize(
    "mapping",
    [{"a": 1, "b": 2}, OrderedDict(x="1"), MappingProxyType({"k": "v"}), {}],
    ids=["dict", "ordered", "proxy", "empty"],
)
def test_a_mapping_is_refused_and_nothing_is_sent(broker: MessageBroker, mapping: Any) -> None:
    with pytest.raises(TypeError, match="dict or other mapping"):
        broker.send(mapping)
    with pytest.raises(TypeError, match="dict or other mapping"):
        broker.send([b"fine", mapping])
    assert drain(broker) == []


def test_a_pydantic_model_is_one_message_by_alias(broker: MessageBroker) -> None:
    [mid] = broker.send(Note(patient_ref="P1", count=2))
    [body] = drain(broker)
    assert json.loads(body) == {"PatientRef": "P1", "Count": 2}
    assert mid
    broker.send([Note(patient_ref="A", count=1), b"raw"])
    assert sorted(drain(broker)) == sorted([b'{"PatientRef":"A","Count":1}', b"raw"])


def test_an_iris_model_is_sent_as_the_client_sends_it(broker: MessageBroker) -> None:
    raw = next(f for f in sample_files() if f.name == "order-new.json").read_bytes()
    order = OrderRequest.from_json(raw)
    broker.send(order)
    [msg] = broker.receive(1, wait=0.5)
    broker.complete(msg)
    assert OrderRequest.from_json(msg.body) == order
    assert msg.body == order.to_json().encode()
    assert msg.subject == "OrderRequest"
    assert msg.properties["MessageType"] == "OrderRequest"
    assert msg.message_id == msg.properties["TransactionId"]
