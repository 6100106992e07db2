"""The whole IRIS exchange on the profiles ``iris-cloud provision`` writes.

AWS: ``provision aws`` on a moto server with IAM enforced; the simulator
opens ``iris.toml`` and the client and consumer ``integrator.toml``, each with
only its identity's access key (from the 0600 ``.env`` files), so every call
of the exchange is checked against the generated policies. Google Cloud:
``provision gcp`` on the Pub/Sub and Cloud Storage emulators (which check no
IAM; the bindings are tested as data in ``providers/gcp/tests``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from iris_cloud.cli import main
from iris_cloud.config import load_profile
from iris_cloud.provisioning import read_env_file
from test_workflow_providers import CLIENT_GUID, CONSUMER, _server, _testing_module, run_exchange


def _load(out: Path, side: str, monkeypatch: pytest.MonkeyPatch) -> object:
    env = out / f"{side}.env"
    if env.exists():
        for key, value in read_env_file(env).items():
            monkeypatch.setenv(key, value)
    return load_profile(
        config_file=out / f"{side}.toml",
        overrides={"consumer": CONSUMER},
    )


def test_exchange_on_provisioned_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    testing = _testing_module("iris_cloud_aws.testing")
    name = f"x{uuid.uuid4().hex[:10]}"
    out = tmp_path / "exchange"
    with _server("moto", testing.moto_server) as moto, moto.enforce_iam():
        env = {
            "AWS_ACCESS_KEY_ID": moto.credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": moto.credentials["aws_secret_access_key"],
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        where = ["--region", moto.region, "--endpoint-url", moto.endpoint_url]
        result = CliRunner().invoke(
            main,
            [
                "provision",
                "aws",
                name,
                "--out",
                str(out),
                "--client-guid",
                CLIENT_GUID,
                "--visibility-timeout",
                "5",
                *where,
            ],
            env=env,
        )
        assert result.exit_code == 0, result.output
        integrator = _load(out, "integrator", monkeypatch)
        iris = _load(out, "iris", monkeypatch)
        run_exchange(integrator, iris, tmp_path / "simulator")  # type: ignore[arg-type]
        result = CliRunner().invoke(
            main, ["deprovision", "aws", name, "--yes", "--force", *where], env=env
        )
        assert result.exit_code == 0, result.output
        assert not moto.client("sqs").list_queues(QueueNamePrefix=name).get("QueueUrls")
        buckets = [b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]]
        assert not [b for b in buckets if b.startswith(name)]


def test_exchange_on_provisioned_gcp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    testing = _testing_module("iris_cloud_gcp.testing")
    name = f"x{uuid.uuid4().hex[:8]}"
    out = tmp_path / "exchange"
    with _server("GCS + Pub/Sub emulators", testing.gcp_servers) as servers:
        where = [
            "--project",
            servers.project,
            "--pubsub-emulator-host",
            servers.pubsub_host,
            "--storage-endpoint",
            servers.gcs.endpoint,
        ]
        result = CliRunner().invoke(
            main,
            [
                "provision",
                "gcp",
                name,
                "--out",
                str(out),
                "--client-guid",
                CLIENT_GUID,
                "--ack-deadline",
                "5",
                *where,
            ],
        )
        assert result.exit_code == 0, result.output
        integrator = _load(out, "integrator", monkeypatch)
        iris = _load(out, "iris", monkeypatch)
        run_exchange(integrator, iris, tmp_path / "simulator")  # type: ignore[arg-type]
        result = CliRunner().invoke(main, ["deprovision", "gcp", name, "--yes", "--force", *where])
        assert result.exit_code == 0, result.output
