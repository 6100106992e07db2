"""What :class:`~iris_cloud.client.IrisClient` and :class:`~iris_cloud.aio.AsyncIrisClient` share.

Everything the two clients do is written here once: the validation of
orders and gradings, the messages they become, the Image First and Order
First uploads, which endpoint is opened when, and closing. Each public
method is a :class:`~iris_cloud.steps.steps_method`: its port calls are
steps, so the sync client runs it with blocking calls and the async one
awaits the same calls on async ports (:mod:`iris_cloud.steps`). The two
client classes hold only what really differs: the lock around opening an
endpoint, the profile's sync or async openers, ``with`` or ``async with``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, overload

from pydantic import ValidationError as PydanticValidationError

from iris_cloud.config import ROLES, Profile, load_profile
from iris_cloud.errors import ConfigurationError, FieldError, ValidationError
from iris_cloud.logs import get_logger
from iris_cloud.messages import message_for, order_message
from iris_cloud.model import (
    MODEL_VERSION,
    EyeGrading,
    GradingSubmission,
    IrisModel,
    OrderControlCode,
    OrderRequest,
)
from iris_cloud.model.common import validation_error
from iris_cloud.steps import Awaiting, Blocking, Call, Steps, steps_method
from iris_cloud.workflows.image_first import (
    ImageRef,
    ImageSource,
    UploadReceipts,
    check_images_exist_steps,
    image_references,
    upload_image_steps,
)
from iris_cloud.workflows.order_first import (
    ExamIdentifiers,
    prepare_exam_upload,
    upload_exam_image_steps,
)

if TYPE_CHECKING:
    from iris_cloud.aio.ports import AsyncMessageBroker, AsyncObjectStore
    from iris_cloud.ports import MessageBroker, ObjectStore

__all__ = ["ClientCore", "GradingInput", "OrderInput", "Sent", "check_order"]

# The sync client's logger name: what integrators filter on.
log = get_logger("iris_cloud.client")

B = TypeVar("B")
S = TypeVar("S")
SyncT = TypeVar("SyncT")
AsyncT = TypeVar("AsyncT")

OrderInput = OrderRequest | Mapping[str, Any] | str | bytes
GradingInput = GradingSubmission | Mapping[str, Any] | str | bytes


@dataclass(frozen=True)
class Sent:
    """What was sent: the ids to find the message again."""

    message_id: str
    """The broker message id (equal to :attr:`transaction_id`)."""
    transaction_id: str
    correlation_id: str
    """The order's LocalId."""
    message_type: str
    """``OrderRequest`` or ``GradingSubmission``."""
    control_code: str | None = None
    """NW, XO, CA or ResendResult for orders."""


# ----------------------------------------------------------------- validation


def _code_errors(order: OrderRequest) -> list[FieldError]:
    """Enum fields holding a code object model 2.3.1 does not know."""
    found: list[FieldError] = []

    def check(path: str, value: object) -> None:
        if value is not None and not isinstance(value, StrEnum):
            found.append(FieldError(path, "unknown_code", "code not known to object model 2.3.1"))

    check("OrderControlCode", order.order_control_code)
    for i, ev in enumerate(order.order.evaluation_types or []):
        check(f"Order.EvaluationTypes[{i}]", ev)
    for i, image in enumerate((order.camera.images or []) if order.camera else []):
        check(f"Camera.Images[{i}].Laterality", image.laterality)
        check(f"Camera.Images[{i}].ImageContext", image.image_context)
    if order.patient is not None:
        check("Patient.Gender", order.patient.gender)
        check("Patient.MaritalStatus", order.patient.marital_status)
        for i, g in enumerate(order.patient.genders or []):
            check(f"Patient.Genders[{i}].Context", g.context)
            check(f"Patient.Genders[{i}].Gender", g.gender)
    return found


def check_order(order: OrderRequest, *, strict: bool = False) -> None:
    """Apply the sender's rules to a parsed order; :class:`ValidationError` lists every breach.

    NW and XO need ``Site.LocalId``, ``Patient`` with ``LocalId``, ``Name``
    (First, Last), ``Dob`` and ``Genders``, and ``Order.EvaluationTypes``. With
    ``strict``, codes object model 2.3.1 does not know are refused; otherwise
    they are logged (by field path) as a warning.
    """
    errors: list[FieldError] = []

    def need(path: str, ok: bool) -> None:
        if not ok:
            errors.append(FieldError(path, "missing", "Field required"))

    code = order.order_control_code
    if code in (OrderControlCode.NEW, OrderControlCode.CHANGE):
        need("Site.LocalId", order.site is not None and bool(order.site.local_id))
        need("Order.EvaluationTypes", bool(order.order.evaluation_types))
        patient = order.patient
        need("Patient", patient is not None)
        if patient is not None:
            name = patient.name
            need("Patient.Name.First", name is not None and bool(name.first))
            need("Patient.Name.Last", name is not None and bool(name.last))
            need("Patient.Dob", patient.dob is not None)
            need("Patient.Genders", bool(patient.genders))
    unknown = _code_errors(order)
    if unknown and (strict or (isinstance(code, str) and not isinstance(code, StrEnum))):
        errors.extend(unknown)
    elif unknown:
        log.warning(
            "order has codes unknown to object model 2.3.1 at %s",
            ", ".join(e.path for e in unknown),
        )
    if errors:
        raise ValidationError(f"invalid OrderRequest ({code})", errors)


def _parse(cls: type[IrisModel], data: Any, title: str) -> Any:
    try:
        if isinstance(data, str | bytes | bytearray):
            return cls.model_validate_json(data)
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        raise validation_error(title, exc) from None


def _as_dict(data: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    if isinstance(data, Mapping):
        return dict(data)
    try:
        value = json.loads(data)
    except ValueError:
        raise ValidationError(
            "invalid message", [FieldError("", "json_invalid", "not a JSON document")]
        ) from None
    if not isinstance(value, dict):
        raise ValidationError("invalid message", [FieldError("", "dict_type", "not a JSON object")])
    return value


# ---------------------------------------------------------------- endpoints


class _Endpoint(Generic[SyncT, AsyncT]):
    """A client's broker or store of one role: opened on first use, awaited on the async client."""

    def __init__(self, role: str, doc: str) -> None:
        self.role = role
        self.__doc__ = doc

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: Awaiting, owner: type[Any]) -> Coroutine[Any, Any, AsyncT]: ...
    @overload
    def __get__(self, obj: Blocking, owner: type[Any]) -> SyncT: ...
    def __get__(self, obj: object, owner: type[Any]) -> Any:
        if obj is None:
            return self
        assert isinstance(obj, ClientCore)
        return obj._endpoint(self.role)


# --------------------------------------------------------------------- client


class ClientCore(Generic[B, S]):
    """The client, written once; ``B`` / ``S`` are its broker and store types.

    Subclasses add :class:`~iris_cloud.steps.Blocking` or
    :class:`~iris_cloud.steps.Awaiting`, ``_endpoint(role)`` (the endpoint,
    opened under their lock by :meth:`_endpoint_steps`) and name the
    profile's openers in :attr:`_openers`.
    """

    _openers: ClassVar[dict[str, str]]
    """Profile method opening a ``broker`` / ``store``: sync or async ones."""
    _other_twins_ports: ClassVar[tuple[type, ...]]
    """Endpoint classes refused when passed in: the other twin's (a sync port's calls
    awaited, or an async port's coroutines never awaited)."""
    _ports_hint: ClassVar[str]
    """Says what to pass instead."""
    _endpoint: Callable[[str], Any]
    """The endpoint of a role (sync) or a coroutine giving it (async), opened under
    the twin's lock by :meth:`_endpoint_steps`."""
    _offload: Callable[..., Any]
    """Blocking work that is not a port call (:class:`~iris_cloud.steps.Blocking`)."""

    def __init__(
        self,
        profile: Profile | None = None,
        *,
        orders: B | None = None,
        gradings: B | None = None,
        images: S | None = None,
        client_guid: str | None = None,
        receipts: UploadReceipts | str | None = None,
        check_images: bool | None = None,
        strict: bool | None = None,
    ) -> None:
        if profile is None and orders is None and gradings is None and images is None:
            profile = load_profile()
        self.profile = profile
        settings = profile.client if profile is not None else None
        self.client_guid = client_guid or (profile.client_guid if profile is not None else None)
        self.check_images = (
            check_images
            if check_images is not None
            else (settings.check_images if settings else True)
        )
        self.strict = strict if strict is not None else (settings.strict if settings else False)
        if isinstance(receipts, UploadReceipts):
            self.receipts = receipts
            self._owns_receipts = False
        else:
            path = receipts or (settings.receipts if settings else None)
            self.receipts = UploadReceipts(path)
            self._owns_receipts = True
        self._lock = threading.RLock()
        self._endpoints: dict[str, Any] = {}
        self._owned: list[Any] = []
        for role, given in (("orders", orders), ("gradings", gradings), ("images", images)):
            if isinstance(given, self._other_twins_ports):
                raise ConfigurationError(f"{role}= {self._ports_hint}")
            if given is not None:
                self._endpoints[role] = given
        self._closed = False

    @classmethod
    def from_profile(cls, name: str | None = None, **kwargs: Any) -> Self:
        """A client for the named profile (files + environment, see :mod:`iris_cloud.config`)."""
        return cls(load_profile(name), **kwargs)

    def __repr__(self) -> str:
        name = self.profile.name if self.profile is not None else "<endpoints>"
        return f"{type(self).__name__}(profile={name!r})"

    # -- endpoints -----------------------------------------------------------
    def _endpoint_steps(self, role: str) -> Steps[Any]:
        """The open endpoint of ``role``, opened from the profile if need be (lock held)."""
        self._check_open()
        endpoint = self._endpoints.get(role)
        if endpoint is None:
            kind = ROLES[role].kind
            if self.profile is None:
                raise ConfigurationError(f"this client has no {role!r} {kind}")
            opener = getattr(self.profile, self._openers[kind])
            if kind == "store":
                endpoint = yield Call(opener, (role,))
            else:
                claim = None
                if self.profile.claim_check is not None:
                    claim = yield from self._endpoint_steps("claim_check")
                endpoint = yield Call(opener, (role,), {"claim_check": claim})
            self._endpoints[role] = endpoint
            self._owned.append(endpoint)
        return endpoint

    orders: _Endpoint[MessageBroker, AsyncMessageBroker] = _Endpoint(
        "orders", "The orders broker (opened on first use; awaited on the async client)."
    )
    gradings: _Endpoint[MessageBroker, AsyncMessageBroker] = _Endpoint(
        "gradings", "The gradings broker (opened on first use; awaited on the async client)."
    )
    images: _Endpoint[ObjectStore, AsyncObjectStore] = _Endpoint(
        "images", "The images store (opened on first use; awaited on the async client)."
    )

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(f"this {type(self).__name__} is closed")

    def _guid(self) -> str:
        if self.client_guid is None:
            raise ConfigurationError(
                "no ClientGuid: set client_guid in the profile (or IRIS_CLOUD_CLIENT_GUID) "
                "or put ClientGuid in the message"
            )
        return self.client_guid

    # -- orders --------------------------------------------------------------
    def validate_order(
        self, order: OrderInput, code: OrderControlCode | None = None
    ) -> OrderRequest:
        """Parse and check ``order`` without sending it; returns the model.

        Dicts and JSON get ``Version`` and this client's ``ClientGuid`` when
        they lack them, and ``code`` as ``OrderControlCode``; an order whose
        code differs from ``code`` is refused. No I/O: a plain call on both clients.
        """
        if isinstance(order, OrderRequest):
            parsed = order
        else:
            data = _as_dict(order)
            data.setdefault("Version", MODEL_VERSION)
            if "ClientGuid" not in data and self.client_guid is not None:
                data["ClientGuid"] = self.client_guid
            if code is not None:
                data.setdefault("OrderControlCode", code.value)
            parsed = _parse(OrderRequest, data, "invalid OrderRequest")
        if code is not None and parsed.order_control_code != code:
            raise ValidationError(
                "wrong OrderControlCode",
                [
                    FieldError(
                        "OrderControlCode",
                        "control_code",
                        f"this call sends {code.value}; use send_order for other codes",
                    )
                ],
            )
        check_order(parsed, strict=self.strict)
        return parsed

    @steps_method
    def send_order(
        self,
        order: OrderInput,
        *,
        transaction_id: str | None = None,
        check_images: bool | None = None,
    ) -> Steps[Sent]:
        """Validate and send an order with whatever OrderControlCode it carries.

        For NW / XO orders the Image First references are checked first (see
        :meth:`submit_order`).
        """
        return self._send_order_steps(order, None, transaction_id, check_images)

    @steps_method
    def submit_order(
        self,
        order: OrderInput,
        *,
        transaction_id: str | None = None,
        check_images: bool | None = None,
    ) -> Steps[Sent]:
        """Validate and send a new order (``NW``).

        Refuses with :class:`~iris_cloud.errors.ValidationError` an order that
        does not validate, or whose ``Camera.Images`` reference an image that
        does not exist: checked with the store's ``exists`` when its
        credentials may read, otherwise against this client's upload receipts.
        The error names each missing image (its field path and file name).
        """
        return self._send_order_steps(order, OrderControlCode.NEW, transaction_id, check_images)

    @steps_method
    def update_order(
        self,
        order: OrderInput,
        *,
        transaction_id: str | None = None,
        check_images: bool | None = None,
    ) -> Steps[Sent]:
        """Validate and send a change (``XO``): the whole request again, same LocalId."""
        return self._send_order_steps(order, OrderControlCode.CHANGE, transaction_id, check_images)

    @steps_method
    def cancel_order(
        self,
        order: OrderRequest | str,
        *,
        site_local_id: str | None = None,
        transaction_id: str | None = None,
    ) -> Steps[Sent]:
        """Cancel (``CA``) the order with this LocalId (or the LocalId of ``order``)."""
        return self._send_short(order, OrderControlCode.CANCEL, site_local_id, transaction_id)

    @steps_method
    def resend(
        self,
        order: OrderRequest | str,
        *,
        site_local_id: str | None = None,
        transaction_id: str | None = None,
    ) -> Steps[Sent]:
        """Ask IRIS to send the order's result again (``ResendResult``)."""
        return self._send_short(
            order, OrderControlCode.RESEND_RESULT, site_local_id, transaction_id
        )

    def _send_short(
        self,
        order: OrderRequest | str,
        code: OrderControlCode,
        site_local_id: str | None,
        transaction_id: str | None,
    ) -> Steps[Sent]:
        # Cancel and resend carry only the identifiers, and no images to check.
        if isinstance(order, OrderRequest):
            local_id = order.order.local_id
            guid = order.client_guid
            site_local_id = site_local_id or (order.site.local_id if order.site else None)
        else:
            local_id, guid = order, self._guid()
        data: dict[str, Any] = {
            "Version": MODEL_VERSION,
            "ClientGuid": guid,
            "OrderControlCode": code.value,
            "Order": {"LocalId": local_id},
        }
        if site_local_id:
            data["Site"] = {"LocalId": site_local_id}
        return self._send_order_steps(data, code, transaction_id, False)

    def _send_order_steps(
        self,
        order: OrderInput,
        code: OrderControlCode | None,
        transaction_id: str | None,
        check_images: bool | None,
    ) -> Steps[Sent]:
        parsed = self.validate_order(order, code)
        control = parsed.order_control_code
        wants_check = self.check_images if check_images is None else check_images
        if (
            wants_check
            and control in (OrderControlCode.NEW, OrderControlCode.CHANGE)
            and image_references(parsed)
        ):
            images = yield Call(self._endpoint, ("images",))
            yield from check_images_exist_steps(parsed, images, self.receipts)
        txid = transaction_id or str(uuid.uuid4())
        message = order_message(parsed, txid)
        orders = yield Call(self._endpoint, ("orders",))
        yield Call(orders.send, (message,))
        log.info("sent OrderRequest %s message_id=%s", control, txid)
        return Sent(
            message_id=txid,
            transaction_id=txid,
            correlation_id=parsed.order.local_id,
            message_type="OrderRequest",
            control_code=str(control),
        )

    # -- images --------------------------------------------------------------
    @steps_method
    def upload_image(
        self,
        source: ImageSource,
        name: str | None = None,
        content_type: str | None = None,
        *,
        metadata: Mapping[str, str] | None = None,
        force: bool = False,
    ) -> Steps[ImageRef]:
        """Image First: stream ``source`` (path, bytes or binary stream) to the images store.

        The name defaults to a new GUID with the image's suffix; an existing
        name is never overwritten. Content that is not a JPEG, PNG, TIFF or
        DICOM image is refused (:class:`ValidationError`) unless ``force``.
        Returns the reference for ``Camera.Images[].AzureBlobStorage``
        (``ref.image(laterality="OD", ...)`` builds the whole entry) and
        records a receipt.
        """
        images = yield Call(self._endpoint, ("images",))
        return (
            yield from upload_image_steps(
                images,
                source,
                name=name,
                content_type=content_type,
                metadata=metadata,
                receipts=self.receipts,
                force=force,
            )
        )

    @steps_method
    def upload_exam_image(
        self,
        source: bytes | bytearray | IO[bytes] | str | Any,
        *,
        order: OrderRequest | str,
        patient_local_id: str | None = None,
        site_local_id: str | None = None,
        image_local_id: str | None = None,
        laterality: str | None = None,
        name: str | None = None,
    ) -> Steps[ImageRef]:
        """Order First: write the order's identifiers into the image and upload it.

        ``order`` is the :class:`OrderRequest` (identifiers taken from it) or
        its LocalId (then give ``patient_local_id``). JPEG/PNG get EXIF
        ``ImageDescription`` / ``UserComment`` JSON, DICOM gets ``PatientID``,
        ``AccessionNumber``, ``StudyInstanceUID`` and ``ImageComments``; the
        object's metadata gets ``order_local_id`` and ``patient_local_id``
        (no names, no dates of birth). The async client tags in a worker thread.
        """
        if isinstance(order, OrderRequest):
            ids = ExamIdentifiers.from_order(
                order, image_local_id=image_local_id, laterality=laterality
            )
            if patient_local_id is not None or site_local_id is not None:
                ids = ExamIdentifiers(
                    order_local_id=ids.order_local_id,
                    patient_local_id=patient_local_id or ids.patient_local_id,
                    site_local_id=site_local_id or ids.site_local_id,
                    client_guid=ids.client_guid,
                    image_local_id=ids.image_local_id,
                    laterality=ids.laterality,
                    study_instance_uid=ids.study_instance_uid,
                )
        else:
            ids = ExamIdentifiers(
                order_local_id=order,
                patient_local_id=patient_local_id,
                site_local_id=site_local_id,
                client_guid=self.client_guid,
                image_local_id=image_local_id,
                laterality=laterality,
            )
        images = yield Call(self._endpoint, ("images",))
        tag = Call(self._offload, (prepare_exam_upload, source, ids), {"name": name})
        return (yield from upload_exam_image_steps(tag, images, self.receipts))

    # -- gradings ------------------------------------------------------------
    @steps_method
    def submit_grading(
        self,
        grading: GradingInput | None = None,
        *,
        local_id: str | None = None,
        od: EyeGrading | Mapping[str, Any] | None = None,
        os: EyeGrading | Mapping[str, Any] | None = None,
        site_local_id: str | None = None,
        transaction_id: str | None = None,
    ) -> Steps[Sent]:
        """Send a GradingSubmission (test environments) to the gradings queue.

        Pass a whole ``grading`` (model, dict or JSON), or build one from
        ``local_id`` (the order's LocalId), ``od`` / ``os`` and ``site_local_id``.
        """
        if grading is None:
            if not local_id:
                raise ConfigurationError("submit_grading needs a grading or local_id=")
            data: dict[str, Any] = {"LocalId": local_id}
            if site_local_id:
                data["Site"] = {"LocalId": site_local_id}
            for key, eye in (("OD", od), ("OS", os)):
                if eye is not None:
                    data[key] = eye.to_dict() if isinstance(eye, EyeGrading) else dict(eye)
            grading = data
        if isinstance(grading, GradingSubmission):
            parsed = grading
        else:
            data = _as_dict(grading)
            data.setdefault("Version", MODEL_VERSION)
            if "ClientGuid" not in data and self.client_guid is not None:
                data["ClientGuid"] = self.client_guid
            parsed = _parse(GradingSubmission, data, "invalid GradingSubmission")
        _check_grading(parsed)
        txid = transaction_id or str(uuid.uuid4())
        gradings = yield Call(self._endpoint, ("gradings",))
        yield Call(gradings.send, (message_for(parsed, txid),))
        log.info("sent GradingSubmission message_id=%s", txid)
        return Sent(
            message_id=txid,
            transaction_id=txid,
            correlation_id=parsed.local_id,
            message_type="GradingSubmission",
        )

    # -- lifecycle -----------------------------------------------------------
    @steps_method
    def close(self) -> Steps[None]:
        """Close the endpoints this client opened (and its receipts file)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            owned, self._owned = self._owned, []
        # Brokers first: their claim-check store is one of the stores.
        stores = {id(e) for r, e in self._endpoints.items() if _is_store(r)}
        for endpoint in sorted(owned, key=lambda e: id(e) in stores):
            try:
                yield Call(endpoint.close)
            except Exception:
                log.warning("closing %s failed", type(endpoint).__name__, exc_info=True)
        if self._owns_receipts:
            self.receipts.close()


def _is_store(role: str) -> bool:
    return ROLES[role].kind == "store"


def _check_grading(grading: GradingSubmission) -> None:
    """The GradingSubmission rules: an ungradable eye has no findings and one reason at most."""
    errors: list[FieldError] = []
    for key, eye in (("OD", grading.od), ("OS", grading.os)):
        if eye is None:
            continue
        if eye.gradable is False and eye.findings:
            errors.append(
                FieldError(
                    f"{key}.Findings", "ungradable_findings", "an ungradable eye has no findings"
                )
            )
        if eye.ungradable_reasons and len(eye.ungradable_reasons) > 1:
            errors.append(
                FieldError(f"{key}.UngradableReasons", "too_many", "at most one ungradable reason")
            )
        if eye.ungradable_reasons and eye.gradable is not False:
            errors.append(
                FieldError(
                    f"{key}.UngradableReasons",
                    "gradable_with_reason",
                    "ungradable reasons only when Gradable is false",
                )
            )
    if grading.od is None and grading.os is None:
        errors.append(FieldError("OD", "missing", "a grading needs OD and/or OS"))
    if errors:
        raise ValidationError("invalid GradingSubmission", errors)
