"""``iris-cloud check`` and ``SqsBroker.verify`` against moto with IAM enforced.

Each right is verified by a request SQS refuses after checking the
credentials and the right, so nothing is sent or taken; wrong keys are
reported as rejected credentials, never as a missing right or a URL form.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from iris_cloud.cli import main as cli
from iris_cloud.errors import CredentialsRejected, PermissionDenied
from iris_cloud_aws import SqsBroker
from iris_cloud_aws.testing import RECEIVE_ONLY, MotoServer, least_privilege_credentials

GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
WRONG = {"aws_access_key_id": "AKIAWRONGWRONGWRONG0", "aws_secret_access_key": "not-the-secret"}


@pytest.fixture
def enforced(moto: MotoServer) -> Iterator[None]:
    with moto.enforce_iam():
        yield


def _depth(moto: MotoServer, queue: str) -> int:
    url = moto.client("sqs").get_queue_url(QueueName=queue)["QueueUrl"]
    attrs = moto.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_verify_send_only_and_receive_only(moto: MotoServer, queue: str, enforced: None) -> None:
    url = moto.queue_url_form(queue)
    sender = least_privilege_credentials(moto, ["sqs:SendMessage"])
    receiver = least_privilege_credentials(moto, RECEIVE_ONLY)
    admin = SqsBroker.from_url(url, **moto.options())
    admin.send(b"waiting")
    with SqsBroker.from_url(url, **{**moto.options(), **sender}) as broker:
        assert broker.verify("send") is True
        with pytest.raises(PermissionDenied) as denied:
            broker.verify("receive")
        assert not isinstance(denied.value, CredentialsRejected)
        assert "sqs:ReceiveMessage" in str(denied.value)
    with SqsBroker.from_url(url, **{**moto.options(), **receiver}) as broker:
        assert broker.verify("receive") is True
        with pytest.raises(PermissionDenied, match="sqs:SendMessage"):
            broker.verify("send")
    # Nothing was sent and the waiting message was not taken: it is delivered first time.
    assert _depth(moto, queue) == 1
    [msg] = admin.receive(wait=1)
    assert (msg.body, msg.delivery_count) == (b"waiting", 1)
    admin.complete(msg)


def test_wrong_keys_are_rejected_credentials(moto: MotoServer, queue: str, enforced: None) -> None:
    with pytest.raises(CredentialsRejected, match="not accepted") as by_url:
        SqsBroker.from_url(moto.queue_url_form(queue), **{**moto.options(), **WRONG})
    with pytest.raises(CredentialsRejected) as by_name:
        SqsBroker.from_url(moto.broker_url(queue), **{**moto.options(), **WRONG})
    for exc in (by_url.value, by_name.value):
        assert "full queue URL" not in str(exc) and "IAM action" not in str(exc)
        assert "not-the-secret" not in str(exc)


def _config(
    tmp_path: Path, moto: MotoServer, queue: str, keys: dict[str, str], env: pytest.MonkeyPatch
) -> Path:
    # Secrets are environment references in a config file, never literal.
    for option, value in keys.items():
        env.setenv(f"IRIS_TEST_{option.upper()}", value)
    secrets = ", ".join(f'{k} = {{ env = "IRIS_TEST_{k.upper()}" }}' for k in keys)
    config = tmp_path / "iris-cloud.toml"
    config.write_text(
        f'[profiles.aws]\nclient_guid = "{GUID}"\n'
        f'orders = {{ url = "{moto.queue_url_form(queue)}", '
        f'endpoint_url = "{moto.endpoint_url}", region = "{moto.region}", {secrets} }}\n'
    )
    return config


def _check(config: Path, *extra: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(
        cli, ["check", "--json", "--config", str(config), "--profile", "aws", *extra]
    )
    assert result.stdout.startswith("["), result.output
    [orders] = json.loads(result.stdout)
    return result.exit_code, orders


def test_check_wrong_keys_fails(
    moto: MotoServer, queue: str, enforced: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, orders = _check(_config(tmp_path, moto, queue, WRONG, monkeypatch))
    assert code == 1
    assert orders["ok"] is False
    assert orders["rights"] == {"send": "refused"}
    assert any("did not accept the credentials" in n for n in orders["notes"])  # type: ignore[attr-defined]


def test_check_send_only_keys_verify_without_sending(
    moto: MotoServer, queue: str, enforced: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = least_privilege_credentials(moto, ["sqs:SendMessage"])
    code, orders = _check(_config(tmp_path, moto, queue, keys, monkeypatch))
    assert code == 0, orders
    assert orders["rights"] == {"receive": "refused", "send": "verified"}
    assert orders["ok"] is True
    assert _depth(moto, queue) == 0
