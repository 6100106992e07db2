"""Tracing on mem://: send / receive / save spans, the trace context, hostile input."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from iris_cloud import tracing
from iris_cloud.client import IrisClient
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.messages import message_for
from iris_cloud.model import OrderGradedEvent, parse_message
from iris_cloud.ports import Message, MessageBroker
from iris_cloud.providers.memory import MemoryBroker
from iris_cloud.testing.spans import SpanRecorder
from iris_cloud.workflows.results import save_result
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
)
from wfhelpers import make_profile, new_order, sample

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
PATIENT = "Zebedee Quixotic-Marchbanks"


def remote_parent(state: TraceState | None = None) -> NonRecordingSpan:
    """A span of another process, as a received context would be."""
    return NonRecordingSpan(
        SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    )


def receive_one(broker: MessageBroker) -> Message:
    [got] = broker.receive(1, wait=2.0)
    broker.complete(got)
    return got


def test_send_span_and_traceparent(mem_broker: MessageBroker, spans: SpanRecorder) -> None:
    [mid] = mem_broker.send(Message(b"{}", properties={"MessageType": "OrderResult"}))
    [span] = spans.named("send")
    assert span.kind is SpanKind.PRODUCER
    assert span.parent is None  # no current span: a new trace
    attributes = dict(span.attributes or {})
    assert attributes == {
        "messaging.system": "mem",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": mem_broker.destination,
        "messaging.message.id": mid,
        "iris.message.kind": "result",
    }
    got = receive_one(mem_broker)
    ctx = span.get_span_context()
    assert (
        got.properties["traceparent"]
        == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    )
    assert "tracestate" not in got.properties


def test_send_continues_the_current_trace(mem_broker: MessageBroker, spans: SpanRecorder) -> None:
    with trace.use_span(remote_parent(TraceState([("vendor", "v1")]))):
        mem_broker.send([b"a", b"b"])
    sent = spans.named("send")
    assert len(sent) == 2
    for span in sent:
        assert span.context.trace_id == TRACE_ID and span.parent is not None
        assert span.parent.span_id == SPAN_ID
    for got in (receive_one(mem_broker), receive_one(mem_broker)):
        context = tracing.trace_context(got)
        assert context is not None
        carried = trace.get_current_span(context).get_span_context()
        assert carried.trace_id == TRACE_ID
        assert carried.span_id in {s.context.span_id for s in sent}
        assert got.properties["tracestate"] == "vendor=v1"


def test_unknown_message_type_is_no_kind(mem_broker: MessageBroker, spans: SpanRecorder) -> None:
    mem_broker.send(Message(b"{}", properties={"MessageType": PATIENT}))
    [span] = spans.named("send")
    assert "iris.message.kind" not in (span.attributes or {})


def test_receive_span_links_to_the_send(mem_broker: MessageBroker, spans: SpanRecorder) -> None:
    assert mem_broker.receive(1, wait=0.0) == []
    assert spans.named("receive") == []  # an empty poll leaves no span
    mem_broker.send(b"x")
    receive_one(mem_broker)
    [send] = spans.named("send")
    [receive] = spans.named("receive")
    assert receive.kind is SpanKind.CLIENT
    assert (receive.attributes or {})["messaging.batch.message_count"] == 1
    assert [link.context.span_id for link in receive.links] == [send.context.span_id]


def test_a_stored_context_is_continued_when_sent_later(
    mem_broker: MessageBroker, spans: SpanRecorder
) -> None:
    # An outbox stamps the message while handling; the send comes later, elsewhere.
    with trace.use_span(remote_parent()):
        stamped = tracing.with_trace_context(Message(b"later"))
    assert stamped.properties["traceparent"] == TRACEPARENT
    mem_broker.send(stamped)
    [span] = spans.named("send")
    assert span.context.trace_id == TRACE_ID and span.parent is not None
    assert span.parent.span_id == SPAN_ID
    assert receive_one(mem_broker).properties["traceparent"] != TRACEPARENT  # the send span's


def test_nothing_to_write_keeps_the_message() -> None:
    message = Message(b"x", properties={"traceparent": TRACEPARENT})
    assert tracing.with_trace_context(message) is message
    assert tracing.trace_properties() == {}


@pytest.mark.parametrize(
    "traceparent",
    [
        "",
        "garbage " + PATIENT,
        TRACEPARENT.upper(),
        TRACEPARENT + "-extra",
        "ff" + TRACEPARENT[2:],
        f"00-{0:032x}-{SPAN_ID:016x}-01",
        f"00-{TRACE_ID:032x}-{0:016x}-01",
        TRACEPARENT.replace("-", "_"),
        "x" * 100_000,
        42,
    ],
)
def test_malformed_traceparent_is_ignored_unlogged(
    traceparent: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert tracing.valid_traceparent(traceparent) is None
    message = Message(b"x", properties={"traceparent": traceparent})  # type: ignore[dict-item]
    assert tracing.trace_context(message) is None
    assert PATIENT not in caplog.text and "x" * 100 not in caplog.text


@pytest.mark.parametrize(
    "tracestate",
    [
        "Upper=1",
        "a=1,a=2",
        f"k={PATIENT}=",
        ",".join(f"k{i}=v" for i in range(33)),
        "k=" + "v" * 600,
        "k=v\n",
    ],
)
def test_malformed_tracestate_is_dropped_not_the_trace(
    tracestate: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert tracing.valid_tracestate(tracestate) is None
    message = Message(b"x", properties={"traceparent": TRACEPARENT, "tracestate": tracestate})
    context = tracing.trace_context(message)
    assert context is not None
    carried = trace.get_current_span(context).get_span_context()
    assert carried.trace_id == TRACE_ID and not carried.trace_state
    assert PATIENT not in caplog.text and "v" * 100 not in caplog.text


def test_hostile_context_on_the_wire_costs_nothing(
    mem_broker: MessageBroker, spans: SpanRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Straight onto the queue, as another sender could: send() would write its own.
    mem_broker._send_batch(
        [Message(b"x", message_id="m1", properties={"traceparent": PATIENT, "tracestate": "!"})]
    )
    got = receive_one(mem_broker)
    assert got.message_id == "m1" and tracing.trace_context(got) is None
    [receive] = spans.named("receive")
    assert receive.links == ()
    assert PATIENT not in caplog.text


def test_valid_tracestate() -> None:
    assert tracing.valid_tracestate("a=1, tenant@sys=x y , ,b=2") == "a=1, tenant@sys=x y , ,b=2"


def test_save_span_is_a_child_and_names_nothing(tmp_path: Path, spans: SpanRecorder) -> None:
    import base64

    from iris_cloud.model import OrderResult

    data = sample("result-final.json")
    data["ResultsDocument"]["Content"] = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()
    data["Patient"]["Name"] = {"First": "Zebedee", "Last": "Quixotic-Marchbanks"}
    result = OrderResult.model_validate(data)
    with trace.use_span(remote_parent()):
        path = save_result(result, tmp_path, "{patientLastName}-{patientFirstName}.pdf")
    assert path is not None and "Zebedee" in path
    [save] = spans.named("save")
    assert save.parent is not None and save.parent.span_id == SPAN_ID
    assert dict(save.attributes or {}) == {
        "iris.save.target": "directory",
        "iris.save.document": True,
    }


def test_no_phi_in_span_attributes(tmp_path: Path, spans: SpanRecorder) -> None:
    profile = make_profile("mem", tmp_path)
    order = new_order("ORD-PHI")
    order["Patient"]["Name"] = {"First": "Zebedee", "Last": "Quixotic-Marchbanks"}
    order["Patient"]["Dob"] = "3/14/1961"
    with IrisClient(profile) as iris:
        sent = iris.submit_order(order)
    with profile.open_broker("orders") as broker:
        got = receive_one(broker)
    assert got.message_id == sent.message_id
    [send] = spans.named("send", {"messaging.message.id": sent.message_id})
    assert (send.attributes or {})["iris.message.kind"] == "order"
    assert spans.named("receive")
    for span in spans.finished:
        values = [span.name, *(str(v) for v in (span.attributes or {}).values())]
        for needle in ("Zebedee", "Quixotic", "1961", "ORD-PHI"):
            assert not any(needle in v for v in values), (span.name, needle)


def test_works_without_opentelemetry(tmp_path: Path) -> None:
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if not installed: importing it fails
from iris_cloud import tracing
from iris_cloud.providers.memory import MemoryBroker
assert not tracing.enabled()
with MemoryBroker.from_url("mem://no-otel") as broker:
    broker.send(b"x")
    [got] = broker.receive(1, wait=1.0)
    broker.complete(got)
assert "traceparent" not in got.properties
assert tracing.trace_context(got) is None
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_an_sdk_installed_after_receiving_is_noticed_at_once(tmp_path: Path) -> None:
    # A fresh process: no provider yet, and receives have answered "no SDK".
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from iris_cloud.providers.memory import MemoryBroker
with MemoryBroker.from_url("mem://late-sdk") as broker:
    broker.send([b"before", b"after"])
    [got] = broker.receive(1, wait=1.0)
    broker.complete(got)
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(sdk)
    [got] = broker.receive(1, wait=1.0)
    broker.complete(got)
print([s.name for s in exporter.get_finished_spans()])
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['receive']"


def test_without_an_sdk_handling_costs_nothing_yet_passes_a_context_on(tmp_path: Path) -> None:
    # A fresh process with the API alone: the session's recording tests install an SDK.
    code = f"""
import contextlib
from importlib import resources
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from iris_cloud.consumer import Consumer, IrisApp
from iris_cloud.model import OrderGradedEvent
from iris_cloud.observers import Delivery
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker

body = resources.files("iris_cloud.model.samples").joinpath("event-order-graded.json").read_bytes()
events, out = MemoryBroker("events"), MemoryBroker("out")
handled = []
app = IrisApp()
app.on(OrderGradedEvent)(lambda event: handled.append(out.send(b"follow-up")))
consumer = Consumer(app, events, wait=0.1)
[observer] = consumer.observers
plain = Delivery("events", Message(body=body))
assert type(observer.handling(plain)) is contextlib.nullcontext

def handle(message):
    events.send(message)
    consumer.run_until(lambda s: len(handled) == 1, timeout=10)
    handled.clear()
    [got] = out.receive(1, wait=1.0)
    out.complete(got)
    return got.properties.get("traceparent")

print(handle(Message(body=body)))
traced = "00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
print(handle(Message(body=body, properties={{"traceparent": traced}})) == traced)
exporter = InMemorySpanExporter()
sdk = TracerProvider()
sdk.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(sdk)
handle(Message(body=body))
print(sorted({{s.name for s in exporter.get_finished_spans()}}))
consumer.close()
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    # No trace, then the received one passed on exactly (the no-op tracer's span
    # is the sender's), then an SDK installed in the meantime records at once.
    assert out.stdout.split("\n")[:3] == ["None", "True", "['handle', 'receive', 'send']"]


def graded_event(**changes: object) -> Message:
    data = sample("event-order-graded.json")
    data["TransactionId"] = str(uuid.uuid4())
    data.update(changes)
    return message_for(parse_message(json.dumps(data)))


def test_handle_span_continues_the_senders_trace(
    mem_broker: MessageBroker, spans: SpanRecorder
) -> None:
    out = MemoryBroker(f"out-{uuid.uuid4().hex}")
    app = IrisApp()

    @app.on(OrderGradedEvent)
    def forward(event: OrderGradedEvent, ctx: Context) -> None:
        out.send(b"follow-up")

    with trace.use_span(remote_parent()):
        [mid] = mem_broker.send(graded_event())
    with Consumer(app, {"events": mem_broker}, wait=0.1) as consumer:
        consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    [send] = spans.named("send", {"messaging.message.id": mid})
    [handle] = spans.named("handle")
    assert handle.kind is SpanKind.CONSUMER
    assert handle.parent is not None and handle.parent.span_id == send.context.span_id
    assert handle.context.trace_id == TRACE_ID
    assert dict(handle.attributes or {}) == {
        "messaging.system": "mem",
        "messaging.operation.name": "handle",
        "messaging.operation.type": "process",
        "messaging.destination.name": mem_broker.destination,
        "messaging.message.id": mid,
        "iris.message.kind": "event:OrderGradedEvent",
        "iris.delivery_count": 1,
        "iris.outcome": "completed",
    }
    [follow] = [s for s in spans.named("send") if s is not send]
    assert follow.parent is not None and follow.parent.span_id == handle.context.span_id
    got = receive_one(out)
    assert got.properties["traceparent"].startswith(f"00-{TRACE_ID:032x}-")  # type: ignore[union-attr]


def test_failed_handler_span_names_no_exception_text(
    mem_broker: MessageBroker, spans: SpanRecorder
) -> None:
    app = IrisApp()

    @app.on(OrderGradedEvent)
    def fail(event: OrderGradedEvent) -> None:
        raise ValueError(f"no such patient {PATIENT}")

    mem_broker.send(graded_event())
    with Consumer(app, {"events": mem_broker}, wait=0.1, backoff_initial=0.01) as consumer:
        consumer.run_until(lambda s: s.retried >= 1, timeout=10)
    handle = spans.named("handle")[0]
    assert (handle.attributes or {})["iris.outcome"] == "retried"
    assert handle.status.status_code is StatusCode.ERROR
    assert not handle.status.description and not handle.events
    for span in spans.finished:
        assert PATIENT not in repr(dict(span.attributes or {})) + str(span.status.description)


def test_unknown_event_type_is_just_an_event(
    mem_broker: MessageBroker, spans: SpanRecorder
) -> None:
    app = IrisApp()
    app.fallback(lambda message, ctx: None)
    mem_broker.send(graded_event(ResultObjectType=PATIENT))
    with Consumer(app, {"events": mem_broker}, wait=0.1) as consumer:
        consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    [handle] = spans.named("handle")
    assert (handle.attributes or {})["iris.message.kind"] == "event:other"


def test_one_tracing_observer(mem_broker: MessageBroker) -> None:
    mine = tracing.TracingObserver()
    with Consumer(IrisApp(), mem_broker, observers=[mine]) as consumer:
        assert consumer.observers == (mine,)
    with Consumer(IrisApp(), mem_broker) as consumer:
        assert [type(o) for o in consumer.observers] == [tracing.TracingObserver]


def test_without_an_sdk_a_received_context_is_passed_on(mem_broker: MessageBroker) -> None:
    # No spans fixture: the API records nothing here, yet the trace goes on.
    out = MemoryBroker(f"out-{uuid.uuid4().hex}")
    app = IrisApp()
    app.on(OrderGradedEvent)(lambda event: out.send(b"follow-up"))
    event = graded_event()
    event.properties["traceparent"] = TRACEPARENT
    mem_broker._send_batch([event])
    with Consumer(app, {"events": mem_broker}, wait=0.1) as consumer:
        consumer.run_until(lambda s: s.completed >= 1, timeout=10)
    assert receive_one(out).properties["traceparent"] == TRACEPARENT


def test_continuing_a_stored_context() -> None:
    with tracing.continuing({"traceparent": TRACEPARENT}):
        current = trace.get_current_span().get_span_context()
        assert (current.trace_id, current.span_id) == (TRACE_ID, SPAN_ID)
        assert tracing.trace_properties()["traceparent"] == TRACEPARENT
    assert not trace.get_current_span().get_span_context().is_valid
    with tracing.continuing({"traceparent": PATIENT}):
        assert not trace.get_current_span().get_span_context().is_valid
