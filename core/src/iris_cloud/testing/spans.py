"""Spans recorded in memory for tests: the ``spans`` fixture (needs ``opentelemetry-sdk``).

The first use installs a global tracer provider that hands out the SDK's
tracers (finished spans kept in an ``InMemorySpanExporter``) only while a
test records, and no-op tracers otherwise: the other tests of the session run
as with the API alone, their messages carrying no trace context they did not
ask for. Where the session installed an SDK of its own, its spans are
recorded instead.
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
    active = False
    exporter: Any = None


def _install() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # The session has its own SDK: record what it traces anyway.
        current.add_span_processor(SimpleSpanProcessor(exporter))
        _State.exporter = exporter
        return
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    noop = trace.NoOpTracer()

    class _Switch(trace.Tracer):
        """The SDK's tracer while a test records, else none at all (as with the API alone)."""

        def __init__(self, real: trace.Tracer) -> None:
            self._real = real

        def _now(self) -> trace.Tracer:
            return self._real if _State.active else noop

        def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
            return self._now().start_span(*args, **kwargs)

        @contextmanager
        def start_as_current_span(  # type: ignore[override]  # the same call, passed on
            self, *args: Any, **kwargs: Any
        ) -> Iterator[trace.Span]:
            with self._now().start_as_current_span(*args, **kwargs) as span:
                yield span

    class _SwitchProvider(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return _Switch(sdk.get_tracer(*args, **kwargs))

    # Once per process (the API refuses a second provider), and only spans of
    # recording tests get ids: the other tests' messages carry no traceparent.
    trace.set_tracer_provider(_SwitchProvider())
    if not isinstance(trace.get_tracer_provider(), _SwitchProvider):
        raise RuntimeError("another tracer provider was installed meanwhile")
    _State.exporter = exporter


@contextmanager
def recording() -> Iterator[SpanRecorder]:
    """Record finished spans (of every thread) for the block; not reentrant."""
    if _State.exporter is None:
        _install()
    _State.exporter.clear()
    _State.active = True
    try:
        yield SpanRecorder(_State.exporter)
    finally:
        _State.active = False
        _State.exporter.clear()
