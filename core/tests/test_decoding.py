"""Per-message decoding (iris_cloud.decoding) and how receive() settles what fails."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from iris_cloud.decoding import UndecodableMessage, check_decoded, decode_each, failure_text
from iris_cloud.errors import ConfigurationError, FieldError, ValidationError
from iris_cloud.ports import Message
from iris_cloud.providers.memory import MemoryBroker, _queue

SECRET = "Quixotely-1970-01-01"


def _decode(raw: dict[str, Any]) -> Message:
    if raw.get("bad"):
        raise ValueError(f"cannot parse {SECRET}")
    return Message(body=raw["body"])


def test_a_failure_becomes_a_shell_that_names_only_the_class() -> None:
    raws = [{"body": b"a"}, {"bad": True, "token": "t2"}, {"body": b"c"}]
    got = decode_each(raws, _decode, lambda raw: Message(b"", lock_token=raw.get("token"), raw=raw))
    assert [type(m) for m in got] == [Message, UndecodableMessage, Message]
    shell = got[1]
    assert isinstance(shell, UndecodableMessage)
    assert shell.decode_error == "ValueError"
    assert shell.lock_token == "t2" and shell.raw is raws[1]
    assert shell.properties == {} and shell.content_type is None


def test_a_message_that_cannot_even_be_described_is_left_out_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def shell(raw: dict[str, Any]) -> Message:
        raise KeyError(SECRET)

    with caplog.at_level(logging.DEBUG):
        got = decode_each([{"bad": True}, {"body": b"ok"}], _decode, shell)
    assert [m.body for m in got] == [b"ok"]
    assert "ValueError" in caplog.text and "KeyError" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "fields",
    [
        {"body": "text"},
        {"body": b"x", "message_id": 7},
        {"body": b"x", "subject": b"bytes"},
        {"body": b"x", "properties": [("k", "v")]},
        {"body": b"x", "properties": {1: "v"}},
        {"body": b"x", "properties": {"k": None}},
        {"body": b"x", "properties": {"k": {"nested": 1}}},
    ],
)
def test_check_decoded_refuses_what_message_does_not_promise(fields: dict[str, Any]) -> None:
    with pytest.raises(TypeError) as exc:
        check_decoded(Message(**fields))
    assert "nested" not in str(exc.value)  # names the field, never the value


def test_failure_text_is_class_and_field_paths() -> None:
    exc = ValidationError(
        "x", [FieldError("body[1].s3Key", "t", SECRET), FieldError("", "t", SECRET)]
    )
    assert failure_text(exc) == "ValidationError at body[1].s3Key, <root>"
    assert failure_text(RecursionError(SECRET)) == "RecursionError"


class _NoDeadLetters(MemoryBroker):
    """A broker with nowhere to dead-letter to (an SQS queue without a DLQ).

    Its decoding refuses a body of ``b"bad"``, as a provider's decoding of a
    service message may fail (mem:// itself holds only checked messages).
    """

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        def decode(msg: Message) -> Message:
            if msg.body == b"bad":
                raise ValueError(f"cannot parse {SECRET}")
            return msg

        return decode_each(super()._receive(max_messages, wait), decode, lambda msg: msg)

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        raise ConfigurationError("there is nowhere to dead-letter to")


def test_when_dead_lettering_fails_the_message_is_given_back_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from iris_cloud import portlogic

    monkeypatch.setattr(portlogic, "CLAIM_CHECK_RETRY_DELAY", 1.0)
    name = f"q-{uuid.uuid4().hex}"
    with _NoDeadLetters(name) as broker:
        q = _queue(name)
        broker.send([b"bad", b"good"])
        # Neither raises nor loses it: the good one is delivered, the bad one waits.
        assert [m.body for m in broker.receive(max_messages=10, wait=0.5)] == [b"good"]
        assert broker.receive(max_messages=10, wait=0.2) == []
        back = broker.receive(max_messages=10, wait=3)
        assert back == [] and len(q.entries) == 2  # given back again, still there
