"""With every provider installed, starting the CLI or opening one URL imports only what it uses."""

from __future__ import annotations

import json
import subprocess
import sys

SDKS = (
    "boto3",
    "azure.servicebus",
    "azure.storage.blob",
    "google.cloud.pubsub",
    "google.cloud.storage",
)


def _modules_after(code: str) -> dict[str, bool]:
    probe = (
        f"import sys\n{code}\n"
        f"import json; print(json.dumps({{m: m in sys.modules for m in {SDKS!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_every_cloud_provider_is_installed_here() -> None:
    from iris_cloud import plugins

    assert {"awssqs", "azuresb", "gcppubsub"} <= set(plugins.served_schemes("broker"))
    assert {"s3", "azblob", "gs"} <= set(plugins.served_schemes("store"))


def test_cli_start_imports_no_sdk() -> None:
    loaded = _modules_after(
        "from iris_cloud.cli import main\nfrom iris_cloud import plugins\n"
        "plugins.get_plugin_manager()"
    )
    assert not any(loaded.values()), loaded


def test_opening_one_scheme_imports_only_its_sdk() -> None:
    loaded = _modules_after(
        "import iris_cloud\niris_cloud.open_store('s3://bucket/prefix', region='eu-west-1')"
    )
    assert loaded["boto3"]
    assert not any(v for k, v in loaded.items() if k != "boto3"), loaded


def test_providers_listing_imports_them_all() -> None:
    from iris_cloud import plugins

    listed = {p.name: p for p in plugins.providers()}
    assert set(listed["aws"].broker_schemes) == {"awssqs"}
    assert set(listed["azure"].store_schemes) == {"azblob"}
    assert set(listed["gcp"].store_schemes) == {"gs"}
