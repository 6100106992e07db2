"""Secrets are masked by the option schema, not by what their names look like.

Only the options a provider declares public are printed; a password inside
``endpoint_url`` and options or URL query parameters named ``pwd``, ``auth``,
``password``, ``token``, ``sig`` are masked in ``config show``, reprs and
``check`` (including the error messages ``check`` reports, which libraries
may write with the URL in them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from iris_cloud.cli import main as cli
from iris_cloud.config import Profile, load_profile, mask_url, public_options

pytestmark = pytest.mark.timeout(120)

CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
SECRETS = ["Hunter2pw", "Hunter3pwd", "Hunter4auth", "Hunter5qpwd", "Hunter6qauth", "Hunter7tok"]

# A closed port: opening works, every call fails with an error quoting the endpoint URL.
CONFIG = f"""
default_profile = "leaky"
[profiles.leaky]
client_guid = "{CLIENT_GUID}"
orders = "mem://orders?pwd=Hunter5qpwd&auth=Hunter6qauth"

[profiles.leaky.images]
url = "s3://iris-images"
endpoint_url = "http://admin:Hunter2pw@127.0.0.1:9"
region = "us-east-1"
aws_access_key_id = {{env = "HOSTILE_KEY_ID"}}
aws_secret_access_key = {{env = "HOSTILE_SECRET"}}

[profiles.leaky.results_store]
url = "file:///tmp/iris-hostile-results"
pwd = "Hunter3pwd"
auth = "Hunter4auth"
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOSTILE_KEY_ID", "AKIAHOSTILE")
    monkeypatch.setenv("HOSTILE_SECRET", "Hunter7tok")
    path = tmp_path / "iris-cloud.toml"
    path.write_text(CONFIG)
    return path


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_providers_declare_their_public_options() -> None:
    assert "endpoint_url" in public_options("s3") and "region" in public_options("s3")
    for secret in ("aws_secret_access_key", "aws_session_token", "aws_access_key_id"):
        assert secret not in public_options("s3")
    assert "connection_string" not in public_options("azuresb")
    assert "account_key" not in public_options("azblob")
    assert "credentials_json" not in public_options("gs")
    assert public_options("no-such-scheme") == frozenset()


def test_config_show_masks_by_schema(config: Path) -> None:
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = CliRunner().invoke(cli, [*args, "--config", str(config)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert leaked(result.output) == []
    text = CliRunner().invoke(cli, ["config", "show", "--json", "--config", str(config)]).output
    json.loads(text)
    # Public options are still shown, a URL in one with its password masked.
    assert "us-east-1" in text and "http://admin:***@127.0.0.1:9" in text
    assert "pwd=***" in text and "auth=***" in text


def test_reprs_mask_by_schema(config: Path) -> None:
    profile = load_profile(None, config_file=config)
    for text in (repr(profile), str(profile.masked())):
        assert leaked(text) == []
    for role in profile.roles():
        assert leaked(repr(profile.endpoint(role))) == []
    # Programmatic profiles with literal secrets are masked the same way.
    literal = Profile.from_dict(
        {
            "orders": {"url": "mem://o", "password": "Hunter2pw", "token": "Hunter7tok"},
            "images": {"url": "mem://i?auth=Hunter5qpwd", "pwd": "Hunter3pwd"},
        }
    )
    assert leaked(repr(literal)) == [] and leaked(str(literal.masked())) == []


def test_check_masks_urls_and_the_errors_it_reports(config: Path) -> None:
    result = CliRunner().invoke(
        cli, ["check", "--json", "--no-write", "--config", str(config)], catch_exceptions=False
    )
    assert leaked(result.output) == [], result.output
    checks = {c["role"]: c for c in json.loads(result.output)}
    assert checks["images"]["rights"]["list"].startswith("error")  # the closed port failed


def test_error_text_quoting_a_secret_is_redacted(config: Path) -> None:
    # What check does to every note: a library's message may quote the URL or a key.
    profile = load_profile(None, config_file=config)
    images = profile.endpoint("images")
    message = (
        'Could not connect to the endpoint URL: "http://admin:Hunter2pw@127.0.0.1:9/iris-images"'
        " signing with Hunter7tok"
    )
    redacted = images.redact(message)
    assert leaked(redacted) == [] and "127.0.0.1:9" in redacted
    store = profile.endpoint("results_store")
    assert leaked(store.redact("bad pwd Hunter3pwd / auth Hunter4auth")) == []
    orders = profile.endpoint("orders")
    assert leaked(orders.redact("mem://orders?pwd=Hunter5qpwd&auth=Hunter6qauth")) == []


def test_mask_url_shows_only_public_query_values() -> None:
    assert mask_url("mem://orders?lock_seconds=5&pwd=Hunter3pwd") == (
        "mem://orders?lock_seconds=5&pwd=***"
    )
    assert "Hunter4auth" not in mask_url("s3://b?auth=Hunter4auth&region=eu")
