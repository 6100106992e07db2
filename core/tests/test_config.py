"""Profiles: loading from files and environment, masking, errors naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from iris_cloud import config
from iris_cloud.config import Profile, load_profile, mask_url, profile_names
from iris_cloud.errors import ConfigurationError
from iris_cloud.ports import Message
from wfhelpers import CLIENT_GUID


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real config file or IRIS_CLOUD_* variable leaks into these tests."""
    for key in list(os.environ):
        if key.startswith("IRIS_CLOUD_") and key != "IRIS_CLOUD_REQUIRE_EMULATORS":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "home" / "config.toml")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_from_dict_builds_endpoints_and_options() -> None:
    p = Profile.from_dict(
        {
            "client_guid": CLIENT_GUID,
            "orders": {"url": "mem://orders", "lock_seconds": 5},
            "images": "mem://images",
        }
    )
    assert p.orders is not None and p.orders.url == "mem://orders"
    assert p.orders.options == {"lock_seconds": 5}
    assert p.roles() == ["orders", "images"]
    assert p.direction("orders") == "send" and p.direction("events") == "receive"


def test_literal_secret_in_dict_is_masked_everywhere() -> None:
    p = Profile.from_dict(
        {
            "orders": {
                "url": "mem://orders",
                "connection_string": "Endpoint=sb://x;SharedAccessKey=TOPSECRET",
            }
        }
    )
    assert "TOPSECRET" not in repr(p)
    assert "TOPSECRET" not in str(p.masked())
    assert "TOPSECRET" not in repr(p.orders)
    assert p.orders is not None
    assert p.orders.resolved_options()["connection_string"].endswith("TOPSECRET")


def test_unknown_key_is_named(isolated: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"ordrs: unknown key"):
        Profile.from_dict({"ordrs": "mem://orders"})
    write(
        isolated / "iris-cloud.toml",
        '[profiles.dev]\norders = "mem://o"\n[profiles.dev.consumer]\nconcurency = 3\n',
    )
    with pytest.raises(ConfigurationError, match=r"consumer\.concurency: unknown key") as exc:
        load_profile("dev")
    assert "iris-cloud.toml" in str(exc.value)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("orders", "malformed URL"),
        ("mem:/orders", "malformed URL"),
        ("mem://", "names no queue"),
        ("mem://or ders", "whitespace"),
        ("MEM://orders", "lower-case"),
    ],
)
def test_malformed_url_names_the_key(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"events\.url: .*{fragment}"):
        Profile.from_dict({"events": url})


def test_unknown_scheme_names_the_key_and_installed_schemes() -> None:
    with pytest.raises(
        ConfigurationError, match=r"events\.url: no broker provider for scheme 'nope'"
    ) as exc:
        Profile.from_dict({"events": "nope://q"})
    assert "mem" in str(exc.value)
    # A store scheme is not a broker scheme.
    with pytest.raises(
        ConfigurationError, match=r"orders\.url: no broker provider for scheme 'file'"
    ):
        Profile.from_dict({"orders": "file:///tmp/x"})


def test_credentials_in_urls_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigurationError, match="must not be in the URL") as exc:
        Profile.from_dict({"orders": "mem://user:hunter2@orders"})
    assert "hunter2" not in str(exc.value)
    with pytest.raises(ConfigurationError, match="'sig' looks like a credential") as exc2:
        Profile.from_dict({"images": "mem://images?sig=abcdef"})
    assert "abcdef" not in str(exc2.value)


def test_mask_url() -> None:
    # Only the options the scheme's provider declares public are shown.
    public = frozenset({"region", "sv"})
    assert (
        mask_url("https://u:pw@host/x?sig=1&region=eu", public)
        == "https://u:***@host/x?sig=***&region=eu"
    )
    assert mask_url("local:///var/iris?queue=orders") == "local:///var/iris?queue=orders"
    assert mask_url("azblob://acct/c?sv=1&sig=abc#f", public) == "azblob://acct/c?sv=1&sig=***#f"
    # A scheme no installed provider serves shows no query value at all.
    assert mask_url("nosuch://acct/c?sv=1&pwd=abc") == "nosuch://acct/c?sv=***&pwd=***"


def test_literal_secret_in_a_file_is_refused(isolated: Path) -> None:
    write(
        isolated / "iris-cloud.toml",
        '[profiles.dev]\norders = { url = "mem://orders", sas_token = "sig=SECRETVALUE" }\n',
    )
    with pytest.raises(ConfigurationError, match=r"orders: .*'sas_token' is a secret") as exc:
        load_profile("dev")
    assert "SECRETVALUE" not in str(exc.value)


def test_env_and_file_secret_references(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = write(isolated / "secrets" / "key", "FROMFILE\n")
    write(
        isolated / "iris-cloud.toml",
        f"""
[profiles.dev]
orders = {{ url = "mem://orders", connection_string = {{ env = "TEST_CONN" }} }}
images = {{ url = "mem://images", account_key = {{ file = "{secret_file}" }} }}
""",
    )
    p = load_profile("dev")
    assert p.orders is not None and p.images is not None
    with pytest.raises(
        ConfigurationError,
        match=r"orders\.connection_string: environment variable TEST_CONN is not set",
    ):
        p.orders.resolved_options("orders")
    monkeypatch.setenv("TEST_CONN", "FROMENV")
    assert p.orders.resolved_options()["connection_string"] == "FROMENV"
    assert p.images.resolved_options()["account_key"] == "FROMFILE"
    shown = str(p.masked())
    assert "FROMENV" not in shown and "FROMFILE" not in shown
    assert "env:TEST_CONN" in shown


def test_profile_selection_and_sources(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        config.USER_CONFIG,
        f'client_guid = "{CLIENT_GUID}"\norders = "mem://user-default"\n'
        '[profiles.dev]\norders = "mem://user-dev"\nevents = "mem://user-events"\n',
    )
    write(
        isolated / "iris-cloud.toml",
        'default_profile = "dev"\n[profiles.dev]\norders = "mem://local-dev"\n'
        '[profiles.prod]\norders = "mem://prod"\n',
    )
    assert profile_names() == ["default", "dev", "prod"]
    dev = load_profile()
    assert dev.name == "dev"
    assert dev.orders is not None and dev.orders.url == "mem://local-dev"  # cwd file wins
    assert dev.events is not None and dev.events.url == "mem://user-events"  # merged from user file
    monkeypatch.setenv("IRIS_CLOUD_PROFILE", "prod")
    assert load_profile().name == "prod"
    assert load_profile("default").client_guid == CLIENT_GUID  # --profile beats the env var
    with pytest.raises(ConfigurationError, match="profile 'nosuch' is not defined"):
        load_profile("nosuch")


def test_environment_overrides(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "iris-cloud.toml", '[profiles.dev]\norders = "mem://file"\n')
    monkeypatch.setenv("IRIS_CLOUD_ORDERS", "mem://from-env")
    monkeypatch.setenv("IRIS_CLOUD_EVENTS", '{"url": "mem://ev", "lock_seconds": 3}')
    monkeypatch.setenv("IRIS_CLOUD_CLIENT_GUID", CLIENT_GUID)
    monkeypatch.setenv("IRIS_CLOUD_CONSUMER__CONCURRENCY", "7")
    p = load_profile("dev")
    assert p.orders is not None and p.orders.url == "mem://from-env"
    assert p.events is not None and p.events.options == {"lock_seconds": 3}
    assert p.client_guid == CLIENT_GUID
    assert p.consumer.concurrency == 7
    assert "environment" in (p.source or "")


def test_explicit_config_file(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = write(isolated / "elsewhere.toml", 'orders = "mem://explicit"\n')
    assert load_profile(config_file=other).orders is not None
    monkeypatch.setenv("IRIS_CLOUD_CONFIG", str(isolated / "missing.toml"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_profile()


def test_bad_toml_is_reported(isolated: Path) -> None:
    write(isolated / "iris-cloud.toml", "orders = \n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_profile()


def test_missing_endpoint_names_role_and_how_to_set_it() -> None:
    p = Profile.from_dict({"orders": "mem://o"}, name="dev")
    with pytest.raises(
        ConfigurationError,
        match=r"no 'results' endpoint.*\[profiles\.dev\] results.*IRIS_CLOUD_RESULTS",
    ):
        p.require("orders", "results")
    with pytest.raises(ConfigurationError, match="client_guid"):
        p.require_client_guid()


def test_invalid_client_guid_is_named() -> None:
    with pytest.raises(ConfigurationError, match="client_guid") as exc:
        Profile.from_dict({"client_guid": "not-a-guid"})
    assert "must be a GUID" in str(exc.value)
    assert "[0-9A-Fa-f]" not in str(exc.value) and "not-a-guid" not in str(exc.value)
    assert Profile.from_dict({"client_guid": "{63E3C9EF-66AC-4154-B0C2-494515EB99A7}"})


def test_mirror_flips_side_and_uses_mirror_urls() -> None:
    p = Profile.from_dict(
        {
            "orders": "mem://orders",
            "events": {"url": "mem://events-sub", "mirror": "mem://events-topic"},
        }
    )
    m = p.mirror()
    assert m.side == "platform"
    assert m.direction("orders") == "receive" and m.direction("events") == "send"
    assert m.orders is not None and m.orders.url == "mem://orders"
    assert m.events is not None and m.events.url == "mem://events-topic"
    back = m.mirror()
    assert back.events is not None and back.events.url == "mem://events-sub"
    assert back.side == "integrator"


def test_open_broker_attaches_the_claim_check_store() -> None:
    p = Profile.from_dict(
        {
            "orders": {"url": "mem://cc-orders", "max_message_bytes": 1024},
            "claim_check": "mem://cc-claims",
        }
    )
    body = b"x" * 5000
    with p.open_broker("orders") as sender:
        assert sender.claim_check is not None
        sender.send(Message(body=body))
    with p.open_store("claim_check") as claims:
        assert len(list(claims.list())) == 1
    with p.open_broker("orders") as receiver:
        [got] = receiver.receive(1, wait=1)
        assert got.body == body
        receiver.complete(got)


def test_open_with_the_wrong_kind_is_refused() -> None:
    p = Profile.from_dict({"orders": "mem://o", "images": "mem://i"})
    with pytest.raises(ConfigurationError, match="broker role"):
        p.open_store("orders")
    with pytest.raises(ConfigurationError, match="store role"):
        p.open_broker("images")
