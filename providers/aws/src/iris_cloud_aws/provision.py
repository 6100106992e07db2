"""``iris-cloud provision aws NAME``: an integrator-owned exchange on SQS + S3.

:func:`build_plan` turns a name into a :class:`~iris_cloud.provisioning.Plan`:
the queues (each with a dead-letter queue and redrive policy), the buckets
(images private and encrypted, results, claim check with expiry and
abort-incomplete-multipart rules), the images -> SQS notification that the
Order First listener follows, and two IAM users, ``NAME-integrator`` and
``NAME-iris``, whose inline policies hold exactly the actions of :data:`GRANTS`
on exactly those resources. :func:`apply` creates it idempotently (every
step converges: a second run changes nothing, a half-finished one is
completed); :func:`destroy` removes it; :func:`cloudformation_template` is the
same plan as a CloudFormation template; :func:`profiles` are the two sides'
profile files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from iris_cloud.config import ROLES
from iris_cloud.provisioning import Grant, Plan, ProvisionError, Resource

__all__ = [
    "GRANTS",
    "Provisioned",
    "apply",
    "build_plan",
    "caller_policy",
    "cloudformation_template",
    "destroy",
    "doc_resource_names",
    "profiles",
    "queue_url",
]

QUEUES = ("orders", "events", "results", "gradings", "image-notifications")
"""Every queue of an exchange; each has a ``-dlq`` dead-letter queue."""
BUCKETS = ("images", "results", "claim-check")

# AWS authorizes the batch calls by their single-call actions (SendMessageBatch
# by sqs:SendMessage) and ignores the batch names; moto (and so our tests)
# checks the batch names, so the policies have both.
_SEND = ("sqs:SendMessage", "sqs:SendMessageBatch", "sqs:GetQueueAttributes")
_RECEIVE = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:DeleteMessageBatch",
    "sqs:ChangeMessageVisibility",
    "sqs:ChangeMessageVisibilityBatch",
    "sqs:GetQueueAttributes",
)
_DLQ = (
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:DeleteMessageBatch",
    "sqs:GetQueueAttributes",
)
_QUEUE_ADMIN = ("sqs:PurgeQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes")


def _send(side: Any, role: str, what: str) -> Grant:
    return Grant(
        side,
        role,
        f"queue:{role}",
        _SEND,
        f"send {what}; the attributes give the size limit",
        ("sqs:ReceiveMessage", "sqs:DeleteMessage", *_QUEUE_ADMIN),
    )


def _receive(side: Any, role: str, what: str) -> list[Grant]:
    return [
        Grant(
            side,
            role,
            f"queue:{role}",
            _RECEIVE,
            f"receive and settle {what}, renew locks",
            ("sqs:SendMessage", *_QUEUE_ADMIN),
        ),
        Grant(
            side,
            role,
            f"dlq:{role}",
            _DLQ,
            "dead-letter a message with its reason; read the dead letters",
            _QUEUE_ADMIN,
        ),
    ]


GRANTS: list[Grant] = [
    # the integrator: sends orders (and gradings in test setups), receives events and results
    _send("integrator", "orders", "OrderRequests"),
    _send("integrator", "gradings", "GradingSubmissions"),
    *_receive("integrator", "events", "events"),
    *_receive("integrator", "results", "OrderResults"),
    Grant(
        "integrator",
        "images",
        "bucket:images",
        ("s3:PutObject", "s3:AbortMultipartUpload"),
        "upload images (conditional create, multipart)",
        ("s3:GetObject", "s3:ListBucket", "s3:DeleteObject"),
    ),
    Grant(
        "integrator",
        "results_store",
        "bucket:results",
        ("s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:AbortMultipartUpload"),
        "save result documents and read them back",
        ("s3:DeleteObject", "s3:DeleteBucket"),
    ),
    Grant(
        "integrator",
        "claim_check",
        "bucket:claim-check",
        ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"),
        "offload large bodies, fetch offloaded ones",
        ("s3:ListBucket", "s3:DeleteObject"),
    ),
    # IRIS: the mirror image, plus reading images and their notifications
    *_receive("iris", "orders", "OrderRequests"),
    *_receive("iris", "gradings", "GradingSubmissions"),
    _send("iris", "events", "events"),
    _send("iris", "results", "OrderResults"),
    Grant(
        "iris",
        "images",
        "bucket:images",
        ("s3:GetObject", "s3:ListBucket"),
        "read uploaded images (Order First: list at start)",
        ("s3:PutObject", "s3:DeleteObject"),
    ),
    Grant(
        "iris",
        "images (notifications)",
        "queue:image-notifications",
        ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
        "follow the bucket's ObjectCreated events (Order First)",
        ("sqs:SendMessage", *_QUEUE_ADMIN),
    ),
    Grant(
        "iris",
        "claim_check",
        "bucket:claim-check",
        ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"),
        "offload large results, fetch offloaded orders",
        ("s3:ListBucket", "s3:DeleteObject"),
    ),
]
"""The role table: the only place the two identities' rights are written down."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")
_BUCKET_LEVEL = {"s3:ListBucket", "s3:DeleteBucket"}
_POLICY_NAME = "iris-cloud-exchange"


def doc_resource_names() -> dict[str, str]:
    """How the role table in docs/aws.md names each resource key."""
    names = {f"queue:{q}": f"queue `NAME-{q}`" for q in QUEUES}
    names |= {f"dlq:{q}": f"queue `NAME-{q}-dlq`" for q in QUEUES}
    names |= {f"bucket:{b}": f"bucket `NAME-{b}`" for b in BUCKETS}
    return names


def queue_url(name: str, *, region: str, account: str, endpoint_url: str | None) -> str:
    """The URL of queue ``name`` (AWS's form, or the custom endpoint's)."""
    base = endpoint_url.rstrip("/") if endpoint_url else f"https://sqs.{region}.amazonaws.com"
    return f"{base}/{account}/{name}"


def build_plan(
    name: str,
    *,
    region: str,
    account: str,
    endpoint_url: str | None = None,
    max_receive_count: int = 5,
    visibility_timeout: int = 60,
    claim_check_days: int = 7,
    versioning: bool = False,
) -> Plan:
    """The plan of exchange ``name`` in ``account`` / ``region`` (nothing is called).

    ``name`` becomes the prefix of every queue, bucket and user, so it must be
    valid in a bucket name (3-40 lowercase letters, digits, hyphens) and, for
    the buckets, unique in AWS.
    """
    if not _NAME.match(name):
        raise ProvisionError(
            f"exchange name {name!r} must be 3-40 lowercase letters, digits or hyphens "
            "(it prefixes bucket names)"
        )
    resources: list[Resource] = []
    for q in QUEUES:
        dlq = f"{name}-{q}-dlq"
        resources.append(
            Resource(
                "sqs queue",
                f"dlq:{q}",
                dlq,
                {
                    "MessageRetentionPeriod": "1209600",
                    "SqsManagedSseEnabled": "true",
                    "arn": f"arn:aws:sqs:{region}:{account}:{dlq}",
                    "url": queue_url(
                        dlq, region=region, account=account, endpoint_url=endpoint_url
                    ),
                },
            )
        )
        settings: dict[str, Any] = {
            "VisibilityTimeout": str(visibility_timeout),
            "MessageRetentionPeriod": "345600",
            "SqsManagedSseEnabled": "true",
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": f"arn:aws:sqs:{region}:{account}:{dlq}",
                    "maxReceiveCount": max_receive_count,
                }
            ),
            "arn": f"arn:aws:sqs:{region}:{account}:{name}-{q}",
            "url": queue_url(
                f"{name}-{q}", region=region, account=account, endpoint_url=endpoint_url
            ),
        }
        if q == "image-notifications":
            settings["Policy"] = json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "images-bucket-events",
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": settings["arn"],
                            "Condition": {
                                "ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{name}-images"},
                                "StringEquals": {"aws:SourceAccount": account},
                            },
                        }
                    ],
                }
            )
        resources.append(Resource("sqs queue", f"queue:{q}", f"{name}-{q}", settings))
    for b in BUCKETS:
        bucket: dict[str, Any] = {
            "arn": f"arn:aws:s3:::{name}-{b}",
            "encryption": "SSE-S3 (AES256)",
            "public_access": "all blocked",
            "lifecycle": [
                {"rule": "abort-incomplete-multipart", "AbortIncompleteMultipartUpload": 1}
            ],
        }
        if b == "images":
            bucket["versioning"] = "Enabled" if versioning else "off"
            bucket["notification"] = {
                "queue": f"{name}-image-notifications",
                "events": ["s3:ObjectCreated:*"],
            }
        if b == "claim-check":
            bucket["lifecycle"].append(
                {"rule": "expire-payloads", "ExpirationDays": claim_check_days}
            )
        resources.append(Resource("s3 bucket", f"bucket:{b}", f"{name}-{b}", bucket))
    identities = {"integrator": f"{name}-integrator", "iris": f"{name}-iris"}
    for side, user in identities.items():
        resources.append(
            Resource(
                "iam user",
                f"user:{side}",
                user,
                {"policy": _POLICY_NAME, "access_key": "one, written to the side's .env file"},
            )
        )
    plan = Plan("aws", name, resources, list(GRANTS), identities, {})
    plan.policies = {side: _policy(plan, side) for side in identities}
    plan.notes.append(
        f"region {region}, account {account}; bucket names must be unique in AWS, "
        "so NAME should be too"
    )
    return plan


def _policy(plan: Plan, side: str) -> dict[str, Any]:
    statements = []
    for grant in plan.grants:
        if grant.side != side:
            continue
        res = plan.resource(grant.key)
        arn = str(res.settings["arn"])
        sid = re.sub(r"[^A-Za-z0-9]", "", f"{grant.role.title()}{grant.key.title()}")
        if res.kind == "s3 bucket":
            objects = [a for a in grant.actions if a not in _BUCKET_LEVEL]
            bucket = [a for a in grant.actions if a in _BUCKET_LEVEL]
            if objects:
                statements.append(_statement(sid + "Objects", objects, f"{arn}/*"))
            if bucket:
                statements.append(_statement(sid + "Bucket", bucket, arn))
        else:
            statements.append(_statement(sid, list(grant.actions), arn))
    return {"Version": "2012-10-17", "Statement": statements}


def _statement(sid: str, actions: list[str], resource: str) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}


_CALLER: dict[str, tuple[str, ...]] = {
    "sqs": (
        "sqs:CreateQueue",
        "sqs:SetQueueAttributes",
        "sqs:DeleteQueue",
    ),
    "s3": (
        "s3:CreateBucket",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutEncryptionConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:PutBucketNotification",
        "s3:PutBucketVersioning",
        "s3:ListBucketVersions",
        "s3:DeleteBucket",
    ),
    "s3-objects": ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "iam": (
        "iam:CreateUser",
        "iam:TagUser",
        "iam:PutUserPolicy",
        "iam:ListAccessKeys",
        "iam:CreateAccessKey",
        "iam:DeleteAccessKey",
        "iam:ListUserPolicies",
        "iam:DeleteUserPolicy",
        "iam:DeleteUser",
    ),
}
"""What ``provision`` and ``deprovision`` themselves call, by resource kind."""


def caller_policy(plan: Plan, *, region: str, account: str) -> dict[str, Any]:
    """The policy the *caller* of ``provision`` / ``deprovision`` needs for ``plan``.

    Scoped to the exchange's own names (``NAME-*``), so an operator may hand
    it to whoever runs the command (``--format caller-policy``).
    """
    name = plan.name
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement("Queues", list(_CALLER["sqs"]), f"arn:aws:sqs:{region}:{account}:{name}-*"),
            _statement("Buckets", list(_CALLER["s3"]), f"arn:aws:s3:::{name}-*"),
            _statement("EmptyBuckets", list(_CALLER["s3-objects"]), f"arn:aws:s3:::{name}-*/*"),
            _statement("Users", list(_CALLER["iam"]), f"arn:aws:iam::{account}:user/{name}-*"),
            _statement("WhoAmI", ["sts:GetCallerIdentity"], "*"),
        ],
    }


# ------------------------------------------------------------------ profiles


def env_names(name: str, side: str) -> tuple[str, str]:
    """The environment variables holding ``side``'s access key id and secret."""
    stem = f"IRIS_{name.upper().replace('-', '_')}_{side.upper()}_AWS"
    return f"{stem}_ACCESS_KEY_ID", f"{stem}_SECRET_ACCESS_KEY"


def profiles(
    plan: Plan, *, region: str, endpoint_url: str | None, client_guid: str | None = None
) -> dict[str, dict[str, Any]]:
    """The ``integrator`` and ``iris`` profiles (file stem -> profile data).

    Queues are named by URL and dead-letter queues given explicitly, so
    neither side needs ``sqs:GetQueueUrl``; secrets are ``{"env": VAR}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for side in plan.identities:
        key_id, secret = env_names(plan.name, side)
        common: dict[str, Any] = {"region": region}
        if endpoint_url:
            common["endpoint_url"] = endpoint_url
        common |= {"aws_access_key_id": {"env": key_id}, "aws_secret_access_key": {"env": secret}}
        data: dict[str, Any] = {}
        if client_guid:
            data["client_guid"] = client_guid
        if side == "iris":
            data["side"] = "platform"
        for grant in plan.grants:
            if grant.side != side or grant.role not in _PROFILE_ROLES:
                continue
            res = plan.resource(grant.key)
            if grant.key.startswith("queue:"):
                url = str(res.settings["url"]).split("://", 1)[1]
                endpoint = {"url": f"awssqs://{url}", **common}
                if "sqs:ReceiveMessage" in grant.actions:
                    dlq = plan.resource(grant.key.replace("queue:", "dlq:"))
                    endpoint["dead_letter_queue"] = dlq.settings["url"]
                data[grant.role] = endpoint
            elif grant.key.startswith("bucket:"):
                endpoint = {"url": f"s3://{res.name}", **common}
                if side == "iris" and grant.role == "images":
                    notes = plan.resource("queue:image-notifications")
                    endpoint["notification_queue"] = notes.settings["url"]
                data[grant.role] = endpoint
        out[side] = {k: data[k] for k in sorted(data, key=_order)}
    return out


_PROFILE_ROLES = tuple(ROLES)


def _order(key: str) -> int:
    return -1 if key in ("client_guid", "side") else _PROFILE_ROLES.index(key)


# ------------------------------------------------------------------ applying


@dataclass
class Provisioned:
    """What :func:`apply` did: steps done, and any new access keys per side."""

    done: list[str] = field(default_factory=list)
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    """side -> {env var: value} for keys created in this run (to be written once)."""


_DENIED = {"AccessDenied", "AccessDeniedException", "403", "UnauthorizedOperation"}


@contextmanager
def _step(action: str, target: str, done: list[str], *, removing: bool = False) -> Iterator[None]:
    # Every call says which IAM action it is, so a refusal can name what to grant.
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _DENIED or status == 403:
            raise ProvisionError(
                f"the caller's credentials may not {action} on {target}: grant IAM action {action}",
                done=done,
                removing=removing,
            ) from exc
        raise ProvisionError(
            f"{action} on {target} failed ({code or status})", done=done, removing=removing
        ) from exc
    except BotoCoreError as exc:
        raise ProvisionError(
            f"{action} on {target} failed ({type(exc).__name__})", done=done, removing=removing
        ) from exc


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def apply(
    plan: Plan, session: Any, *, endpoint_url: str | None, known_keys: Mapping[str, str] = {}
) -> Provisioned:
    """Create (or converge) everything in ``plan`` with ``session``'s credentials.

    ``known_keys`` maps a side to the access key id its ``.env`` file holds:
    if that key still exists it is kept, otherwise a new key is made. Raises
    :class:`ProvisionError` naming the step, the IAM action the caller lacks
    (if that was it) and what is already in place.
    """
    from botocore.exceptions import ClientError

    sqs = session.client("sqs", endpoint_url=endpoint_url)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    iam = session.client("iam", endpoint_url=endpoint_url)
    result = Provisioned()
    done = result.done
    queues = [r for r in plan.resources if r.kind == "sqs queue"]
    # dead-letter queues first: the redrive policies name them
    for res in sorted(queues, key=lambda r: not r.key.startswith("dlq:")):
        attrs = {k: v for k, v in res.settings.items() if k not in ("arn", "url")}
        with _step("sqs:CreateQueue", f"queue {res.name}", done):
            try:
                sqs.create_queue(QueueName=res.name, Attributes=attrs)
            except ClientError as exc:
                # the JSON protocol's name, and the query protocol's two
                if _code(exc) not in (
                    "QueueNameExists",
                    "QueueAlreadyExists",
                    "AWS.SimpleQueueService.QueueNameExists",
                ):
                    raise
                with _step("sqs:SetQueueAttributes", f"queue {res.name}", done):
                    sqs.set_queue_attributes(QueueUrl=res.settings["url"], Attributes=attrs)
        done.append(f"queue {res.name}")
    region = session.region_name
    for res in (r for r in plan.resources if r.kind == "s3 bucket"):
        _bucket(s3, res, region, done, plan)
        done.append(f"bucket {res.name}")
    for side, user in plan.identities.items():
        with _step("iam:CreateUser", f"user {user}", done):
            try:
                iam.create_user(UserName=user, Tags=[{"Key": "iris-cloud", "Value": plan.name}])
            except ClientError as exc:
                if _code(exc) != "EntityAlreadyExists":
                    raise
        with _step("iam:PutUserPolicy", f"user {user}", done):
            iam.put_user_policy(
                UserName=user,
                PolicyName=_POLICY_NAME,
                PolicyDocument=json.dumps(plan.policies[side]),
            )
        with _step("iam:ListAccessKeys", f"user {user}", done):
            existing = [
                k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
            ]
        if known_keys.get(side) not in existing:
            if len(existing) >= 2:
                raise ProvisionError(
                    f"user {user} already has two access keys and none is in its .env file: "
                    "delete one (iam:DeleteAccessKey) so a new one can be made",
                    done=done,
                )
            with _step("iam:CreateAccessKey", f"user {user}", done):
                key = iam.create_access_key(UserName=user)["AccessKey"]
            key_var, secret_var = env_names(plan.name, side)
            result.keys[side] = {
                key_var: str(key["AccessKeyId"]),
                secret_var: str(key["SecretAccessKey"]),
            }
        done.append(f"user {user}")
    return result


def _bucket(s3: Any, res: Resource, region: str, done: list[str], plan: Plan) -> None:
    from botocore.exceptions import ClientError

    name = res.name
    with _step("s3:CreateBucket", f"bucket {name}", done):
        try:
            kwargs: dict[str, Any] = {"Bucket": name}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            s3.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyExists":
                raise ProvisionError(
                    f"bucket {name} belongs to another AWS account: choose another NAME", done=done
                ) from exc
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise
    with _step("s3:PutBucketPublicAccessBlock", f"bucket {name}", done):
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    with _step("s3:PutEncryptionConfiguration", f"bucket {name}", done):
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
    with _step("s3:PutLifecycleConfiguration", f"bucket {name}", done):
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": _lifecycle_rules(res)}
        )
    if res.settings.get("versioning") == "Enabled":
        with _step("s3:PutBucketVersioning", f"bucket {name}", done):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if "notification" in res.settings:
        queue = plan.resource("queue:image-notifications")
        with _step("s3:PutBucketNotification", f"bucket {name}", done):
            s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={
                    "QueueConfigurations": [
                        {"QueueArn": queue.settings["arn"], "Events": ["s3:ObjectCreated:*"]}
                    ]
                },
            )


def _lifecycle_rules(res: Resource) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for rule in res.settings["lifecycle"]:
        entry: dict[str, Any] = {"ID": rule["rule"], "Status": "Enabled", "Filter": {"Prefix": ""}}
        if "AbortIncompleteMultipartUpload" in rule:
            entry["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": rule["AbortIncompleteMultipartUpload"]
            }
        if "ExpirationDays" in rule:
            entry["Expiration"] = {"Days": rule["ExpirationDays"]}
        rules.append(entry)
    return rules


# ------------------------------------------------------------------ removing


@dataclass
class Removed:
    """What :func:`destroy` removed and what it kept (buckets holding objects)."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def destroy(plan: Plan, session: Any, *, endpoint_url: str | None, force: bool = False) -> Removed:
    """Remove every resource of ``plan`` that exists; buckets holding objects are kept
    (listed in :attr:`Removed.kept`) unless ``force``, which empties them first."""
    from botocore.exceptions import ClientError

    sqs = session.client("sqs", endpoint_url=endpoint_url)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    iam = session.client("iam", endpoint_url=endpoint_url)
    out = Removed()
    for user in plan.identities.values():
        try:
            with _step("iam:ListAccessKeys", f"user {user}", out.removed, removing=True):
                keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        except ProvisionError as exc:
            if _code(exc.__cause__) == "NoSuchEntity":
                continue
            raise
        for key in keys:
            with _step("iam:DeleteAccessKey", f"user {user}", out.removed, removing=True):
                iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
        with _step("iam:DeleteUserPolicy", f"user {user}", out.removed, removing=True):
            for policy in iam.list_user_policies(UserName=user)["PolicyNames"]:
                iam.delete_user_policy(UserName=user, PolicyName=policy)
        with _step("iam:DeleteUser", f"user {user}", out.removed, removing=True):
            iam.delete_user(UserName=user)
        out.removed.append(f"user {user}")
    for res in (r for r in plan.resources if r.kind == "s3 bucket"):
        try:
            with _step("s3:ListBucketVersions", f"bucket {res.name}", out.removed, removing=True):
                listing = s3.list_object_versions(Bucket=res.name)
        except ProvisionError as exc:
            if _code(exc.__cause__) == "NoSuchBucket":
                continue
            raise
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for part in ("Versions", "DeleteMarkers")
            for v in listing.get(part, [])
        ]
        if objects and not force:
            out.kept.append(f"bucket {res.name}")
            continue
        with _step("s3:DeleteObject", f"bucket {res.name}", out.removed, removing=True):
            _empty(s3, res.name, listing, out.removed)
        with _step("s3:DeleteBucket", f"bucket {res.name}", out.removed, removing=True):
            s3.delete_bucket(Bucket=res.name)
        out.removed.append(f"bucket {res.name}")
    for res in (r for r in plan.resources if r.kind == "sqs queue"):
        with _step("sqs:DeleteQueue", f"queue {res.name}", out.removed, removing=True):
            try:
                sqs.delete_queue(QueueUrl=res.settings["url"])
            except ClientError as exc:
                if _code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                    continue
                raise
        out.removed.append(f"queue {res.name}")
    return out


def _empty(s3: Any, bucket: str, listing: dict[str, Any], done: list[str]) -> None:
    while True:
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for part in ("Versions", "DeleteMarkers")
            for v in listing.get(part, [])
        ]
        if objects:
            resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
            errors = resp.get("Errors", [])
            if errors:
                # Quiet mode reports refusals per key instead of failing the call.
                codes = sorted({str(e.get("Code")) for e in errors})
                raise ProvisionError(
                    f"{len(errors)} objects of bucket {bucket} could not be deleted "
                    f"({', '.join(codes)}): grant IAM actions s3:DeleteObject and "
                    "s3:DeleteObjectVersion",
                    done=done,
                    removing=True,
                )
        if not listing.get("IsTruncated"):
            return
        listing = s3.list_object_versions(Bucket=bucket)


# ------------------------------------------------------------------ CloudFormation


def _logical(key: str) -> str:
    return "".join(part.title() for part in re.split(r"[^a-z0-9]+", key))


def _cfn_lifecycle(res: Resource) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for rule in res.settings["lifecycle"]:
        entry: dict[str, Any] = {"Id": rule["rule"], "Status": "Enabled"}
        if "AbortIncompleteMultipartUpload" in rule:
            entry["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": rule["AbortIncompleteMultipartUpload"]
            }
        if "ExpirationDays" in rule:
            entry["ExpirationInDays"] = rule["ExpirationDays"]
        rules.append(entry)
    return rules


def cloudformation_template(plan: Plan) -> dict[str, Any]:
    """The same plan as a CloudFormation template (queues, buckets, users and policies).

    Access keys are not part of it: a template's outputs are readable by
    anyone who may describe the stack, so create keys afterwards
    (``aws iam create-access-key --user-name NAME-integrator``) or attach the
    policies to roles instead.
    """
    resources: dict[str, Any] = {}
    for res in plan.resources:
        logical = _logical(res.key)
        if res.kind == "sqs queue":
            props: dict[str, Any] = {
                "QueueName": res.name,
                "MessageRetentionPeriod": int(res.settings["MessageRetentionPeriod"]),
                "SqsManagedSseEnabled": True,
            }
            if "VisibilityTimeout" in res.settings:
                props["VisibilityTimeout"] = int(res.settings["VisibilityTimeout"])
                redrive = json.loads(res.settings["RedrivePolicy"])
                props["RedrivePolicy"] = {
                    "deadLetterTargetArn": {
                        "Fn::GetAtt": [_logical(res.key.replace("queue:", "dlq:")), "Arn"]
                    },
                    "maxReceiveCount": redrive["maxReceiveCount"],
                }
            resources[logical] = {"Type": "AWS::SQS::Queue", "Properties": props}
            if "Policy" in res.settings:
                resources[logical + "Policy"] = {
                    "Type": "AWS::SQS::QueuePolicy",
                    "Properties": {
                        "Queues": [{"Ref": logical}],
                        "PolicyDocument": json.loads(res.settings["Policy"]),
                    },
                }
        elif res.kind == "s3 bucket":
            props = {
                "BucketName": res.name,
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
                "LifecycleConfiguration": {"Rules": _cfn_lifecycle(res)},
            }
            entry: dict[str, Any] = {"Type": "AWS::S3::Bucket", "Properties": props}
            if res.settings.get("versioning") == "Enabled":
                props["VersioningConfiguration"] = {"Status": "Enabled"}
            if "notification" in res.settings:
                queue = _logical("queue:image-notifications")
                props["NotificationConfiguration"] = {
                    "QueueConfigurations": [
                        {"Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": [queue, "Arn"]}}
                    ]
                }
                entry["DependsOn"] = [queue + "Policy"]
            resources[logical] = entry
        elif res.kind == "iam user":
            side = res.key.split(":", 1)[1]
            resources[logical] = {"Type": "AWS::IAM::User", "Properties": {"UserName": res.name}}
            resources[logical + "Policy"] = {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": _POLICY_NAME,
                    "PolicyDocument": plan.policies[side],
                    "Users": [{"Ref": logical}],
                },
            }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"iris-cloud exchange {plan.name} (iris-cloud provision aws)",
        "Resources": resources,
        "Outputs": {
            _logical(r.key) + "Url": {"Value": {"Ref": _logical(r.key)}}
            for r in plan.resources
            if r.key.startswith("queue:")
        },
    }
