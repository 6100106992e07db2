"""One trace from submit_order through the simulator to the saved PDF (mem:// and local://)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from iris_cloud.client import IrisClient
from iris_cloud.config import Profile
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.model import IrisModel, OrderRequest, OrderResult
from iris_cloud.testing.spans import SpanRecorder
from iris_cloud.workflows.results import save_result
from iris_cloud_simulator import AutoGrader, Simulator
from iris_cloud_simulator.samples import dicom_image, jpeg_image, new_local_id, sample_order


def test_trace_runs_from_submit_order_to_the_saved_pdf(
    make_simulator: Callable[..., Simulator],
    iris: IrisClient,
    integrator: Profile,
    tmp_path: Path,
    spans: SpanRecorder,
) -> None:
    local_id = new_local_id()
    sim = make_simulator(grading=AutoGrader(table={local_id: ("Mild", "None")}))
    image = iris.upload_image(jpeg_image(1))
    order = sample_order(
        local_id, images=[image.image(local_id=f"{local_id}-OD", laterality="OD").to_dict()]
    )
    sent = iris.submit_order(order)
    sim.step()

    saved: list[str | None] = []
    app = IrisApp()

    @app.on(OrderResult)
    def save(result: OrderResult, ctx: Context) -> None:
        saved.append(save_result(result, tmp_path / "results"))

    @app.fallback
    def other(message: IrisModel, ctx: Context) -> None:
        pass

    with Consumer.from_profile(app, integrator, wait=0.1) as consumer:
        consumer.run_until(lambda s: s.completed >= 7, timeout=20)
    assert len(saved) == 1 and saved[0] is not None

    [order_send] = spans.named("send", {"messaging.message.id": sent.message_id})
    trace_id = order_send.context.trace_id
    by_id = {s.context.span_id: s for s in spans.finished}

    def parent(span: Any) -> Any:
        return by_id[span.parent.span_id]

    # The simulator handled the order as a child of its send ...
    [sim_handle] = spans.named("handle", {"messaging.message.id": sent.message_id})
    assert parent(sim_handle) is order_send
    # ... and every event and the result it sent went on in that trace, to the
    # integrator's handlers and the save of the PDF.
    handles = [h for h in spans.named("handle") if h is not sim_handle]
    kinds = sorted(str((h.attributes or {})["iris.message.kind"]) for h in handles)
    assert kinds == sorted(
        [
            "event:OrderCreationReceipt",
            "event:ImageReceipt",
            "event:ReadyForGradingEvent",
            "event:GradingReceipt",
            "event:OrderGradedEvent",
            "event:ResultsDeliveryReceipt",
            "result",
        ]
    )
    for handle in handles:
        assert handle.context.trace_id == trace_id
        assert (handle.attributes or {})["iris.outcome"] == "completed"
        # Sent from the simulator's outbox, as a child of its handling of the order.
        send = parent(handle)
        assert send.name == "send" and parent(send) is sim_handle
    [result_handle] = [h for h in handles if (h.attributes or {})["iris.message.kind"] == "result"]
    [save_span] = spans.named("save")
    assert save_span.context.trace_id == trace_id
    assert parent(save_span) is result_handle


def test_order_first_images_continue_the_orders_trace(
    make_simulator: Callable[..., Simulator],
    iris: IrisClient,
    integrator: Profile,
    spans: SpanRecorder,
) -> None:
    sim = make_simulator()
    request = sample_order(new_local_id())
    sent = iris.submit_order(request)
    sim.step()
    # The images come later, outside the order's handling: the watcher finds them.
    model = OrderRequest.model_validate(request)
    lid = model.order.local_id
    iris.upload_exam_image(dicom_image(), order=model, laterality="OD", image_local_id=f"{lid}-OD")
    iris.upload_exam_image(jpeg_image(3), order=model, laterality="OS", image_local_id=f"{lid}-OS")
    sim.step()

    [order_send] = spans.named("send", {"messaging.message.id": sent.message_id})
    [sim_handle] = spans.named("handle", {"messaging.message.id": sent.message_id})
    kinds = {
        str((s.attributes or {}).get("iris.message.kind"))
        for s in spans.named("send")
        if s.context.trace_id == order_send.context.trace_id
    }
    assert {"event:ImageReceipt", "event:ReadyForGradingEvent", "result"} <= kinds
    for send in spans.named("send"):
        if send is not order_send:
            assert send.context.trace_id == order_send.context.trace_id
            assert send.parent is not None and send.parent.span_id == sim_handle.context.span_id
