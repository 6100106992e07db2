"""IrisClient: what an integrator calls to send orders, images and gradings.

    from iris_cloud.client import IrisClient
    from iris_cloud.config import load_profile

    with IrisClient(load_profile("dev")) as iris:
        ref = iris.upload_image("right-eye.jpg")             # Image First
        order = {... "Camera": {"Images": [ref.image(laterality="OD").to_dict()]} ...}
        sent = iris.submit_order(order)                      # validated, images checked
        iris.cancel_order("ORD-1")

Every submission is validated before anything is sent (the object model plus
the sender's rules: Site, Patient and EvaluationTypes for NW/XO, codes the
model knows when ``strict``). Each message carries ``message_id`` = a
TransactionId (a new GUID unless you pass ``transaction_id=``, which makes a
retried send recognisable as a duplicate), ``correlation_id`` = the order's
LocalId and the properties ``MessageType``, ``OrderControlCode``,
``OrderLocalId`` and ``TransactionId``.

Brokers and stores are opened on first use and reused; the client closes
those it opened. Endpoints passed in directly stay the caller's.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, ClassVar, Self

from iris_cloud.aio.ports import AsyncMessageBroker, AsyncObjectStore
from iris_cloud.clientcore import ClientCore, GradingInput, OrderInput, Sent, check_order
from iris_cloud.messages import message_for, order_message
from iris_cloud.ports import MessageBroker, ObjectStore
from iris_cloud.steps import Blocking, drive
from iris_cloud.workflows.order_first import read_exam_identifiers

__all__ = [
    "GradingInput",
    "IrisClient",
    "OrderInput",
    "Sent",
    "check_order",
    "message_for",
    "order_message",
]


class IrisClient(Blocking, ClientCore[MessageBroker, ObjectStore]):
    """Send orders, images and gradings for one profile (or explicit endpoints).

    Args:
        profile: the integrator profile; endpoints not passed explicitly are
            opened from it on first use. ``None`` with no endpoints loads the
            default profile (:func:`~iris_cloud.config.load_profile`).
        orders, gradings: open brokers to use instead of the profile's.
        images: an open store to use instead of the profile's ``images``.
        client_guid: the organization's ClientGuid (default: the profile's),
            filled into submissions that lack one.
        receipts: upload receipts (an :class:`UploadReceipts` or a SQLite
            path; default: the profile's ``client.receipts``, else in memory).
        check_images: refuse orders whose images do not exist (default: profile).
        strict: refuse codes unknown to object model 2.3.1 (default: profile).

    Its methods are :mod:`iris_cloud.clientcore`'s, run with blocking calls;
    :class:`~iris_cloud.aio.AsyncIrisClient` awaits the same ones. Thread-safe.
    """

    _openers: ClassVar[dict[str, str]] = {"broker": "open_broker", "store": "open_store"}
    _other_twins_ports = (AsyncMessageBroker, AsyncObjectStore)
    _ports_hint = (
        "is an async endpoint: pass one from iris_cloud.open_broker / open_store, "
        "or use iris_cloud.aio.AsyncIrisClient"
    )

    def _endpoint(self, role: str) -> Any:
        with self._lock:
            return drive(self._endpoint_steps(role))

    read_exam_identifiers = staticmethod(read_exam_identifiers)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
