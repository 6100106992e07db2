"""The public face of the Service Bus emulator: start, stop, connection strings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from proton.reactor import ApplicationEvent, Container, EventInjector

from ._auth import SasKey, make_sas_token
from ._broker import SCHEDULED, Broker, now_ms
from ._server import DEFAULT_MAX_MESSAGE_SIZE, _Acceptor, _ContainerScheduler, _Result, _Server

T = TypeVar("T")

# The key the official Service Bus emulator documents; used in connection
# strings when no keys are configured (and then any key is accepted).
DEFAULT_KEY_NAME = "RootManageSharedAccessKey"
DEFAULT_KEY_SECRET = "SAS_KEY_VALUE"  # noqa: S105 - a published test value, not a secret


class ServiceBusEmulator:
    """An in-process Azure Service Bus (AMQP 1.0) server for tests.

    Use it as a context manager; the server runs on a background thread::

        with ServiceBusEmulator(queues=["orders"], lock_duration=2) as sb:
            client = ServiceBusClient.from_connection_string(sb.connection_string())

    :param host: interface to listen on.
    :param port: TCP port; 0 picks a free one (see :attr:`port` after start).
    :param queues: queues to create up front.
    :param topics: ``{topic: [subscription, ...]}`` to create up front.
    :param keys: shared access keys (:class:`SasKey` or ``NAME:SECRET:Send,Listen``
        strings). With none, every token is accepted and all rights granted.
    :param lock_duration: peek-lock duration in seconds.
    :param max_delivery_count: deliveries before a message is dead-lettered.
    :param max_message_size: largest accepted message (or batch) in bytes,
        advertised as the sender link's max-message-size.
    :param auto_create: create queues/subscriptions on first use; by default
        only when neither ``queues`` nor ``topics`` are given.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        queues: Iterable[str] = (),
        topics: Mapping[str, Iterable[str]] | None = None,
        keys: Iterable[SasKey | str] = (),
        lock_duration: float = 30.0,
        max_delivery_count: int = 10,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        auto_create: bool | None = None,
    ) -> None:
        if lock_duration <= 0:
            raise ValueError("lock_duration must be positive")
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        if max_message_size < 1024:
            raise ValueError("max_message_size must be at least 1024 bytes")
        self.host = host
        self._requested_port = port
        self.queues = list(queues)
        self.topics = {name: list(subs) for name, subs in (topics or {}).items()}
        parsed = [key if isinstance(key, SasKey) else SasKey.parse(key) for key in keys]
        self.keys = {key.name: key for key in parsed}
        self.lock_duration = lock_duration
        self.max_delivery_count = max_delivery_count
        self.max_message_size = max_message_size
        self.auto_create = (
            (not self.queues and not self.topics) if auto_create is None else auto_create
        )
        self.port = 0
        self._server: _Server | None = None
        self._container: Container | None = None
        self._injector: EventInjector | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> ServiceBusEmulator:
        """Bind the port and start serving on a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        server = _Server(self.keys, self.max_message_size)
        container = Container(server)
        server.container = container
        server.broker = Broker(
            _ContainerScheduler(container),
            lock_duration=self.lock_duration,
            max_delivery_count=self.max_delivery_count,
            auto_create=self.auto_create,
            on_available=server.pump,
        )
        for name in self.queues:
            server.broker.create_queue(name)
        for topic, subscriptions in self.topics.items():
            for subscription in subscriptions:
                server.broker.create_subscription(topic, subscription)
        # Binding here, before the thread starts, makes a port conflict fail
        # start() itself and makes self.port known when start() returns.
        acceptor = _Acceptor(container, self.host, self._requested_port)
        acceptor.server = server
        server.acceptor = acceptor
        self.port = acceptor._selectable.getsockname()[1]
        injector = EventInjector()
        container.selectable(injector)
        server.wake = lambda: injector.trigger(ApplicationEvent("iris_call"))
        self._server, self._container, self._injector = server, container, injector
        self._thread = threading.Thread(
            target=self._run, name=f"servicebus-emulator:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._container is not None
        try:
            self._container.run()
        except BaseException as exc:  # kept so later calls say why the server is gone
            self._failure = exc
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and the listening socket, then end the thread."""
        if self._thread is None or self._injector is None:
            return
        if self._thread.is_alive():
            self._injector.trigger(ApplicationEvent("iris_stop"))
            self._thread.join(timeout)
        self._injector.close()
        thread, self._thread = self._thread, None
        if thread.is_alive():
            raise RuntimeError("the Service Bus emulator did not stop in time")

    def __enter__(self) -> ServiceBusEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    # -- connecting ---------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``sb://host:port`` as used in connection strings."""
        return f"sb://{self.host}:{self.port}"

    def _key(self, key_name: str | None) -> SasKey:
        if key_name is None:
            return next(iter(self.keys.values()), SasKey(DEFAULT_KEY_NAME, DEFAULT_KEY_SECRET))
        if key_name in self.keys:
            return self.keys[key_name]
        if not self.keys:
            return SasKey(key_name, DEFAULT_KEY_SECRET)
        raise KeyError(f"no key named {key_name!r}; configured: {sorted(self.keys)}")

    def connection_string(self, key_name: str | None = None, *, entity: str | None = None) -> str:
        """A connection string for the SDK (plain AMQP via ``UseDevelopmentEmulator``).

        ``key_name`` picks a configured key (default: the first one); without
        configured keys the documented emulator default key is used.
        """
        if not self.port:
            raise RuntimeError("start the emulator first")
        key = self._key(key_name)
        parts = [
            f"Endpoint={self.endpoint}",
            f"SharedAccessKeyName={key.name}",
            f"SharedAccessKey={key.secret}",
        ]
        if entity:
            parts.append(f"EntityPath={entity}")
        parts.append("UseDevelopmentEmulator=true")
        return ";".join(parts) + ";"

    def sas_token(self, key_name: str | None = None, *, entity: str = "", ttl: float = 3600) -> str:
        """A SAS token signed with a configured key, scoped to ``entity`` (or the namespace).

        For clients that are handed a token instead of a key, e.g.
        ``Endpoint=...;SharedAccessSignature=<token>;UseDevelopmentEmulator=true``
        or ``AzureSasCredential(token)``.
        """
        key = self._key(key_name)
        resource = f"{self.endpoint}/{entity}".rstrip("/")
        return make_sas_token(resource, key.name, key.secret, ttl)

    # -- inspecting (thread-safe: runs on the server thread) ------------------

    def _call(self, function: Callable[[], T], timeout: float = 5.0) -> T:
        if not self.running or self._server is None or self._injector is None:
            raise RuntimeError("the emulator is not running") from self._failure
        result = _Result()
        self._server.calls.put((function, result))
        assert self._server.wake is not None
        self._server.wake()
        if not result.done.wait(timeout):
            raise TimeoutError("the emulator did not answer")
        if result.error is not None:
            raise result.error
        return result.value  # type: ignore[no-any-return]

    def create_queue(self, name: str) -> None:
        """Create a queue while running (idempotent)."""
        server = self._server
        assert server is not None
        self._call(lambda: server.broker.create_queue(name))

    def create_subscription(self, topic: str, subscription: str) -> None:
        """Create a topic subscription while running (idempotent)."""
        server = self._server
        assert server is not None
        self._call(lambda: server.broker.create_subscription(topic, subscription))

    def message_count(self, entity: str) -> int:
        """Messages in ``entity`` (``q``, ``q/$DeadLetterQueue``, ``t/Subscriptions/s``).

        Locked and deferred messages count; scheduled and expired ones do not.
        """
        server = self._server
        assert server is not None

        def count() -> int:
            found = server.broker.entity(entity)
            now = now_ms()
            return sum(
                1
                for m in found.messages.values()
                if m.state != SCHEDULED and (m.expires_ms is None or m.expires_ms > now)
            )

        return self._call(count)

    def reset(self) -> None:
        """Remove every message and lock from every entity (entities stay).

        Cheap isolation between tests that share one emulator; receivers that
        are still attached keep working.
        """
        server = self._server
        assert server is not None
        self._call(server.broker.purge)

    def entity_names(self) -> list[str]:
        """Queues and subscriptions that exist now."""
        server = self._server
        assert server is not None
        return self._call(server.broker.entity_names)
