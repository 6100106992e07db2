"""``iris-cloud provision gcp NAME --project P``: an exchange on Pub/Sub + Cloud Storage.

:func:`build_plan` gives, per broker role, a topic ``NAME-ROLE``, its
subscription ``NAME-ROLE-sub`` dead-lettering to ``NAME-ROLE-dead`` (read
through ``NAME-ROLE-sub-dlq``), the same for the images notifications, three
buckets (uniform access, public access prevented; claim check with expiry and
abort-incomplete-multipart rules) and the IAM bindings of two service
accounts from :data:`GRANTS`. :func:`apply` creates the Pub/Sub and Cloud
Storage resources idempotently; the service accounts, bindings and the
images notification (which needs the storage agent's grant first) are written
as a ``gcloud`` script (:func:`iam_script`) for the project's owner to run,
since neither emulator implements IAM.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from iris_cloud.provisioning import Grant, Plan, ProvisionError, Resource

__all__ = ["GRANTS", "apply", "bindings", "build_plan", "destroy", "iam_script", "profiles"]

QUEUES = ("orders", "events", "results", "gradings", "image-notifications")
BUCKETS = ("images", "results", "claim-check")
_PUB, _SUB, _VIEW = "roles/pubsub.publisher", "roles/pubsub.subscriber", "roles/pubsub.viewer"
_CREATE, _READ = "roles/storage.objectCreator", "roles/storage.objectViewer"


def _send(side: Any, role: str) -> Grant:
    return Grant(side, role, f"topic:{role}", (_PUB,), "publish", (_SUB, "roles/pubsub.editor"))


def _receive(side: Any, role: str) -> list[Grant]:
    return [
        Grant(
            side,
            role,
            f"sub:{role}",
            (_SUB, _VIEW),
            "pull, ack, read the dead-letter policy",
            (_PUB, "roles/pubsub.editor"),
        ),
        Grant(side, role, f"dead:{role}", (_PUB,), "dead-letter with a reason", (_SUB,)),
        Grant(side, role, f"dlq:{role}", (_SUB,), "read the dead letters", (_PUB,)),
    ]


GRANTS: list[Grant] = [
    _send("integrator", "orders"),
    _send("integrator", "gradings"),
    *_receive("integrator", "events"),
    *_receive("integrator", "results"),
    Grant(
        "integrator",
        "images",
        "bucket:images",
        (_CREATE,),
        "upload images",
        (_READ, "roles/storage.objectAdmin"),
    ),
    Grant(
        "integrator",
        "results_store",
        "bucket:results",
        (_CREATE, _READ),
        "save result documents, read them back",
        ("roles/storage.objectAdmin",),
    ),
    Grant(
        "integrator",
        "claim_check",
        "bucket:claim-check",
        (_CREATE, _READ),
        "offload and fetch large bodies",
        ("roles/storage.objectAdmin",),
    ),
    *_receive("iris", "orders"),
    *_receive("iris", "gradings"),
    _send("iris", "events"),
    _send("iris", "results"),
    Grant(
        "iris",
        "images",
        "bucket:images",
        (_READ,),
        "read and list images",
        (_CREATE, "roles/storage.objectAdmin"),
    ),
    Grant(
        "iris",
        "images (notifications)",
        "sub:image-notifications",
        (_SUB,),
        "follow OBJECT_FINALIZE notifications (Order First)",
        (_PUB,),
    ),
    Grant(
        "iris",
        "claim_check",
        "bucket:claim-check",
        (_CREATE, _READ),
        "offload and fetch large bodies",
        ("roles/storage.objectAdmin",),
    ),
]
"""The role table: the only place the two service accounts' roles are written down."""

_NAME = re.compile(r"^[a-z][a-z0-9-]{2,20}[a-z0-9]$")


def doc_resource_names() -> dict[str, str]:
    """How the role table in docs/gcp.md names each resource key."""
    names = {f"topic:{q}": f"topic `NAME-{q}`" for q in QUEUES}
    names |= {f"sub:{q}": f"subscription `NAME-{q}-sub`" for q in QUEUES}
    names |= {f"dead:{q}": f"topic `NAME-{q}-dead`" for q in QUEUES}
    names |= {f"dlq:{q}": f"subscription `NAME-{q}-sub-dlq`" for q in QUEUES}
    names |= {f"bucket:{b}": f"bucket `NAME-{b}`" for b in BUCKETS}
    return names


def build_plan(
    name: str,
    *,
    project: str,
    max_delivery_attempts: int = 5,
    ack_deadline: int = 60,
    claim_check_days: int = 7,
    versioning: bool = False,
    notifications: bool = True,
) -> Plan:
    """The plan of exchange ``name`` in ``project`` (nothing is called).

    ``name`` prefixes service-account ids (6-30 characters with the side), so
    it is 4-22 lowercase letters, digits or hyphens, starting with a letter.
    ``notifications=False`` leaves out the bucket -> topic notification (the
    storage emulator has none; the Order First listener then polls).
    """
    if not _NAME.match(name):
        raise ProvisionError(
            f"exchange name {name!r} must be 4-22 lowercase letters, digits or hyphens, "
            "starting with a letter (it prefixes service-account ids)"
        )
    resources: list[Resource] = []
    for q in QUEUES:
        topic, dead = (
            f"projects/{project}/topics/{name}-{q}",
            f"projects/{project}/topics/{name}-{q}-dead",
        )
        subs = f"projects/{project}/subscriptions/{name}-{q}-sub"
        resources += [
            Resource("pubsub topic", f"topic:{q}", topic),
            Resource("pubsub topic", f"dead:{q}", dead),
            Resource(
                "pubsub subscription",
                f"dlq:{q}",
                subs + "-dlq",
                {
                    "topic": dead,
                    "ack_deadline_seconds": ack_deadline,
                    "message_retention_duration": "604800s",
                },
            ),
            Resource(
                "pubsub subscription",
                f"sub:{q}",
                subs,
                {
                    "topic": topic,
                    "ack_deadline_seconds": ack_deadline,
                    "message_retention_duration": "345600s",
                    "dead_letter_policy": {
                        "dead_letter_topic": dead,
                        "max_delivery_attempts": max_delivery_attempts,
                    },
                },
            ),
        ]
    for b in BUCKETS:
        settings: dict[str, Any] = {
            "uniform_bucket_level_access": True,
            "public_access_prevention": "enforced",
            "lifecycle": [{"action": "AbortIncompleteMultipartUpload", "age": 1}],
        }
        if b == "images":
            settings["versioning"] = versioning
            if notifications:
                settings["notification"] = {
                    "topic": f"{name}-image-notifications",
                    "event_types": ["OBJECT_FINALIZE"],
                }
        if b == "claim-check":
            settings["lifecycle"].append({"action": "Delete", "age": claim_check_days})
        resources.append(Resource("gcs bucket", f"bucket:{b}", f"{name}-{b}", settings))
    identities = {
        side: f"{name}-{side}@{project}.iam.gserviceaccount.com" for side in ("integrator", "iris")
    }
    for side, account in identities.items():
        resources.append(Resource("service account", f"account:{side}", account))
    plan = Plan("gcp", name, resources, list(GRANTS), identities, {})
    plan.policies = {side: bindings(plan, side) for side in identities}
    plan.notes.append(
        "the service accounts, their bindings and the images notification are applied by the "
        "iam.sh script written to --out (gcloud), not by this command; the Pub/Sub and Cloud "
        "Storage service agents need "
        "roles/pubsub.publisher on the dead-letter and notification topics and "
        "roles/pubsub.subscriber on the subscriptions (the script grants them too)"
    )
    return plan


def bindings(plan: Plan, side: str) -> list[dict[str, str]]:
    """``side``'s IAM bindings: one ``{resource, role, member}`` per role and resource."""
    member = f"serviceAccount:{plan.identities[side]}"
    return [
        {"resource": plan.resource(g.key).name, "role": role, "member": member}
        for g in plan.grants
        if g.side == side
        for role in g.actions
    ]


def iam_script(plan: Plan, project: str) -> str:
    """The ``gcloud`` commands for what needs IAM: both service accounts, every
    binding, the service agents' grants, the images notification (which Cloud
    Storage refuses before its agent may publish) and one key per account."""
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        f"# IAM of iris-cloud exchange {plan.name} (iris-cloud provision gcp)",
        "set -eu",
        f"PROJECT={q(project)}",
        'NUMBER=$(gcloud projects describe "$PROJECT" --format="value(projectNumber)")',
        'PUBSUB_AGENT="serviceAccount:service-$NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"',
        'GCS_AGENT="serviceAccount:service-$NUMBER@gs-project-accounts.iam.gserviceaccount.com"',
    ]
    for side, account in plan.identities.items():
        lines.append(
            f"gcloud iam service-accounts create {q(account.split('@')[0])} "
            f'--project "$PROJECT" --display-name {q(f"iris-cloud {plan.name} {side}")}'
        )
    for side in plan.identities:
        for b in plan.policies[side]:
            lines.append(_bind(b["resource"], b["role"], q(b["member"])))
    for res in plan.resources:
        if res.key.startswith("dead:"):
            lines.append(_bind(res.name, _PUB, '"$PUBSUB_AGENT"'))
        if res.kind == "pubsub subscription" and "dead_letter_policy" in res.settings:
            lines.append(_bind(res.name, _SUB, '"$PUBSUB_AGENT"'))
        if "notification" in res.settings:
            topic = plan.resource("topic:image-notifications").name
            lines.append(_bind(topic, _PUB, '"$GCS_AGENT"'))
    for res in plan.resources:
        if "notification" in res.settings:
            # after the agent's grant: Cloud Storage checks it may publish when
            # the notification is created; listed first so a rerun adds no second one
            bucket = q("gs://" + res.name)
            topic = plan.resource("topic:image-notifications").name
            lines.append(
                f'gcloud storage buckets notifications list {bucket} --format="value(topic)" '
                f"| grep -qx {q('//pubsub.googleapis.com/' + topic)} || "
                f"gcloud storage buckets notifications create {bucket} --topic={q(topic)} "
                "--event-types=OBJECT_FINALIZE --payload-format=json"
            )
    for side, account in plan.identities.items():
        lines.append(
            f"gcloud iam service-accounts keys create {q(side + '-key.json')} "
            f"--iam-account {q(account)}"
        )
    lines.append("chmod 600 integrator-key.json iris-key.json")
    return "\n".join(lines) + "\n"


def _bind(resource: str, role: str, member: str) -> str:
    q = shlex.quote
    if "/topics/" in resource:
        kind = f"pubsub topics add-iam-policy-binding {q(resource)}"
    elif "/subscriptions/" in resource:
        kind = f"pubsub subscriptions add-iam-policy-binding {q(resource)}"
    else:
        kind = f"storage buckets add-iam-policy-binding {q('gs://' + resource)}"
    return f"gcloud {kind} --role {q(role)} --member {member}"


# ------------------------------------------------------------------ profiles


def env_name(name: str, side: str) -> str:
    """The environment variable holding the path of ``side``'s key file."""
    return f"IRIS_{name.upper().replace('-', '_')}_{side.upper()}_GCP_CREDENTIALS_FILE"


def profiles(
    plan: Plan,
    *,
    project: str,
    pubsub_emulator_host: str | None = None,
    storage_endpoint: str | None = None,
    client_guid: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``integrator`` and ``iris`` profiles; senders get topic URLs, receivers
    subscription URLs, each with the other side's as ``mirror``."""
    sends = {"integrator": ("orders", "gradings"), "iris": ("events", "results")}
    out: dict[str, dict[str, Any]] = {}
    for side in plan.identities:
        creds: dict[str, Any] = {}
        if pubsub_emulator_host is None:
            creds = {"credentials_file": {"env": env_name(plan.name, side)}}
        ps = {"emulator_host": pubsub_emulator_host} if pubsub_emulator_host else {}
        gcs = {"endpoint": storage_endpoint} if storage_endpoint else {}
        data: dict[str, Any] = {}
        if client_guid:
            data["client_guid"] = client_guid
        if side == "iris":
            data["side"] = "platform"
        for role in ("orders", "events", "results", "gradings"):
            topic = {"url": "gcppubsub://" + plan.resource(f"topic:{role}").name}
            sub = {"url": "gcppubsub://" + plan.resource(f"sub:{role}").name}
            mine, theirs = (topic, sub) if role in sends[side] else (sub, topic)
            data[role] = {**mine, "project": project, **ps, **creds, "mirror": theirs}
        for role, bucket in (
            ("images", "images"),
            ("results_store", "results"),
            ("claim_check", "claim-check"),
        ):
            if side == "iris" and role == "results_store":
                continue
            endpoint = {
                "url": f"gs://{plan.resource('bucket:' + bucket).name}",
                "project": project,
                **gcs,
                **creds,
            }
            if (
                side == "iris"
                and role == "images"
                and "notification" in plan.resource("bucket:images").settings
            ):
                endpoint["notification_subscription"] = plan.resource(
                    "sub:image-notifications"
                ).name
                endpoint |= ps
            data[role] = endpoint
        out[side] = data
    return out


# ------------------------------------------------------------------ applying


@dataclass
class Done:
    """Steps :func:`apply` / :func:`destroy` completed, and buckets kept."""

    done: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


@contextmanager
def _step(permission: str, target: str, done: list[str]) -> Iterator[None]:
    from google.api_core import exceptions as gexc

    try:
        yield
    except (gexc.PermissionDenied, gexc.Forbidden, gexc.Unauthorized) as exc:
        raise ProvisionError(
            f"the caller's credentials may not {target}: grant IAM permission {permission}",
            done=done,
        ) from exc
    except gexc.GoogleAPIError as exc:
        raise ProvisionError(f"{target} failed ({type(exc).__name__})", done=done) from exc


def _clients(project: str, pubsub_emulator_host: str | None, storage_endpoint: str | None) -> Any:
    from google.cloud import pubsub_v1, storage

    from iris_cloud_gcp._clients import GoogleAuth, publisher_client, subscriber_client

    if pubsub_emulator_host:
        from google.auth.credentials import AnonymousCredentials

        auth = GoogleAuth(AnonymousCredentials(), project, "anonymous")  # type: ignore[no-untyped-call]
    else:
        import google.auth

        creds, _ = google.auth.default()  # type: ignore[no-untyped-call]
        auth = GoogleAuth(creds, project, "default")
    pub = publisher_client(
        auth, pubsub_emulator_host, pubsub_v1.types.BatchSettings(), ordering=False
    )
    sub = subscriber_client(auth, pubsub_emulator_host)
    options = {"api_endpoint": storage_endpoint} if storage_endpoint else None
    gcs = storage.Client(project=project, credentials=auth.credentials, client_options=options)
    return pub, sub, gcs


def apply(
    plan: Plan,
    *,
    project: str,
    pubsub_emulator_host: str | None = None,
    storage_endpoint: str | None = None,
) -> Done:
    """Create the topics, subscriptions and buckets of ``plan`` that do not exist yet."""
    from google.api_core.exceptions import AlreadyExists, Conflict

    pub, sub, gcs = _clients(project, pubsub_emulator_host, storage_endpoint)
    out = Done()
    try:
        for res in (r for r in plan.resources if r.kind == "pubsub topic"):
            where = f"create topic {res.name}"
            with _step("pubsub.topics.create", where, out.done), suppress(AlreadyExists):
                pub.create_topic(name=res.name)
            out.done.append(f"topic {res.name}")
        for res in (r for r in plan.resources if r.kind == "pubsub subscription"):
            where = f"create subscription {res.name}"
            with _step("pubsub.subscriptions.create", where, out.done), suppress(AlreadyExists):
                sub.create_subscription(request={"name": res.name, **res.settings})
            out.done.append(f"subscription {res.name}")
        for res in (r for r in plan.resources if r.kind == "gcs bucket"):
            bucket = gcs.bucket(res.name)
            bucket.iam_configuration.uniform_bucket_level_access_enabled = True
            bucket.iam_configuration.public_access_prevention = "enforced"
            bucket.versioning_enabled = bool(res.settings.get("versioning"))
            for rule in res.settings["lifecycle"]:
                if rule["action"] == "Delete":
                    bucket.add_lifecycle_delete_rule(age=rule["age"])
                else:
                    bucket.add_lifecycle_abort_incomplete_multipart_upload_rule(age=rule["age"])
            with _step("storage.buckets.create", f"create bucket {res.name}", out.done):
                try:
                    gcs.create_bucket(bucket)
                except Conflict:
                    with _step("storage.buckets.update", f"update bucket {res.name}", out.done):
                        bucket.patch()
            out.done.append(f"bucket {res.name}")
    finally:
        _close(pub, sub, gcs)
    return out


def destroy(
    plan: Plan,
    *,
    project: str,
    pubsub_emulator_host: str | None = None,
    storage_endpoint: str | None = None,
    force: bool = False,
) -> Done:
    """Delete the subscriptions, topics and (empty, unless ``force``) buckets of ``plan``."""
    from google.api_core.exceptions import NotFound

    pub, sub, gcs = _clients(project, pubsub_emulator_host, storage_endpoint)
    out = Done()
    try:
        # subscriptions before the topics they read
        deleters = (
            ("pubsub subscription", "pubsub.subscriptions.delete", sub.delete_subscription),
            ("pubsub topic", "pubsub.topics.delete", pub.delete_topic),
        )
        for kind, permission, delete in deleters:
            what = "subscription" if kind == "pubsub subscription" else "topic"
            for res in (r for r in plan.resources if r.kind == kind):
                with _step(permission, f"delete {res.name}", out.done):
                    try:
                        delete(request={what: res.name})
                        out.done.append(f"{what} {res.name}")
                    except NotFound:
                        pass
        for res in (r for r in plan.resources if r.kind == "gcs bucket"):
            with _step("storage.buckets.delete", f"delete bucket {res.name}", out.done):
                try:
                    bucket = gcs.get_bucket(res.name)
                except NotFound:
                    continue
                blobs = list(bucket.list_blobs(versions=True))
                if blobs and not force:
                    out.kept.append(f"bucket {res.name}")
                    continue
                for blob in blobs:
                    blob.delete()
                bucket.delete()
                out.done.append(f"bucket {res.name}")
    finally:
        _close(pub, sub, gcs)
    return out


def _close(pub: Any, sub: Any, gcs: Any) -> None:
    pub.stop()
    pub.transport.close()
    sub.close()
    gcs.close()
