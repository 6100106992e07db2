"""The hostile-input suite: what a sender with send rights can do, and what must still hold.

Each test sends what an attacker could send and checks a property the README
promises, through the consumer or the CLI where that is where it matters.
Cases that differ per provider (attributes, AMQP bodies, ...) are in the
contract suite (``iris_cloud.testing.contract``), which every provider runs;
the fixtures here are the built-in ``local://`` + ``file://`` endpoints and
the ``iris-cloud`` command.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

CLIENT_GUID = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"


@pytest.fixture(autouse=True)
def _no_ambient_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's IRIS_CLOUD_* variables must not point the tests elsewhere.
    import os

    for key in list(os.environ):
        if key.startswith("IRIS_CLOUD_") and key != "IRIS_CLOUD_REQUIRE_EMULATORS":
            monkeypatch.delenv(key)


@pytest.fixture
def local_config(tmp_path: Path) -> Callable[..., Path]:
    """Write ``iris-cloud.toml`` for a profile on ``local://`` queues and ``file://`` stores
    under ``tmp_path`` (claim check included); keyword arguments add profile lines
    (``name=value`` as TOML). Returns the file's path."""

    def write(**settings: object) -> Path:
        lines = ['default_profile = "hostile"', "[profiles.hostile]"]
        lines.append(f'client_guid = "{CLIENT_GUID}"')
        for role in ("orders", "events", "results", "gradings"):
            lines.append(f'{role} = "local://{tmp_path}/queues?queue={role}"')
        for role in ("images", "results_store", "claim_check"):
            lines.append(f'{role} = "file://{tmp_path}/{role}"')
        lines += [f"{key} = {value!r}" for key, value in settings.items()]
        lines += ["[profiles.hostile.consumer]", "wait = 0.1"]
        path = tmp_path / "iris-cloud.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run ``iris-cloud ARGS...`` in-process; returns click's result."""
    from iris_cloud.cli import main

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run
