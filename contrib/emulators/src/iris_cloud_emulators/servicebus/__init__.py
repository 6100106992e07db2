"""An Azure Service Bus emulator: an AMQP 1.0 server the real ``azure-servicebus`` SDK talks to.

Start it in-process with :class:`ServiceBusEmulator` (a context manager) or from
the command line with ``iris-cloud-servicebus-emulator``; see
``docs/servicebus-emulator.md`` for what it implements.
"""

from ._auth import LISTEN, MANAGE, SEND, SasKey, make_sas_token
from ._emulator import DEFAULT_KEY_NAME, DEFAULT_KEY_SECRET, ServiceBusEmulator
from ._server import DEFAULT_MAX_MESSAGE_SIZE

__all__ = [
    "DEFAULT_KEY_NAME",
    "DEFAULT_KEY_SECRET",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "LISTEN",
    "MANAGE",
    "SEND",
    "SasKey",
    "ServiceBusEmulator",
    "make_sas_token",
]
