"""The IRIS platform stand-in: orders in; events, gradings and results out.

    from iris_cloud.config import Profile
    from iris_cloud_simulator import Simulator

    integrator = Profile.from_dict({...})
    with Simulator(integrator.mirror(), "state/", grading="auto") as sim:
        sim.run()                      # until SIGINT / SIGTERM

The simulator consumes ``orders`` (and ``gradings``) with the core consumer
engine and answers as IRIS does (see ``docs/simulator.md``):

* NW: ``OrderCreationReceipt`` (or a failed one, ``Success`` false, naming the
  missing image or the invalid field paths); Image First: an ``ImageReceipt``
  per referenced image that exists in the images store, then
  ``ReadyForGradingEvent``; Order First: the order waits for images that
  appear in the images store carrying its identifiers (object metadata, EXIF
  or DICOM tags), an ``ImageReceipt`` each, ``ReadyForGradingEvent`` once
  enough have arrived.
* Grading: at once by an :class:`~iris_cloud_simulator.grading.AutoGrader`, or
  (``grading="manual"``) when a ``GradingSubmission`` arrives; then
  ``GradingReceipt``, ``OrderGradedEvent``, an ``OrderResult`` with findings
  and a PDF report on ``results`` (through the claim check when large) and a
  ``ResultsDeliveryReceipt``.
* XO updates an open order (answered by an ``OrderCreationReceipt``), CA
  cancels it (``OrderCancelled``), ResendResult sends the result again
  (``ResultCode`` R). Changes and cancels of closed orders are ignored.
* A body that does not parse is dead-lettered by the consumer with its field
  paths as the reason; when it names a ClientGuid and an Order.LocalId the
  simulator also answers a failed ``OrderCreationReceipt``.

Every decision is stored with its outgoing messages in one SQLite
transaction (:mod:`iris_cloud_simulator.state`), so a restart continues where
the last run stopped and a redelivered message is not applied twice.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from iris_cloud.client import check_order
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, ConsumerStats, Context, IrisApp
from iris_cloud.errors import (
    ConfigurationError,
    FieldError,
    IrisCloudError,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from iris_cloud.logs import get_logger
from iris_cloud.model import (
    EVENT_TYPES,
    MODEL_VERSION,
    EyeGrading,
    GradingSubmission,
    IrisModel,
    OrderControlCode,
    OrderRequest,
    OrderResult,
)
from iris_cloud.ports import Message, MessageBroker, ObjectStore, Sendable, check_object_name
from iris_cloud.tracing import continuing
from iris_cloud.workflows import ExamIdentifiers, identify_exam

from iris_cloud_simulator.grading import AutoGrader, GradingMode, gradings_for
from iris_cloud_simulator.report import render_report
from iris_cloud_simulator.state import OrderRow, State, Transaction, now_iso

__all__ = ["Simulator", "SimulatorStats"]

log = get_logger("iris_cloud_simulator")

RESULT_SCHEMA = (
    "https://cdn.retinalscreenings.com/hosts/iris/schemas/order-results.schema.2.3.1.json"
)
GRADER = {
    "NPI": "1234567893",
    "Taxonomy": "207W00000X",
    "Name": {"Title": "Dr", "First": "Iris", "Last": "Simulator"},
    "Degrees": "MD",
}
"""The grader named in simulated results."""
CPT = {"Code": "92250", "Description": "Fundus photography with interpretation and report"}


@dataclass
class SimulatorStats:
    """What the simulator did since it was created (counters, not persisted)."""

    orders_received: int = 0
    orders_created: int = 0
    orders_failed: int = 0
    orders_updated: int = 0
    orders_cancelled: int = 0
    duplicates: int = 0
    """Messages (or identical orders) already applied: nothing sent again."""
    ignored: int = 0
    """Requests IRIS ignores: changes/cancels of closed orders, gradings of orders not queued."""
    poison: int = 0
    """Bodies that did not parse (dead-lettered by the consumer)."""
    rejected: int = 0
    """Parsable messages of the wrong kind on ``orders`` / ``gradings`` (dead-lettered)."""
    images_received: int = 0
    ready_for_grading: int = 0
    gradings_received: int = 0
    graded: int = 0
    results_sent: int = 0
    resends: int = 0
    messages_sent: int = 0
    send_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _Inbound(MessageBroker):
    """An inbound broker of the simulator, wrapping the profile's.

    It lets the simulator answer a poison order (the consumer dead-letters it;
    this reports it first) and dead-letter a parsable message of the wrong
    kind from a handler (the consumer's later ``complete`` is then skipped).
    """

    def __init__(
        self, inner: MessageBroker, on_poison: Callable[[Message, str, str], None] | None
    ) -> None:
        super().__init__(claim_check=None)
        self.inner = inner
        self.capabilities = inner.capabilities
        self._on_poison = on_poison
        self._rejected: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        raise ConfigurationError("_Inbound wraps an open broker; it has no URL")

    def __repr__(self) -> str:
        return f"_Inbound({self.inner!r})"

    def send(self, messages: Sendable | Iterable[Sendable]) -> list[str]:
        return self.inner.send(messages)

    def _send_batch(self, batch: list[Message]) -> None:
        self.inner.send(batch)

    def receive(self, max_messages: int = 1, wait: float = 0.0) -> list[Message]:
        return self.inner.receive(max_messages, wait)

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return self.inner.receive(max_messages, wait)

    def peek(self, max_messages: int = 1) -> list[Message]:
        return self.inner.peek(max_messages)

    def complete(self, message: Message) -> None:
        with self._lock:
            if id(message) in self._rejected:
                self._rejected.discard(id(message))
                return
        self.inner.complete(message)

    def abandon(self, message: Message, delay: float | None = None) -> None:
        self.inner.abandon(message, delay)

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        if self._on_poison is not None and reason.startswith("invalid message"):
            try:
                self._on_poison(message, reason, description)
            except Exception as exc:
                # Reporting is a courtesy; the dead letter itself must happen.
                log.warning(
                    "could not answer poison message_id=%s: %s",
                    message.message_id,
                    type(exc).__name__,
                )
        self.inner.dead_letter(message, reason, description)

    def reject(self, message: Message, reason: str, description: str = "") -> None:
        """Dead-letter ``message`` from inside a handler."""
        self.inner.dead_letter(message, reason, description)
        with self._lock:
            self._rejected.add(id(message))

    def renew_lock(self, message: Message) -> datetime | None:
        return self.inner.renew_lock(message)

    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return self.inner.receive_dead_letters(max_messages, wait)

    def close(self) -> None:
        self.inner.close()


def _request_hash(order: OrderRequest) -> str:
    return hashlib.sha256(order.to_json().encode("utf-8")).hexdigest()


def _errors_text(errors: Iterable[FieldError]) -> str:
    return "; ".join(str(e) for e in errors)


def _same_guid(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return True
    return a.strip("{}").lower() == b.strip("{}").lower()


class Simulator:
    """An IRIS platform stand-in on the platform (mirror) profile of an integrator.

    Args:
        platform: the platform side's profile (``integrator_profile.mirror()``):
            it receives ``orders`` (and ``gradings``), sends ``events`` and
            ``results``, reads ``images``. An integrator profile is mirrored.
        state_dir: where the SQLite state lives (created if missing).
        grading: ``"auto"`` (grade when ready, by the default
            :class:`AutoGrader`), ``"manual"`` (wait for a GradingSubmission)
            or an :class:`AutoGrader` with your own rules.
        order_first_images: images an Order First order needs before it is
            ready for grading (1 when the order says ``SingleEyeOnly``).
        poll_interval: seconds between looks at the images store (Order First)
            and retries of unsent messages.
        receive_wait: longest receive wait, so that a stop is quick.
    """

    def __init__(
        self,
        platform: Profile,
        state_dir: str | Path,
        *,
        grading: GradingMode | AutoGrader = "auto",
        order_first_images: int = 2,
        poll_interval: float = 0.5,
        receive_wait: float = 1.0,
    ) -> None:
        if platform.side != "platform":
            platform = platform.mirror()
        platform.require("orders", "events", "results")
        if isinstance(grading, AutoGrader):
            self.grader: AutoGrader | None = grading
        elif grading == "auto":
            self.grader = AutoGrader()
        elif grading == "manual":
            self.grader = None
        else:
            raise ConfigurationError(
                f"grading must be 'auto', 'manual' or an AutoGrader, not {grading!r}"
            )
        if order_first_images < 1:
            raise ConfigurationError("order_first_images must be at least 1")
        self.profile = platform
        self.order_first_images = order_first_images
        self.poll_interval = poll_interval
        self.state = State(state_dir)
        self._stats = SimulatorStats()
        self._stats_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._outbox_wake = threading.Event()
        self._outbox_running = False
        self._threads: list[threading.Thread] = []
        self._opened: list[MessageBroker | ObjectStore] = []
        self._closed = False
        try:
            claim = platform.open_store("claim_check") if platform.claim_check else None
            if claim is not None:
                self._opened.append(claim)
            inbound: dict[str, MessageBroker] = {}
            orders = _Inbound(platform.open_broker("orders", claim_check=claim), self._poison)
            self._opened.append(orders)
            inbound["orders"] = orders
            if platform.gradings is not None:
                gradings = _Inbound(platform.open_broker("gradings", claim_check=claim), None)
                self._opened.append(gradings)
                inbound["gradings"] = gradings
            self._outbound: dict[str, MessageBroker] = {}
            for role in ("events", "results"):
                broker = platform.open_broker(role, claim_check=claim)
                self._opened.append(broker)
                self._outbound[role] = broker
            self.images: ObjectStore | None = None
            if platform.images is not None:
                self.images = platform.open_store("images")
                self._opened.append(self.images)
        except BaseException:
            self._close_endpoints()
            self.state.close()
            raise
        app = IrisApp()
        app.on(OrderRequest)(self._on_order)
        app.on(GradingSubmission)(self._on_grading)
        app.fallback(self._on_other)
        self.consumer = Consumer(
            app,
            inbound,
            settings=platform.consumer,
            wait=min(platform.consumer.wait, receive_wait),
        )

    def __repr__(self) -> str:
        return f"Simulator(profile={self.profile.name!r}, state_dir={str(self.state.dir)!r})"

    # -- counters ----------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            setattr(self._stats, name, getattr(self._stats, name) + n)

    def stats(self) -> SimulatorStats:
        """A copy of the counters."""
        with self._stats_lock:
            return SimulatorStats(**self._stats.as_dict())

    def status(self, local_id: str) -> str | None:
        """The status of an order (``AwaitingImages``, ``QueuedForGrading``, ``Complete``,
        ``OrderCancelled``), or ``None`` when the simulator does not know it."""
        row = self.state.order(local_id)
        return row.status if row else None

    # -- running -----------------------------------------------------------------
    def _start_helpers(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._outbox_loop, name="iris-sim-outbox", daemon=True)
        ]
        if self.images is not None:
            self._threads.append(
                threading.Thread(target=self._watch_loop, name="iris-sim-images", daemon=True)
            )
        for t in self._threads:
            t.start()

    def _stop_helpers(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self._threads = []
        self._flush_quietly()

    def run(self) -> int:
        """Run until SIGINT / SIGTERM (or :meth:`stop`); returns 0 after a clean stop."""
        self._start_helpers()
        try:
            return self.consumer.run()
        finally:
            self._stop_helpers()

    def run_until(
        self,
        predicate: Callable[[SimulatorStats], bool] | None = None,
        timeout: float | None = None,
    ) -> SimulatorStats:
        """Run until ``predicate(stats)`` is true, ``timeout`` seconds pass or :meth:`stop`."""
        self._start_helpers()
        try:
            check = None if predicate is None else (lambda _: predicate(self.stats()))
            self.consumer.run_until(check, timeout)
        finally:
            self._stop_helpers()
        return self.stats()

    def step(self, idle: float = 0.3, timeout: float = 10.0) -> SimulatorStats:
        """Process what is waiting, synchronously: images, then messages until ``idle``.

        Looks at the images store once, consumes until no message arrived for
        ``idle`` seconds (at most ``timeout``), looks at the images again and
        sends the outbox. For tests that drive the exchange step by step.
        """
        self._flush_quietly()
        self.scan_images()
        last = [-1, time.monotonic()]

        def quiet(stats: ConsumerStats) -> bool:
            now = time.monotonic()
            settled = (
                stats.completed
                + stats.dead_lettered
                + stats.retried
                + stats.deferred
                + stats.settle_errors
            )
            if stats.received != last[0] or settled < stats.received:
                last[0], last[1] = stats.received, now
                return False
            return now - last[1] >= idle

        self.consumer.run_until(quiet, timeout)
        self.scan_images()
        self._flush_quietly()
        return self.stats()

    def start(self) -> None:
        """Run in background threads until :meth:`stop`."""
        if self._threads:
            raise ConfigurationError("this simulator is already running")
        self._start_helpers()
        runner = threading.Thread(target=self._run_consumer, name="iris-sim-consumer", daemon=True)
        self._threads.append(runner)
        runner.start()

    def _run_consumer(self) -> None:
        try:
            self.consumer.run_until()
        except IrisCloudError as exc:
            log.error("simulator stopped: %s", type(exc).__name__)
            self._stop.set()

    def stop(self) -> None:
        """Stop consuming and watching; in-flight messages are finished. Safe from any thread."""
        self._stop.set()
        self.consumer.stop()
        if threading.current_thread() not in self._threads:
            self._stop_helpers()

    def close(self) -> None:
        """Stop, then close the endpoints and the state database (once)."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        self.consumer.close()
        self._close_endpoints()
        self.state.close()

    def _close_endpoints(self) -> None:
        for endpoint in reversed(self._opened):
            try:
                endpoint.close()
            except Exception as exc:
                log.warning("closing %s failed: %s", type(endpoint).__name__, type(exc).__name__)
        self._opened = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- outbox ------------------------------------------------------------------
    def flush(self) -> int:
        """Send every message waiting in the outbox, oldest first; returns how many."""
        total = 0
        with self._flush_lock:
            while True:
                rows = self.state.outbox(limit=200)
                if not rows:
                    return total
                for role, group in itertools.groupby(rows, key=lambda r: r.role):
                    batch = list(group)
                    messages = [
                        Message(
                            body=r.body,
                            message_id=r.message_id,
                            correlation_id=r.correlation_id,
                            subject=r.subject,
                            properties=r.properties,
                        )
                        for r in batch
                    ]
                    try:
                        self._outbound[role].send(messages)
                    except MessageTooLarge:
                        # Can never succeed: drop it loudly rather than block the outbox.
                        log.error(
                            "%s message(s) to %s too large and no claim_check store: dropped",
                            len(batch),
                            role,
                        )
                        self._count("send_errors", len(batch))
                        self.state.sent([r.id for r in batch])
                        continue
                    self.state.sent([r.id for r in batch])
                    self._count("messages_sent", len(batch))
                    total += len(batch)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except IrisCloudError as exc:
            self._count("send_errors")
            log.warning("sending from the outbox failed (%s); will retry", type(exc).__name__)

    def _flush_soon(self) -> None:
        """Send what a handler just committed, without making the handler wait for a send."""
        if self._outbox_running:
            self._outbox_wake.set()
            return
        # No outbox thread (step mode): flush here unless another thread is at
        # it; that flush, or the one ending the step, picks our rows up.
        if self._flush_lock.acquire(blocking=False):
            self._flush_lock.release()
            self._flush_quietly()

    def _outbox_loop(self) -> None:
        self._outbox_running = True
        try:
            while not self._stop.is_set():
                self._outbox_wake.wait(self.poll_interval)
                self._outbox_wake.clear()
                self._flush_quietly()
        finally:
            self._outbox_running = False

    # -- images (Order First) ------------------------------------------------------
    def scan_images(self) -> int:
        """Look at every object in the images store once; returns how many were new."""
        if self.images is None:
            return 0
        new = 0
        for info in list(self.images.list()):
            if self._on_object(info.name):
                new += 1
        return new

    def _watch_loop(self) -> None:
        assert self.images is not None
        while not self._stop.is_set():
            try:
                for info in self.images.watch(
                    poll_interval=self.poll_interval, stop=self._stop, include_existing=True
                ):
                    self._on_object(info.name)
            except PermissionDenied as exc:
                log.error("cannot watch the images store: %s", type(exc).__name__)
                return
            except Exception as exc:
                log.warning("watching the images store failed (%s); retrying", type(exc).__name__)
                self._stop.wait(self.poll_interval)

    def _on_object(self, name: str) -> bool:
        if self.state.seen(name):
            return False
        assert self.images is not None
        try:
            check_object_name(name)
        except ConfigurationError:
            # A key such as "a/../b" exists on S3 but no store call takes it:
            # reading it would raise on every scan and stall the watcher.
            self._skip_refused(name)
            return False
        ids: ExamIdentifiers | None = None
        if self.state.attached(name):
            # An Image First upload its order referenced: no need to read it.
            with self.state.transaction() as tx:
                tx.mark_seen(name)
            return True
        try:
            ids = identify_exam(self.images, name)
        except ConfigurationError:
            # A name this store refuses to open (e.g. one resolving outside a
            # file:// root); never retried.
            self._skip_refused(name)
            return False
        except NotFound:
            ids = None
        except (ValidationError, ValueError, OSError) as exc:
            log.warning("cannot read identifiers of an image: %s", type(exc).__name__)
            ids = None
        with self.state.transaction() as tx:
            if tx.seen(name):
                return False
            tx.mark_seen(name)
            if ids is None:
                return True
            row = tx.order(ids.order_local_id)
            if row is None:
                tx.add_pending(name, ids.order_local_id, asdict(ids))
                return True
            # What this image brings (receipts, the grading, the result) is the order's.
            with continuing(tx.order_trace(row.local_id)):
                self._attach_tagged(tx, row, name, asdict(ids))
        self._flush_soon()
        return True

    def _skip_refused(self, name: str) -> None:
        log.warning("skipping an object of the images store whose name the store refuses")
        self._count("ignored")
        with self.state.transaction() as tx:
            tx.mark_seen(name)

    def _attach_tagged(
        self, tx: Transaction, row: OrderRow, name: str, ids: Mapping[str, Any]
    ) -> None:
        # Re-read: an earlier image of the same batch may have completed the order.
        current = tx.order(row.local_id)
        row = current if current is not None else row
        if not row.is_open:
            self._count("ignored")
            log.info("image for closed order %s ignored", row.local_id)
            return
        patient = ids.get("patient_local_id")
        if patient and row.patient_local_id and patient != row.patient_local_id:
            self._count("ignored")
            log.warning("image for order %s names another patient: ignored", row.local_id)
            return
        if not _same_guid(ids.get("client_guid"), row.client_guid):
            self._count("ignored")
            log.warning("image for order %s names another organization: ignored", row.local_id)
            return
        image = tx.add_image(
            row.local_id,
            name,
            image_local_id=ids.get("image_local_id") or name,
            laterality=ids.get("laterality"),
            taken=None,
        )
        if image is None:
            return
        self._count("images_received")
        self._event(
            tx,
            "ImageReceipt",
            row,
            ImageLocalId=image.image_local_id,
            IrisImageId=image.iris_image_id,
        )
        self._maybe_ready(tx, row.local_id)

    def _missing_images(self, order: OrderRequest) -> list[FieldError]:
        if self.images is None or order.camera is None:
            return []
        missing = []
        for i, image in enumerate(order.camera.images or []):
            blob = image.azure_blob_storage
            if blob is None or not blob.file_name:
                continue
            path = f"Camera.Images[{i}].AzureBlobStorage.FileName"
            try:
                found = self.images.exists(blob.file_name)
            except ConfigurationError:
                found = False
            if not found:
                missing.append(
                    FieldError(
                        path,
                        "image_missing",
                        f"image {blob.file_name!r} does not exist in container "
                        f"{blob.container or self.images.container!r}",
                    )
                )
        return missing

    # -- events --------------------------------------------------------------------
    def _event(
        self,
        tx: Transaction,
        kind: str,
        row: OrderRow | None,
        *,
        success: bool = True,
        error: str | None = None,
        order_local_id: str | None = None,
        patient_local_id: str | None = None,
        **extra: Any,
    ) -> None:
        txid = str(uuid.uuid4()).upper()
        local_id = row.local_id if row else order_local_id
        data: dict[str, Any] = {
            "TransactionId": txid,
            "Timestamp": now_iso(),
            "IrisOrderId": row.iris_order_id if row else 0,
            "OrderLocalId": local_id,
        }
        if kind != "ResultsDeliveryReceipt":
            data["PatientLocalId"] = row.patient_local_id if row else patient_local_id
        data.update(
            {
                "Success": success,
                "ErrorMessage": error,
                "ResultObjectType": kind,
                "Version": MODEL_VERSION,
                **extra,
            }
        )
        body = EVENT_TYPES[kind].model_validate(data).to_json().encode("utf-8")
        tx.enqueue(
            "events",
            txid,
            body,
            correlation_id=local_id,
            subject=kind,
            properties={"MessageType": kind, "OrderLocalId": local_id or ""},
        )

    def _fail(self, tx: Transaction, order: OrderRequest, error: str) -> None:
        self._count("orders_failed")
        log.info("order %s (%s) refused", order.order.local_id, str(order.order_control_code))
        self._event(
            tx,
            "OrderCreationReceipt",
            None,
            success=False,
            error=error,
            order_local_id=order.order.local_id,
            patient_local_id=order.patient.local_id if order.patient else None,
        )

    # -- handlers ------------------------------------------------------------------
    def _on_order(self, order: OrderRequest, ctx: Context) -> None:
        self._count("orders_received")
        code = order.order_control_code
        missing: list[FieldError] = []
        if code in (OrderControlCode.NEW, OrderControlCode.CHANGE):
            # Reads of the store happen before the state lock is taken.
            missing = self._missing_images(order)
        with self.state.transaction() as tx:
            if tx.processed(ctx.message.message_id):
                self._count("duplicates")
                return
            tx.mark_processed(ctx.message.message_id)
            if code == OrderControlCode.NEW:
                self._create(tx, order, missing)
            elif code == OrderControlCode.CHANGE:
                self._change(tx, order, missing)
            elif code == OrderControlCode.CANCEL:
                self._cancel(tx, order)
            elif code == OrderControlCode.RESEND_RESULT:
                self._resend(tx, order)
            else:
                self._fail(tx, order, "OrderControlCode: unknown code (NW, XO, CA, ResendResult)")
        self._flush_soon()

    def _create(self, tx: Transaction, order: OrderRequest, missing: list[FieldError]) -> None:
        local_id = order.order.local_id
        try:
            check_order(order)
        except ValidationError as exc:
            self._fail(tx, order, f"invalid OrderRequest: {_errors_text(exc.errors)}")
            return
        digest = _request_hash(order)
        existing = tx.order(local_id)
        if existing is not None:
            if existing.request_hash == digest:
                self._count("duplicates")
                log.info("order %s received again: duplicate ignored", local_id)
                return
            self._fail(
                tx,
                order,
                "Order.LocalId: an order with this LocalId already exists; send XO to change it",
            )
            return
        if missing:
            self._fail(tx, order, _errors_text(missing))
            return
        referenced = [
            image
            for image in (order.camera.images or [] if order.camera else [])
            if image.azure_blob_storage is not None and image.azure_blob_storage.file_name
        ]
        row = OrderRow(
            local_id=local_id,
            iris_order_id=tx.next_id("iris_order_id"),
            client_guid=order.client_guid,
            site_local_id=order.site.local_id if order.site else None,
            patient_local_id=order.patient.local_id if order.patient else None,
            status="AwaitingImages",
            workflow="image_first" if referenced else "order_first",
            request=order.to_json(),
            request_hash=digest,
            grading=None,
            created_at=now_iso(),
            queued_at=None,
            graded_at=None,
        )
        tx.insert_order(row)
        self._count("orders_created")
        log.info("order %s created (%s)", local_id, row.workflow)
        self._event(tx, "OrderCreationReceipt", row)
        self._attach_referenced(tx, row, order)
        for name, ids in tx.take_pending(local_id):
            self._attach_tagged(tx, row, name, ids)
        self._maybe_ready(tx, local_id)

    def _attach_referenced(self, tx: Transaction, row: OrderRow, order: OrderRequest) -> None:
        for image in order.camera.images or [] if order.camera else []:
            blob = image.azure_blob_storage
            if blob is None or not blob.file_name:
                continue
            added = tx.add_image(
                row.local_id,
                blob.file_name,
                image_local_id=image.local_id or blob.file_name,
                laterality=str(image.laterality) if image.laterality else None,
                taken=image.taken.isoformat() if image.taken else None,
            )
            if added is None:
                continue
            self._count("images_received")
            self._event(
                tx,
                "ImageReceipt",
                row,
                ImageLocalId=added.image_local_id,
                IrisImageId=added.iris_image_id,
            )

    def _change(self, tx: Transaction, order: OrderRequest, missing: list[FieldError]) -> None:
        local_id = order.order.local_id
        try:
            check_order(order)
        except ValidationError as exc:
            self._fail(tx, order, f"invalid OrderRequest: {_errors_text(exc.errors)}")
            return
        row = tx.order(local_id)
        if row is None:
            self._fail(tx, order, "Order.LocalId: no order with this LocalId exists")
            return
        if not row.is_open:
            self._count("ignored")
            log.info("change of closed order %s ignored", local_id)
            return
        if not _same_guid(order.client_guid, row.client_guid):
            self._count("ignored")
            log.warning("change of order %s by another organization ignored", local_id)
            return
        digest = _request_hash(order)
        if digest == row.request_hash:
            self._count("duplicates")
            return
        old = OrderRequest.model_validate_json(row.request)
        errors = []
        if [str(e) for e in old.order.evaluation_types or []] != [
            str(e) for e in order.order.evaluation_types or []
        ]:
            errors.append("Order.EvaluationTypes: cannot change in an update (XO)")
        if (
            old.patient is not None
            and order.patient is not None
            and old.patient.local_id != order.patient.local_id
        ):
            errors.append("Patient.LocalId: cannot change in an update (XO)")
        if errors or missing:
            self._fail(tx, order, "; ".join([*errors, _errors_text(missing)]).strip("; "))
            return
        tx.update_order(
            local_id,
            request=order.to_json(),
            request_hash=digest,
            site_local_id=order.site.local_id if order.site else row.site_local_id,
        )
        self._count("orders_updated")
        log.info("order %s updated", local_id)
        self._event(tx, "OrderCreationReceipt", row)
        self._attach_referenced(tx, row, order)
        self._maybe_ready(tx, local_id)

    def _cancel(self, tx: Transaction, order: OrderRequest) -> None:
        local_id = order.order.local_id
        row = tx.order(local_id)
        if row is None or not row.is_open or not _same_guid(order.client_guid, row.client_guid):
            self._count("ignored")
            log.info("cancel of unknown or closed order %s ignored", local_id)
            return
        tx.update_order(local_id, status="OrderCancelled")
        self._count("orders_cancelled")
        log.info("order %s cancelled", local_id)
        self._event(tx, "OrderCancelled", row)

    def _resend(self, tx: Transaction, order: OrderRequest) -> None:
        local_id = order.order.local_id
        row = tx.order(local_id)
        if (
            row is None
            or row.status != "Complete"
            or not _same_guid(order.client_guid, row.client_guid)
        ):
            self._count("ignored")
            log.info("resend for order %s without a result ignored", local_id)
            return
        self._count("resends")
        self._deliver(tx, row, "R")

    def _on_grading(self, grading: GradingSubmission, ctx: Context) -> None:
        self._count("gradings_received")
        with self.state.transaction() as tx:
            if tx.processed(ctx.message.message_id):
                self._count("duplicates")
                return
            tx.mark_processed(ctx.message.message_id)
            row = tx.order(grading.local_id)
            # IRIS ignores gradings of unknown or closed orders and of orders
            # without images, and sends no failure event.
            if (
                row is None
                or row.status != "QueuedForGrading"
                or not _same_guid(grading.client_guid, row.client_guid)
            ):
                self._count("ignored")
                log.info("grading for order %s ignored (not queued for grading)", grading.local_id)
                return
            self._grade(tx, row.local_id, grading.od, grading.os)
        self._flush_soon()

    def _on_other(self, message: IrisModel, ctx: Context) -> None:
        self._count("rejected")
        reason = f"unexpected message: {ctx.kind} on {ctx.source}"
        log.warning("message_id=%s: %s", ctx.message.message_id, reason)
        broker = ctx.broker
        if isinstance(broker, _Inbound):
            broker.reject(ctx.message, reason, "the simulator takes OrderRequests and gradings")

    def _poison(self, message: Message, reason: str, description: str) -> None:
        """Answer a body that does not parse with a failed receipt, if it names an order."""
        self._count("poison")
        try:
            data = json.loads(message.body)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        guid = data.get("ClientGuid")
        order = data.get("Order")
        local_id = order.get("LocalId") if isinstance(order, dict) else None
        # Without a ClientGuid IRIS sends no failure event.
        if not (isinstance(guid, str) and guid and isinstance(local_id, str) and local_id):
            return
        patient = data.get("Patient")
        patient_id = patient.get("LocalId") if isinstance(patient, dict) else None
        detail = "; ".join(
            line.strip() for line in description.splitlines()[1:] if line.strip()
        ) or reason.removeprefix("invalid message: ")
        with self.state.transaction() as tx:
            if tx.processed(message.message_id):
                return
            tx.mark_processed(message.message_id)
            self._count("orders_failed")
            self._event(
                tx,
                "OrderCreationReceipt",
                None,
                success=False,
                error=f"invalid OrderRequest: {detail}",
                order_local_id=local_id,
                patient_local_id=patient_id if isinstance(patient_id, str) else None,
            )
        self._flush_soon()

    # -- grading and results ---------------------------------------------------------
    def _required_images(self, tx: Transaction, row: OrderRow) -> int:
        request = OrderRequest.model_validate_json(row.request)
        if row.workflow == "image_first":
            refs = [
                i
                for i in (request.camera.images or [] if request.camera else [])
                if i.azure_blob_storage is not None and i.azure_blob_storage.file_name
            ]
            return max(len(refs), 1)
        return 1 if request.order.single_eye_only else self.order_first_images

    def _maybe_ready(self, tx: Transaction, local_id: str) -> None:
        row = tx.order(local_id)
        if row is None or row.status != "AwaitingImages":
            return
        if len(tx.images(local_id)) < self._required_images(tx, row):
            return
        tx.update_order(local_id, status="QueuedForGrading", queued_at=now_iso())
        self._count("ready_for_grading")
        self._event(tx, "ReadyForGradingEvent", row)
        if self.grader is not None:
            od, os = self.grader.grade(local_id)
            lateralities = {i.laterality for i in tx.images(local_id)}
            if None not in lateralities and "OU" not in lateralities:
                # IRIS omits an eye that had no images.
                od = od if "OD" in lateralities else None
                os = os if "OS" in lateralities else None
            self._grade(tx, local_id, od, os)

    def _grade(
        self, tx: Transaction, local_id: str, od: EyeGrading | None, os: EyeGrading | None
    ) -> None:
        grading = {
            "OD": od.to_dict() if od is not None else None,
            "OS": os.to_dict() if os is not None else None,
        }
        tx.update_order(
            local_id, status="Complete", grading=json.dumps(grading), graded_at=now_iso()
        )
        row = tx.order(local_id)
        assert row is not None
        self._count("graded")
        log.info("order %s graded", local_id)
        self._event(tx, "GradingReceipt", row)
        self._event(tx, "OrderGradedEvent", row)
        self._deliver(tx, row, "F")

    def _deliver(self, tx: Transaction, row: OrderRow, result_code: str) -> None:
        txid = str(uuid.uuid4()).upper()
        body = self.result_body(tx, row, result_code, txid)
        tx.enqueue(
            "results",
            txid,
            body,
            correlation_id=row.local_id,
            subject="OrderResult",
            properties={
                "MessageType": "OrderResult",
                "OrderLocalId": row.local_id,
                "ResultCode": result_code,
            },
        )
        self._count("results_sent")
        self._event(
            tx,
            "ResultsDeliveryReceipt",
            row,
            TimeDelivered=now_iso(),
            DeliveryType="Queue",
            Endpoint="results",
            TransmissionStatus="Delivered",
        )

    def result_body(self, tx: Transaction, row: OrderRow, result_code: str, txid: str) -> bytes:
        """The OrderResult JSON for a graded order, with its PDF report embedded."""
        request = OrderRequest.model_validate_json(row.request)
        req = request.to_dict()
        grading = json.loads(row.grading or "{}")
        od = EyeGrading.model_validate(grading["OD"]) if grading.get("OD") else None
        os = EyeGrading.model_validate(grading["OS"]) if grading.get("OS") else None
        images = tx.images(row.local_id)
        camera = {k: v for k, v in (req.get("Camera") or {}).items() if k not in ("Images", "Name")}
        by_eye = {
            side: [i for i in images if i.laterality in (side, "OU")] for side in ("OD", "OS")
        }
        taken = [i.taken for i in images if i.taken]
        serviced = min(taken) if taken else (images[0].received if images else row.created_at)
        order = req.get("Order") or {}
        patient = req.get("Patient") or {}
        genders = patient.get("Genders") or []
        gender = patient.get("Gender") or next(
            (g.get("Gender") for g in genders if g.get("Context") == "BirthGender"),
            genders[0].get("Gender") if genders else None,
        )
        patient_key = f"{(row.client_guid or '').lower()}/{row.patient_local_id}"
        operator = req.get("CameraOperator") or {}
        data: dict[str, Any] = {
            "$schema": RESULT_SCHEMA,
            "Version": MODEL_VERSION,
            "Timestamp": now_iso(),
            "TransactionId": txid,
            "ResultCode": result_code,
            "Site": {"LocalId": row.site_local_id},
            "ImageDetails": {
                "TotalCount": len(images),
                "RightEyeCount": len(by_eye["OD"]),
                "RightEyeOriginalCount": len(by_eye["OD"]),
                "RightEyeEnhancedCount": 0,
                "LeftEyeCount": len(by_eye["OS"]),
                "LeftEyeOriginalCount": len(by_eye["OS"]),
                "LeftEyeEnhancedCount": 0,
                "Preferred": False,
                "SingleEyeOnly": bool(order.get("SingleEyeOnly")),
            },
            "Images": [
                {
                    "LocalId": i.image_local_id,
                    "Taken": i.taken,
                    "Received": i.received,
                    "FileName": i.name,
                    "Laterality": i.laterality,
                    "ImageContext": "Primary",
                    "Camera": camera or None,
                }
                for i in images
            ],
            "Order": {
                "PatientOrderId": row.iris_order_id,
                "Status": "Complete",
                "LocalId": row.local_id,
                "EvaluationTypes": order.get("EvaluationTypes"),
                "ScheduledTime": order.get("ScheduledTime"),
                "CreatedTime": row.created_at,
                "ServicedTime": serviced,
                "DepartmentId": order.get("DepartmentId"),
                "EncounterNumber": order.get("EncounterNumber"),
                "StudyInstanceUniqueId": order.get("StudyInstanceUniqueId"),
                "OrderableIdentifier": order.get("OrderableIdentifier"),
                "AdditionalInfo": order.get("AdditionalInfo"),
                "State": order.get("State"),
                "SingleEyeOnly": order.get("SingleEyeOnly"),
                "MissingEyeReason": order.get("MissingEyeReason"),
                "Expedite": bool(order.get("Urgent")),
            },
            "Patient": {
                "PatientId": int(hashlib.sha256(patient_key.encode()).hexdigest()[:7], 16),
                "LocalId": row.patient_local_id,
                "Name": patient.get("Name"),
                "Dob": patient.get("Dob"),
                "Gender": gender,
                "Genders": genders or None,
                "Phone": patient.get("Phone"),
            },
            "OrderingProvider": req.get("OrderingProvider"),
            "ReferringProvider": req.get("ReferringProvider"),
            "Gradings": gradings_for(
                od,
                os,
                graded_time=row.graded_at or now_iso(),
                queued_time=row.queued_at,
                provider=GRADER,
            ),
            "CameraOperator": {
                "UserName": req.get("CameraOperatorUserName")
                or operator.get("Email")
                or req.get("UserNameSubmitting"),
                "Name": operator.get("Name"),
                "Notes": [],
            },
            "HealthPlan": req.get("HealthPlan"),
            "Cpt": CPT,
        }
        pdf = render_report(data)
        data["ResultsDocument"] = {
            "Type": "PDF",
            "Encoding": "Base64",
            "Content": base64.b64encode(pdf).decode("ascii"),
        }
        return OrderResult.model_validate(data).to_json().encode("utf-8")
