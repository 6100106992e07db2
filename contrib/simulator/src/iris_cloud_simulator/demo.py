"""``iris-cloud demo``: the whole IRIS exchange on this machine, in seconds.

Registered by this distribution (``iris-cloud-simulator``, or ``iris-cloud[demo]``)
through the ``iris_cloud_register_commands`` hook: core has no demo of its own.

On the local provider (``local://`` queues and ``file://`` stores in a
temporary or given directory) it starts the IRIS simulator in a background
thread, then plays the integrator with :class:`~iris_cloud.client.IrisClient`:

* Image First orders: two JPEG images uploaded first, the order references them;
* Order First orders: the order first, then a DICOM (right eye) and a JPEG
  (left eye) tagged with the order's identifiers (``upload_exam_image``);
* one order changed (XO, a corrected patient name) before its images arrive;
* one order cancelled (CA) before its images arrive.

A consumer listens for events and results, saves every result's PDF with
:func:`~iris_cloud.workflows.save_result`, and the run ends with a summary
table and the saved paths. It exits 0 when every expected event and result
arrived, 1 (naming what is missing) when the timeout passed first.
"""

from __future__ import annotations

import copy
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from iris_cloud.errors import IrisCloudError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from iris_cloud.client import IrisClient
    from iris_cloud.config import Profile
    from iris_cloud.model import Event, OrderResult

__all__ = ["DemoOrder", "demo_command", "run_demo"]

DEMO_CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
"""The ClientGuid of the documented samples, used as the demo organization."""

_SHORT = {
    "OrderCreationReceipt": "created",
    "ImageReceipt": "image",
    "ReadyForGradingEvent": "ready",
    "GradingReceipt": "grading",
    "OrderGradedEvent": "graded",
    "ResultsDeliveryReceipt": "delivered",
    "OrderCancelled": "cancelled",
}


@dataclass
class DemoOrder:
    """One order of the demo and what arrived for it."""

    local_id: str
    workflow: str
    """``Image First``, ``Order First``, ``Order First + XO`` or ``cancelled (CA)``."""
    expect_result: bool = True
    events: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    result_code: str | None = None
    findings: str = ""
    pdf: str | None = None
    created: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        """Whether everything this order should produce has arrived."""
        if self.failures:
            return True
        if not self.expect_result:
            return "OrderCancelled" in self.events
        return self.pdf is not None and "ResultsDeliveryReceipt" in self.events

    def events_text(self) -> str:
        """The events seen, in order, repeats collapsed (``image x2``)."""
        out: list[str] = []
        counts: list[int] = []
        for name in self.events:
            short = _SHORT.get(name, name)
            if out and out[-1] == short:
                counts[-1] += 1
            else:
                out.append(short)
                counts.append(1)
        return " > ".join(f"{s} x{n}" if n > 1 else s for s, n in zip(out, counts, strict=True))


def _profile(base: Path) -> Profile:
    from iris_cloud.config import Profile

    queues = f"local://{base / 'queues'}"
    return Profile.from_dict(
        {
            "client_guid": DEMO_CLIENT_GUID,
            "orders": f"{queues}?queue=orders",
            "events": f"{queues}?queue=events",
            "results": f"{queues}?queue=results",
            "gradings": f"{queues}?queue=gradings",
            "images": f"file://{base / 'images'}",
            "results_store": f"file://{base / 'results'}",
            "claim_check": f"file://{base / 'claim-check'}",
            "consumer": {"wait": 0.2, "concurrency": 4, "backoff_initial": 0.1},
        },
        name="demo",
        source="iris-cloud demo",
    )


def _findings(result: OrderResult) -> str:
    gradings = result.gradings
    if gradings is None:
        return "-"
    parts = []
    for side, eye in (("OD", gradings.od), ("OS", gradings.os)):
        if eye is None:
            continue
        if eye.gradable is False:
            parts.append(f"{side} ungradable")
            continue
        dr = next(
            (f.result for f in eye.findings or [] if f.finding == "Diabetic Retinopathy"), None
        )
        parts.append(f"{side} {dr or 'no pathology'}")
    if gradings.dx_codes:
        parts.append(f"({', '.join(gradings.dx_codes)})")
    return " ".join(parts) or "-"


class _Exchange:
    """The integrator side of the demo: submits orders and records what comes back."""

    def __init__(self, base: Path, iris: IrisClient, log: Callable[[str], None]) -> None:
        self.base = base
        self.iris = iris
        self.log = log
        self.orders: dict[str, DemoOrder] = {}
        self.lock = threading.Lock()
        self.changed = threading.Event()

    # -- listening -------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        local_id = event.order_local_id or ""
        with self.lock:
            order = self.orders.get(local_id)
            if order is None:
                return
            order.events.append(event.result_object_type)
            if event.result_object_type == "OrderCreationReceipt":
                if event.success is False:
                    order.failures.append(event.error_message or "order refused")
                order.created.set()
        self.log(f"{local_id:<14} {event.result_object_type}")
        self.changed.set()

    def on_result(self, result: OrderResult) -> None:
        from iris_cloud.workflows import save_result

        local_id = result.order.local_id if result.order and result.order.local_id else ""
        with self.lock:
            order = self.orders.get(local_id)
        if order is None:
            return
        path = save_result(result, self.base / "results")
        with self.lock:
            order.result_code = str(result.result_code) if result.result_code else None
            order.findings = _findings(result)
            order.pdf = path
        self.log(f"{local_id:<14} OrderResult {order.result_code or '-'} saved")
        self.changed.set()

    # -- submitting ------------------------------------------------------------
    def _add(self, local_id: str, workflow: str, expect_result: bool = True) -> DemoOrder:
        order = DemoOrder(local_id, workflow, expect_result)
        with self.lock:
            self.orders[local_id] = order
        return order

    def _wait_created(self, order: DemoOrder, deadline: float) -> bool:
        return order.created.wait(max(0.0, deadline - time.monotonic()))

    def image_first(self, n: int) -> None:
        """Upload two JPEGs, then an order that references them."""
        from iris_cloud_simulator.samples import jpeg_image, new_local_id, sample_order

        local_id = new_local_id("IF")
        right = self.iris.upload_image(jpeg_image(2 * n))
        left = self.iris.upload_image(jpeg_image(2 * n + 1))
        images = [
            right.image(local_id=f"{local_id}-OD", laterality="OD").to_dict(),
            left.image(local_id=f"{local_id}-OS", laterality="OS").to_dict(),
        ]
        self._add(local_id, "Image First")
        self.iris.submit_order(sample_order(local_id, images=images))

    def _upload_exam(self, request: dict[str, Any]) -> None:
        from iris_cloud.model import OrderRequest

        from iris_cloud_simulator.samples import dicom_image, jpeg_image

        model = OrderRequest.model_validate(request)
        local_id = model.order.local_id
        self.iris.upload_exam_image(
            dicom_image(), order=model, laterality="OD", image_local_id=f"{local_id}-OD"
        )
        self.iris.upload_exam_image(
            jpeg_image(7), order=model, laterality="OS", image_local_id=f"{local_id}-OS"
        )

    def order_first(self) -> None:
        """Send the order, then upload a tagged DICOM and a tagged JPEG."""
        from iris_cloud_simulator.samples import new_local_id, sample_order

        request = sample_order(new_local_id("OF"))
        self._add(request["Order"]["LocalId"], "Order First")
        self.iris.submit_order(request)
        self._upload_exam(request)

    def updated(self, deadline: float) -> None:
        """An Order First order changed (XO) once IRIS confirmed it, then its images."""
        from iris_cloud_simulator.samples import new_local_id, sample_order

        request = sample_order(new_local_id("XO"), first_name="Jon")
        order = self._add(request["Order"]["LocalId"], "Order First + XO")
        self.iris.submit_order(request)
        if not self._wait_created(order, deadline):
            return
        change = copy.deepcopy(request)
        change["OrderControlCode"] = "XO"
        change["Patient"]["Name"] = {"First": "John", "Last": "Doe"}
        self.iris.update_order(change)
        self._upload_exam(change)

    def cancelled(self, deadline: float) -> None:
        """An Order First order cancelled (CA) once IRIS confirmed it."""
        from iris_cloud_simulator.samples import new_local_id, sample_order

        request = sample_order(new_local_id("CA"))
        order = self._add(request["Order"]["LocalId"], "cancelled (CA)", expect_result=False)
        self.iris.submit_order(request)
        if self._wait_created(order, deadline):
            self.iris.cancel_order(order.local_id)

    def finished(self) -> int:
        """How many orders have everything they should."""
        with self.lock:
            return sum(1 for o in self.orders.values() if o.done)


def run_demo(base: Path, count: int, timeout: float) -> tuple[list[DemoOrder], bool]:
    """Run the demo in ``base`` with ``count`` regular orders; returns the orders and success."""
    from iris_cloud.cli.common import console, plain
    from iris_cloud.client import IrisClient
    from iris_cloud.consumer import Consumer, IrisApp
    from iris_cloud.model import Event, OrderResult
    from iris_cloud.private import private_dir

    from iris_cloud_simulator import Simulator

    # Queues, images, results and the simulator's state: all hold sample PHI.
    private_dir(base)
    profile = _profile(base)
    total = count + 2
    deadline = time.monotonic() + timeout
    simulator = Simulator(profile.mirror(), base / "simulator", poll_interval=0.1)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with simulator, IrisClient(profile) as iris, progress:
        exchange = _Exchange(base, iris, lambda line: progress.console.print(plain(line)))
        app = IrisApp()
        app.on(Event)(exchange.on_event)
        app.on(OrderResult)(exchange.on_result)
        consumer = Consumer.from_profile(app, profile, roles=("events", "results"))
        listener = threading.Thread(target=consumer.run_until, name="demo-listener", daemon=True)
        task = progress.add_task("orders done", total=total)
        simulator.start()
        listener.start()
        try:
            image_first = (count + 1) // 2
            for n in range(image_first):
                exchange.image_first(n)
            for _ in range(count - image_first):
                exchange.order_first()
            exchange.updated(deadline)
            exchange.cancelled(deadline)
            while time.monotonic() < deadline:
                done = exchange.finished()
                progress.update(task, completed=done)
                if done >= total:
                    break
                exchange.changed.wait(0.1)
                exchange.changed.clear()
        finally:
            consumer.stop()
            listener.join()
            consumer.close()
            simulator.stop()
        progress.update(task, completed=exchange.finished())
    orders = list(exchange.orders.values())
    ok = len(orders) == total and all(o.done and not o.failures for o in orders)
    return orders, ok


def _summary(orders: list[DemoOrder]) -> Table:
    from iris_cloud.cli.common import plain

    table = Table(title="IRIS demo: what came back", title_justify="left")
    table.add_column("order")
    table.add_column("workflow")
    table.add_column("events seen")
    table.add_column("result")
    table.add_column("findings")
    for o in orders:
        table.add_row(
            plain(o.local_id),
            o.workflow,
            plain(o.events_text() or "-"),
            plain(o.result_code or "-"),
            plain("; ".join(o.failures) or o.findings or "-"),
        )
    return table


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for queues, images, results and simulator state (default: a new temp dir).",
)
@click.option(
    "--orders",
    "count",
    type=click.IntRange(min=1, max=200),
    default=4,
    show_default=True,
    help="Regular orders to send (half Image First, half Order First), besides one "
    "changed and one cancelled order.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for every event and result.",
)
def demo_command(directory: Path | None, count: int, timeout: float) -> None:
    """Run the whole IRIS exchange locally against the built-in simulator.

    Sends Image First and Order First orders (with JPEG and DICOM images), a
    change and a cancellation, listens for events and results, saves the PDF
    reports and prints a summary. No cloud account needed.
    """
    # Imported here: iris_cloud.cli loads the plugins, and so this module, when imported.
    from iris_cloud.cli.common import console, err_console, markup

    base = (directory or Path(tempfile.mkdtemp(prefix="iris-cloud-demo-"))).resolve()
    console.print(
        markup("IRIS demo in [bold]{}[/] (local provider, simulator in the background)", base)
    )
    started = time.monotonic()
    try:
        orders, ok = run_demo(base, count, timeout)
    except (IrisCloudError, OSError) as exc:
        err_console.print(markup("[red]demo failed: {}:[/] {}", type(exc).__name__, exc))
        raise SystemExit(1) from None
    console.print(_summary(orders))
    saved = [o.pdf for o in orders if o.pdf]
    if saved:
        console.print(markup("[bold]saved reports[/]"))
        for path in saved:
            console.print(f"  {path}")
    elapsed = time.monotonic() - started
    if not ok:
        missing = [o for o in orders if not o.done or o.failures]
        err_console.print(markup("[red]demo incomplete after {}s:[/]", f"{elapsed:.1f}"))
        for o in missing:
            what = "; ".join(o.failures) or (
                "no result" if o.expect_result else "no OrderCancelled"
            )
            err_console.print(
                f"  {o.local_id} ({o.workflow}): {what}; events seen: {o.events_text() or 'none'}"
            )
        raise SystemExit(1)
    console.print(
        markup(
            "[green]done[/] in {}s: {} orders, {} reports",
            f"{elapsed:.1f}",
            len(orders),
            len(saved),
        )
    )
