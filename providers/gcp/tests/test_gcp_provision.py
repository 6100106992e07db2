"""``iris-cloud provision gcp`` on the Pub/Sub and Cloud Storage emulators.

Neither emulator implements IAM, so the service accounts' bindings are tested
as data against the role table; the resources are created for real and the
whole exchange on the generated profiles runs in
``tests/test_provision_exchange.py``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from iris_cloud.cli import main
from iris_cloud.provisioning import role_table_is_current
from iris_cloud.testing import require_server
from iris_cloud_gcp import provision as gcp
from iris_cloud_gcp.testing import EmulatorUnavailable, GcpServers, gcp_servers

DOCS = Path(__file__).resolve().parents[3] / "docs" / "gcp.md"


@pytest.fixture(scope="module")
def servers() -> Iterator[GcpServers]:
    try:
        with gcp_servers() as s:
            yield s
    except EmulatorUnavailable as exc:
        require_server(str(exc))


def where(servers: GcpServers) -> list[str]:
    return [
        "--project",
        servers.project,
        "--pubsub-emulator-host",
        servers.pubsub_host,
        "--storage-endpoint",
        servers.gcs.endpoint,
    ]


def test_bindings_are_exactly_the_role_table() -> None:
    plan = gcp.build_plan("acme", project="p1")
    for side in ("integrator", "iris"):
        member = f"serviceAccount:acme-{side}@p1.iam.gserviceaccount.com"
        expected = {
            (plan.resource(g.key).name, role)
            for g in gcp.GRANTS
            if g.side == side
            for role in g.actions
        }
        got = {(b["resource"], b["role"]) for b in plan.policies[side]}
        assert got == expected
        assert {b["member"] for b in plan.policies[side]} == {member}
        for g in (g for g in gcp.GRANTS if g.side == side):
            name = plan.resource(g.key).name
            assert not {(name, r) for r in g.refused} & got, (side, g.role, g.refused)
    # the sides are disjoint where they must be: nobody both sends and receives a role
    pub = "roles/pubsub.publisher"
    for side, other in (("integrator", "iris"), ("iris", "integrator")):
        mine = {b["resource"] for b in plan.policies[side] if b["role"] == pub}
        theirs = {b["resource"] for b in plan.policies[other] if b["role"] == pub}
        assert not {r for r in mine & theirs if "-dead" not in r}
    script = gcp.iam_script(plan, "p1")
    assert (
        "notifications create gs://acme-images --topic=projects/p1/topics/acme-image-notifications"
        in (script)
    )
    # the agent's grant comes before the notification that needs it
    grant = script.index(
        'acme-image-notifications --role roles/pubsub.publisher --member "$GCS_AGENT"'
    )
    assert grant < script.index("notifications create")
    iris = gcp.profiles(plan, project="p1")["iris"]
    assert iris["images"]["notification_subscription"] == (
        "projects/p1/subscriptions/acme-image-notifications-sub"
    )
    assert iris["orders"]["credentials_file"] == {"env": gcp.env_name("acme", "iris")}
    for side in ("integrator", "iris"):
        for b in plan.policies[side]:
            assert f"--role {b['role']} --member {b['member']}" in script


def test_provision_and_deprovision_on_the_emulators(servers: GcpServers, tmp_path: Path) -> None:
    name = f"x{uuid.uuid4().hex[:8]}"
    out = tmp_path / "x"
    dry = CliRunner().invoke(
        main, ["provision", "gcp", name, *where(servers), "--dry-run", "--format", "json"]
    )
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["policies"]["iris"]
    for _ in range(2):  # idempotent
        result = CliRunner().invoke(
            main, ["provision", "gcp", name, *where(servers), "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
    assert (out / "integrator.toml").is_file() and (out / "iam.sh").is_file()
    client = servers.gcs.client()
    rules = list(client.get_bucket(f"{name}-claim-check").lifecycle_rules)
    assert {r["action"]["type"] for r in rules} == {"Delete", "AbortIncompleteMultipartUpload"}
    client.bucket(f"{name}-images").blob("kept").upload_from_string(b"x")
    result = CliRunner().invoke(main, ["deprovision", "gcp", name, *where(servers), "--yes"])
    assert result.exit_code == 0, result.output
    assert f"kept bucket {name}-images" in result.output
    result = CliRunner().invoke(
        main, ["deprovision", "gcp", name, *where(servers), "--yes", "--force"]
    )
    assert result.exit_code == 0, result.output
    assert not [b for b in client.list_buckets() if b.name.startswith(name)]
    from iris_cloud_gcp.testing import PubSubAdmin

    admin = PubSubAdmin(servers.pubsub_host, servers.project)
    try:
        topics = admin.publisher.list_topics(request={"project": f"projects/{servers.project}"})
        assert not [t for t in topics if f"/{name}-" in t.name]
    finally:
        admin.close()
    client.close()


def test_the_role_table_in_docs_is_generated_from_the_grants() -> None:
    assert role_table_is_current(
        DOCS,
        gcp.GRANTS,
        gcp.doc_resource_names(),
        generator="iris_cloud_gcp.provision",
        update=os.environ.get("IRIS_CLOUD_UPDATE_DOCS") == "1",
    ), "docs/gcp.md's role table is stale: IRIS_CLOUD_UPDATE_DOCS=1 pytest"
