"""Handler registration: an async handler the sync consumer cannot await, a second handler.

An ``async def`` handler used to be called, never awaited, and its message
completed: the work silently never happened. Now the AsyncConsumer awaits it
and the sync Consumer refuses an app that has one. A second ``@app.on(T)``
silently replaced the first.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from iris_cloud.consumer import Consumer, Context, IrisApp
from iris_cloud.errors import ConfigurationError
from iris_cloud.model import Event, OrderGradedEvent, OrderResult, sample_files
from iris_cloud.providers.memory import MemoryBroker

pytestmark = pytest.mark.timeout(60)


def graded_body() -> bytes:
    [sample] = [f for f in sample_files() if f.name == "event-order-graded.json"]
    return sample.read_bytes()


async def async_handler(event: Any, ctx: Context) -> None:
    raise AssertionError("never awaited")


class AsyncCallable:
    async def __call__(self, event: Any, ctx: Context) -> None:
        raise AssertionError("never awaited")


async def async_gen_handler(event: Any) -> Any:
    yield event


def test_an_async_generator_is_refused_by_on_and_fallback() -> None:
    app = IrisApp()
    with pytest.raises(ConfigurationError, match="is async but an async generator"):
        app.on(OrderGradedEvent)(async_gen_handler)
    with pytest.raises(ConfigurationError, match="is async but an async generator"):
        app.fallback(async_gen_handler)
    # Nothing was registered: the message would be "unhandled", not lost in a generator.
    assert app.handler_for(OrderGradedEvent.model_validate_json(graded_body()), "event:x") is None


@pytest.mark.parametrize("handler", [async_handler, AsyncCallable()])
@pytest.mark.parametrize("register", ["on", "fallback"])
def test_the_sync_consumer_refuses_an_app_with_an_async_handler(
    handler: Any, register: str
) -> None:
    # The AsyncConsumer awaits it; the sync one would complete the message
    # without awaiting, so it refuses the app when it is made.
    app = IrisApp()
    if register == "on":
        app.on(OrderGradedEvent)(handler)
    else:
        app.fallback(handler)
    assert app.async_handlers() != []
    with pytest.raises(ConfigurationError, match=r"is async.*AsyncConsumer"):
        Consumer(app, MemoryBroker(f"hostile-{uuid.uuid4().hex}"))


def test_a_handler_returning_a_coroutine_does_not_complete_its_message() -> None:
    # A sync wrapper around an async function slips past registration; the
    # consumer must not take its coroutine for done work.
    app = IrisApp()
    app.on(OrderGradedEvent)(lambda event, ctx: async_handler(event, ctx))
    broker = MemoryBroker(f"hostile-{uuid.uuid4().hex}")
    broker.send(graded_body())
    with Consumer(app, broker, max_attempts=2, backoff_initial=0, wait=0.1) as consumer:
        stats = consumer.run_until(lambda s: s.dead_lettered >= 1, timeout=20)
    assert stats.handled == 0 and stats.dead_lettered == 1
    [dead] = broker.receive_dead_letters(1, wait=1)
    assert dead.dead_letter_reason is not None
    assert dead.dead_letter_reason.startswith("TypeError")


def test_second_handler_for_a_type_or_kind_is_refused() -> None:
    app = IrisApp()

    @app.on(OrderResult, "event:OrderGradedEvent")
    def first(message: Any, ctx: Context) -> None: ...

    def second(message: Any, ctx: Context) -> None: ...

    with pytest.raises(ConfigurationError, match="already registered"):
        app.on(OrderResult)(second)
    with pytest.raises(ConfigurationError, match="already registered"):
        app.on("event:OrderGradedEvent")(second)
    # A refused registration registers none of its targets.
    with pytest.raises(ConfigurationError, match="already registered"):
        app.on(Event, OrderResult)(second)
    result = OrderResult.model_validate_json(
        next(f for f in sample_files() if f.name == "result-final.json").read_bytes()
    )
    assert app.handler_for(result, "result") == (first, 2)
    graded = OrderGradedEvent.model_validate_json(graded_body())
    assert app.handler_for(graded, "event:OrderGradedEvent") == (first, 2)
    assert app.handler_for(graded, "event:Other") is None
    # Registering the same function again is harmless (module reloads, tests).
    app.on(OrderResult)(first)

    app.fallback(first)
    with pytest.raises(ConfigurationError, match="fallback handler is already registered"):
        app.fallback(second)
