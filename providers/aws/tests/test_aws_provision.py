"""``iris-cloud provision aws`` on a moto server with IAM enforced.

The command runs as a user would run it (click's runner, the caller's keys in
the environment), the generated identities are then held to the role table
(each allowed action allowed, each neighbouring action refused, by moto's IAM
check), and ``deprovision`` leaves nothing behind. The whole exchange on the
generated profiles is in ``tests/test_provision_exchange.py`` (it needs the
simulator).
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner, Result
from iris_cloud.cli import main
from iris_cloud.config import ROLES, load_profile
from iris_cloud.provisioning import read_env_file, role_table_is_current
from iris_cloud_aws import provision as aws
from iris_cloud_aws.testing import MotoServer, least_privilege_credentials

DOCS = Path(__file__).resolve().parents[3] / "docs" / "aws.md"


def run(moto: MotoServer, *args: str, creds: dict[str, str] | None = None) -> Result:
    creds = creds or moto.credentials
    env = {
        "AWS_ACCESS_KEY_ID": creds["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["aws_secret_access_key"],
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    where = ["--region", moto.region, "--endpoint-url", moto.endpoint_url]
    return CliRunner().invoke(main, [*args, *where], env=env, catch_exceptions=False)


@pytest.fixture
def exchange() -> str:
    return f"x{uuid.uuid4().hex[:10]}"


@pytest.fixture
def enforced(moto: MotoServer) -> Iterator[None]:
    with moto.enforce_iam():
        yield


def plan_of(moto: MotoServer, name: str) -> Any:
    return aws.build_plan(
        name, region=moto.region, account="123456789012", endpoint_url=moto.endpoint_url
    )


# ------------------------------------------------------------------ action probes


def _q(res: Any) -> str:
    return str(res.settings["url"])


PROBES: dict[str, Callable[[dict[str, Any], Any], None]] = {
    "sqs:SendMessage": lambda c, r: c["sqs"].send_message(QueueUrl=_q(r), MessageBody="probe"),
    "sqs:SendMessageBatch": lambda c, r: c["sqs"].send_message_batch(
        QueueUrl=_q(r),
        Entries=[{"Id": "1", "MessageBody": "probe"}, {"Id": "2", "MessageBody": "p"}],
    ),
    "sqs:ReceiveMessage": lambda c, r: c["sqs"].receive_message(QueueUrl=_q(r), WaitTimeSeconds=0),
    "sqs:DeleteMessage": lambda c, r: c["sqs"].delete_message(QueueUrl=_q(r), ReceiptHandle="x"),
    "sqs:ChangeMessageVisibility": lambda c, r: c["sqs"].change_message_visibility(
        QueueUrl=_q(r), ReceiptHandle="x", VisibilityTimeout=1
    ),
    "sqs:DeleteMessageBatch": lambda c, r: c["sqs"].delete_message_batch(
        QueueUrl=_q(r),
        Entries=[{"Id": "1", "ReceiptHandle": "x"}, {"Id": "2", "ReceiptHandle": "y"}],
    ),
    "sqs:ChangeMessageVisibilityBatch": lambda c, r: c["sqs"].change_message_visibility_batch(
        QueueUrl=_q(r),
        Entries=[
            {"Id": "1", "ReceiptHandle": "x", "VisibilityTimeout": 1},
            {"Id": "2", "ReceiptHandle": "y", "VisibilityTimeout": 1},
        ],
    ),
    "sqs:GetQueueAttributes": lambda c, r: c["sqs"].get_queue_attributes(
        QueueUrl=_q(r), AttributeNames=["All"]
    ),
    "sqs:PurgeQueue": lambda c, r: c["sqs"].purge_queue(QueueUrl=_q(r)),
    "sqs:DeleteQueue": lambda c, r: c["sqs"].delete_queue(QueueUrl=_q(r)),
    "sqs:SetQueueAttributes": lambda c, r: c["sqs"].set_queue_attributes(
        QueueUrl=_q(r), Attributes={"VisibilityTimeout": "60"}
    ),
    "s3:PutObject": lambda c, r: c["s3"].put_object(Bucket=r.name, Key="probe/put", Body=b"x"),
    "s3:GetObject": lambda c, r: c["s3"].get_object(Bucket=r.name, Key="probe/missing"),
    "s3:ListBucket": lambda c, r: c["s3"].list_objects_v2(Bucket=r.name),
    "s3:DeleteObject": lambda c, r: c["s3"].delete_object(Bucket=r.name, Key="probe/none"),
    "s3:AbortMultipartUpload": lambda c, r: c["s3"].abort_multipart_upload(
        Bucket=r.name, Key="probe/mp", UploadId="none"
    ),
    "s3:DeleteBucket": lambda c, r: c["s3"].delete_bucket(Bucket=r.name),
}
"""One real call per IAM action; an error other than a refusal means the action was allowed."""


def denied(probe: Callable[[dict[str, Any], Any], None], clients: dict[str, Any], res: Any) -> bool:
    try:
        probe(clients, res)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in ("AccessDenied", "403") or status == 403
    return False


def test_every_probed_action_of_the_role_table_has_a_probe() -> None:
    actions = {a for g in aws.GRANTS for a in (*g.actions, *g.refused)}
    assert actions <= set(PROBES), actions - set(PROBES)


# ------------------------------------------------------------------ the command


def test_dry_run_prints_every_resource_and_policy_and_creates_nothing(
    moto: MotoServer, exchange: str
) -> None:
    result = run(moto, "provision", "aws", exchange, "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    names = {r["name"] for r in plan["resources"]}
    assert {f"{exchange}-orders", f"{exchange}-orders-dlq", f"{exchange}-claim-check"} <= names
    assert plan["policies"]["integrator"]["Statement"]
    assert plan["policies"]["iris"]["Statement"]
    table = run(moto, "provision", "aws", exchange, "--dry-run")
    assert table.exit_code == 0
    assert f"{exchange}-integrator" in table.output and '"Statement"' in table.output
    queues = moto.client("sqs").list_queues(QueueNamePrefix=exchange)
    assert not queues.get("QueueUrls")


def test_provision_least_privilege_then_deprovision(
    moto: MotoServer, exchange: str, tmp_path: Path, enforced: None
) -> None:
    out = tmp_path / "exchange"
    result = run(moto, "provision", "aws", exchange, "--out", str(out))
    assert result.exit_code == 0, result.output
    for side in ("integrator", "iris"):
        assert (out / f"{side}.toml").is_file()
        assert stat.S_IMODE((out / f"{side}.env").stat().st_mode) == 0o600
        # no secret in the profile itself
        secret = aws.env_names(exchange, side)[1]
        assert read_env_file(out / f"{side}.env")[secret] not in (out / f"{side}.toml").read_text()

    # running it again converges: same keys, nothing new
    before = {s: (out / f"{s}.env").read_text() for s in ("integrator", "iris")}
    again = run(moto, "provision", "aws", exchange, "--out", str(out))
    assert again.exit_code == 0, again.output
    assert "kept the access key" in again.output
    assert {s: (out / f"{s}.env").read_text() for s in before} == before

    plan = plan_of(moto, exchange)
    checked = 0
    for side in ("integrator", "iris"):
        values = read_env_file(out / f"{side}.env")
        key_var, secret_var = aws.env_names(exchange, side)
        creds = {"aws_access_key_id": values[key_var], "aws_secret_access_key": values[secret_var]}
        clients = {s: moto.client(s, **creds) for s in ("sqs", "s3")}
        for grant in (g for g in plan.grants if g.side == side):
            res = plan.resource(grant.key)
            for action in grant.actions:
                assert not denied(PROBES[action], clients, res), f"{side} {action} {res.name}"
            for action in grant.refused:
                assert denied(PROBES[action], clients, res), f"{side} may {action} {res.name}"
            checked += 1
        # and nothing at all on resources its side has no row for
        granted = {g.key for g in plan.grants if g.side == side}
        for res in plan.resources:
            if res.key in granted or res.kind == "iam user":
                continue
            probe = "sqs:ReceiveMessage" if res.kind == "sqs queue" else "s3:GetObject"
            assert denied(PROBES[probe], clients, res), f"{side} reaches {res.name}"
        # nor any administration
        with pytest.raises(ClientError):
            clients["sqs"].create_queue(QueueName=f"{exchange}-extra")
        with pytest.raises(ClientError):
            moto.client("iam", **creds).create_user(UserName=f"{exchange}-extra")
    assert checked == len(plan.grants)

    # deprovision keeps a bucket that holds objects, unless --force
    result = run(moto, "deprovision", "aws", exchange, "--yes")
    assert result.exit_code == 0, result.output
    assert f"kept bucket {exchange}-images" in result.output  # the probe's object
    result = run(moto, "deprovision", "aws", exchange, "--yes", "--force")
    assert result.exit_code == 0, result.output
    assert not moto.client("sqs").list_queues(QueueNamePrefix=exchange).get("QueueUrls")
    buckets = [b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]]
    assert not [b for b in buckets if b.startswith(exchange)]
    users = [u["UserName"] for u in moto.client("iam").list_users()["Users"]]
    assert not [u for u in users if u.startswith(exchange)]


def test_deprovision_asks_first(moto: MotoServer, exchange: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "deprovision",
            "aws",
            exchange,
            "--region",
            moto.region,
            "--endpoint-url",
            moto.endpoint_url,
            "--account",
            "123456789012",
        ],
        input="n\n",
        env={
            "AWS_ACCESS_KEY_ID": moto.credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": moto.credentials["aws_secret_access_key"],
        },
    )
    assert result.exit_code == 1 and "Aborted" in result.output


def test_a_missing_right_is_named_and_what_exists_is_listed(
    moto: MotoServer, exchange: str, tmp_path: Path, enforced: None
) -> None:
    caller = least_privilege_credentials(moto, ["sqs:CreateQueue", "sqs:SetQueueAttributes"])
    result = run(
        moto,
        "provision",
        "aws",
        exchange,
        "--account",
        "123456789012",
        "--out",
        str(tmp_path),
        creds=caller,
    )
    assert result.exit_code == 1
    assert "grant IAM action s3:CreateBucket" in result.output
    assert f"queue {exchange}-orders" in result.output and "Run provision again" in result.output
    assert not (tmp_path / "integrator.toml").exists()
    # the admin completes it
    done = run(moto, "provision", "aws", exchange, "--out", str(tmp_path))
    assert done.exit_code == 0, done.output
    run(moto, "deprovision", "aws", exchange, "--yes", "--force")


def test_generated_profiles_open_unchanged(
    moto: MotoServer, exchange: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "x"
    guid = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
    assert (
        run(moto, "provision", "aws", exchange, "--out", str(out), "--client-guid", guid).exit_code
        == 0
    )
    for side in ("integrator", "iris"):
        for key, value in read_env_file(out / f"{side}.env").items():
            monkeypatch.setenv(key, value)
    integrator = load_profile(config_file=out / "integrator.toml")
    iris = load_profile(config_file=out / "iris.toml")
    assert integrator.side == "integrator" and iris.side == "platform"
    assert integrator.client_guid == guid
    assert set(integrator.roles()) == set(ROLES)
    with integrator.open_broker("orders") as orders:
        orders.send([_message()])
    with iris.open_broker("orders") as received:
        [msg] = received.receive(max_messages=1, wait=2)
        received.complete(msg)
    run(moto, "deprovision", "aws", exchange, "--yes", "--force")


def _message() -> Any:
    from iris_cloud.ports import Message

    return Message(body=b'{"probe": true}')


@pytest.mark.filterwarnings("ignore:Tried to parse AWS.*QueuePolicy")
def test_cloudformation_template_deploys_on_moto(moto: MotoServer, exchange: str) -> None:
    result = run(moto, "provision", "aws", exchange, "--format", "cloudformation")
    assert result.exit_code == 0, result.output
    template = json.loads(result.output)
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName=exchange, TemplateBody=json.dumps(template))
    assert cfn.describe_stacks(StackName=exchange)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    plan = plan_of(moto, exchange)
    sqs, s3, iam = (moto.client(s) for s in ("sqs", "s3", "iam"))
    orders = sqs.get_queue_attributes(
        QueueUrl=_q(plan.resource("queue:orders")), AttributeNames=["All"]
    )
    redrive = json.loads(orders["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f"{exchange}-orders-dlq")
    assert f"{exchange}-claim-check" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # moto's CloudFormation does not apply a bucket's LifecycleConfiguration (nor
    # AWS::SQS::QueuePolicy): the template's rules are checked as data here.
    bucket = template["Resources"]["BucketClaimCheck"]["Properties"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-payloads"]["ExpirationInDays"] == 7
    assert rules["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    queue_policy = template["Resources"]["QueueImageNotificationsPolicy"]["Properties"]
    assert queue_policy["PolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "s3.amazonaws.com"
    }
    for side, user in plan.identities.items():
        doc = iam.get_user_policy(UserName=user, PolicyName="iris-cloud-exchange")["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        assert doc == plan.policies[side]
    cfn.delete_stack(StackName=exchange)


def test_the_role_table_in_docs_is_generated_from_the_grants() -> None:
    assert role_table_is_current(
        DOCS,
        aws.GRANTS,
        aws.doc_resource_names(),
        generator="iris_cloud_aws.provision",
        update=os.environ.get("IRIS_CLOUD_UPDATE_DOCS") == "1",
    ), "docs/aws.md's role table is stale: IRIS_CLOUD_UPDATE_DOCS=1 pytest"


def test_a_changed_setting_converges_on_the_next_run(
    moto: MotoServer, exchange: str, tmp_path: Path
) -> None:
    assert run(moto, "provision", "aws", exchange, "--out", str(tmp_path)).exit_code == 0
    again = run(
        moto,
        "provision",
        "aws",
        exchange,
        "--out",
        str(tmp_path),
        "--max-receive-count",
        "9",
        "--visibility-timeout",
        "30",
    )
    assert again.exit_code == 0, again.output
    url = _q(plan_of(moto, exchange).resource("queue:events"))
    attrs = moto.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    assert attrs["Attributes"]["VisibilityTimeout"] == "30"
    assert json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"] == 9
    run(moto, "deprovision", "aws", exchange, "--yes", "--force")


def test_keys_not_in_the_env_files_are_not_multiplied(
    moto: MotoServer, exchange: str, tmp_path: Path
) -> None:
    # Lost .env files: each run makes a new key while there is room, then says what to do.
    for attempt in range(2):
        out = tmp_path / f"run{attempt}"
        assert run(moto, "provision", "aws", exchange, "--out", str(out)).exit_code == 0
    third = run(moto, "provision", "aws", exchange, "--out", str(tmp_path / "run2"))
    assert third.exit_code == 1
    assert "already has two access keys" in third.output and "iam:DeleteAccessKey" in third.output
    run(moto, "deprovision", "aws", exchange, "--yes", "--force")


def test_a_dry_run_needs_no_credentials(moto: MotoServer, exchange: str) -> None:
    result = CliRunner().invoke(
        main,
        ["provision", "aws", exchange, "--region", "eu-central-1", "--dry-run", "--format", "json"],
        env={
            "AWS_ACCESS_KEY_ID": None,
            "AWS_SECRET_ACCESS_KEY": None,
            "AWS_PROFILE": None,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert "arn:aws:sqs:eu-central-1:ACCOUNT_ID:" in json.dumps(plan["policies"])


def test_the_printed_caller_policy_is_enough_to_provision_and_deprovision(
    moto: MotoServer, exchange: str, tmp_path: Path, enforced: None
) -> None:
    printed = run(moto, "provision", "aws", exchange, "--format", "caller-policy")
    assert printed.exit_code == 0, printed.output
    iam = moto.client("iam")
    user = f"{exchange}-operator"
    iam.create_user(UserName=user)
    policy = json.loads(printed.output)
    # moto checks CreateQueue of a queue that does not exist yet, and every IAM
    # user action, against resource "*" (AWS against the queue's / user's ARN):
    # here those two get "*"; the rest of the scoping is checked as written.
    policy["Statement"].append({"Effect": "Allow", "Action": "sqs:CreateQueue", "Resource": "*"})
    # moto also authorizes DeleteObjects (the batch) as s3:DeleteObject on the bucket.
    for statement in policy["Statement"]:
        if statement.get("Sid") == "Users":
            statement["Resource"] = "*"
        if statement.get("Sid") == "EmptyBuckets":
            statement["Resource"] = [statement["Resource"], statement["Resource"][:-2]]
    iam.put_user_policy(UserName=user, PolicyName="caller", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    caller = {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }
    out = tmp_path / "x"
    result = run(
        moto, "provision", "aws", exchange, "--versioning", "--out", str(out), creds=caller
    )
    assert result.exit_code == 0, result.output
    moto.client("s3").put_object(Bucket=f"{exchange}-images", Key="a", Body=b"x")
    result = run(moto, "deprovision", "aws", exchange, "--yes", "--force", creds=caller)
    assert result.exit_code == 0, result.output
    assert not moto.client("sqs").list_queues(QueueNamePrefix=exchange).get("QueueUrls")
    left = [u["UserName"] for u in iam.list_users()["Users"] if u["UserName"].startswith(exchange)]
    assert left == [user]
    # and it reaches nothing outside the exchange's names
    other = f"y{exchange}"
    refused = run(moto, "provision", "aws", other, "--account", "123456789012", creds=caller)
    assert refused.exit_code == 1 and "grant IAM action s3:CreateBucket" in refused.output
    run(moto, "deprovision", "aws", other, "--yes")


def test_objects_that_cannot_be_deleted_are_reported(
    moto: MotoServer, exchange: str, tmp_path: Path, enforced: None
) -> None:
    assert run(moto, "provision", "aws", exchange, "--out", str(tmp_path)).exit_code == 0
    moto.client("s3").put_object(Bucket=f"{exchange}-images", Key="a", Body=b"x")
    # everything but deleting objects: the batch delete refuses each key
    caller = least_privilege_credentials(
        moto, ["sqs:*", "iam:*", "s3:ListBucketVersions", "s3:DeleteBucket"]
    )
    result = run(moto, "deprovision", "aws", exchange, "--yes", "--force", creds=caller)
    assert result.exit_code == 1
    assert f"1 objects of bucket {exchange}-images could not be deleted (AccessDenied)" in (
        result.output
    )
    assert f"Removed so far: user {exchange}-integrator" in result.output
    assert "Run deprovision again" in result.output
    assert run(moto, "deprovision", "aws", exchange, "--yes", "--force").exit_code == 0
