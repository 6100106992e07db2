"""Spans recorded in memory for tests: the ``spans`` fixture (needs ``opentelemetry-sdk``).

The first use installs an SDK ``TracerProvider`` as the global one (or adds
to the one a test session already installed) with a processor that keeps
finished spans in an ``InMemorySpanExporter`` only while a test records, so
a long session's other tests leave nothing in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["SpanRecorder", "recording"]


class SpanRecorder:
    """The spans finished while recording, with look-ups tests need."""

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter

    @property
    def finished(self) -> Sequence[ReadableSpan]:
        """Every span finished so far while recording, oldest first."""
        return tuple(self._exporter.get_finished_spans())

    def named(
        self, name: str, attributes: Mapping[str, object] | None = None
    ) -> list[ReadableSpan]:
        """The finished spans called ``name`` whose attributes include ``attributes``."""
        wanted = dict(attributes or {})
        out = []
        for span in self.finished:
            found = dict(span.attributes or {})
            if span.name == name and all(found.get(k) == v for k, v in wanted.items()):
                out.append(span)
        return out

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self._exporter.clear()


class _State:
    processor: Any = None
    exporter: Any = None


def _install() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class _WhileRecording(SimpleSpanProcessor):
        active = False

        def on_end(self, span: ReadableSpan) -> None:
            if self.active:
                super().on_end(span)

    exporter = InMemorySpanExporter()
    processor = _WhileRecording(exporter)
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        # set_tracer_provider is once per process: use whichever won.
        provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError("the global tracer provider is not the OpenTelemetry SDK's")
    provider.add_span_processor(processor)
    _State.processor, _State.exporter = processor, exporter


@contextmanager
def recording() -> Iterator[SpanRecorder]:
    """Record finished spans (of every thread) for the block; not reentrant."""
    if _State.processor is None:
        _install()
    _State.exporter.clear()
    _State.processor.active = True
    try:
        yield SpanRecorder(_State.exporter)
    finally:
        _State.processor.active = False
        _State.exporter.clear()
