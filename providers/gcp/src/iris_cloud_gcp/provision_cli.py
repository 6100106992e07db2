"""The ``provision gcp`` and ``deprovision gcp`` commands (see :mod:`iris_cloud_gcp.provision`)."""

from __future__ import annotations

from pathlib import Path

import click
from iris_cloud.cli.provision import (
    plan_options,
    removal_options,
    report,
    report_removed,
    show_plan,
    with_options,
)

__all__ = ["deprovision_gcp", "provision_gcp"]


_common = with_options(
    click.argument("name"),
    click.option("--project", required=True, help="The Google Cloud project."),
    click.option("--pubsub-emulator-host", help="HOST:PORT of a Pub/Sub emulator."),
    click.option("--storage-endpoint", help="URL of a Cloud Storage emulator."),
)


@click.command("gcp")
@_common
@plan_options(["table", "json"], "Where integrator.toml, iris.toml and iam.sh go.")
@click.option("--max-delivery-attempts", default=5, show_default=True)
@click.option("--ack-deadline", default=60, show_default=True, help="Seconds.")
@click.option("--claim-check-days", default=7, show_default=True)
@click.option("--versioning", is_flag=True, help="Version the images bucket.")
def provision_gcp(
    name: str,
    project: str,
    pubsub_emulator_host: str | None,
    storage_endpoint: str | None,
    dry_run: bool,
    fmt: str,
    out: Path,
    client_guid: str | None,
    max_delivery_attempts: int,
    ack_deadline: int,
    claim_check_days: int,
    versioning: bool,
) -> None:
    """Create exchange NAME on Pub/Sub + Cloud Storage; write the profiles and iam.sh.

    Idempotent: existing topics, subscriptions and buckets are kept. The two
    service accounts and their bindings are in iam.sh (gcloud) for the
    project's owner to run.
    """
    from iris_cloud.provisioning import ProvisionError, write_profiles

    from iris_cloud_gcp import provision as gcp

    try:
        plan = gcp.build_plan(
            name,
            project=project,
            max_delivery_attempts=max_delivery_attempts,
            ack_deadline=ack_deadline,
            claim_check_days=claim_check_days,
            versioning=versioning,
            notifications=storage_endpoint is None,
        )
        if dry_run:
            show_plan(plan, fmt)
            return
        done = gcp.apply(
            plan,
            project=project,
            pubsub_emulator_host=pubsub_emulator_host,
            storage_endpoint=storage_endpoint,
        )
    except ProvisionError as exc:
        raise click.ClickException(str(exc)) from None
    data = gcp.profiles(
        plan,
        project=project,
        pubsub_emulator_host=pubsub_emulator_host,
        storage_endpoint=storage_endpoint,
        client_guid=client_guid,
    )
    # The key files do not exist yet (iam.sh makes them); the .env files say where.
    key_files = (
        {}
        if pubsub_emulator_host
        else {
            side: {gcp.env_name(name, side): str((out / f"{side}-key.json").resolve())}
            for side in plan.identities
        }
    )
    written = write_profiles(
        out,
        data,
        key_files,
        header=(
            f"iris-cloud exchange {name} on Google Cloud, written by `iris-cloud provision gcp`.\n"
            "credentials_file is an environment reference to the key file iam.sh creates."
        ),
    )
    script = out / "iam.sh"
    script.write_text(gcp.iam_script(plan, project), encoding="utf-8")
    script.chmod(0o700)
    report(name, done.done, [*written, script])


@click.command("gcp")
@_common
@removal_options
def deprovision_gcp(
    name: str,
    project: str,
    pubsub_emulator_host: str | None,
    storage_endpoint: str | None,
    force: bool,
    yes: bool,
) -> None:
    """Remove exchange NAME's subscriptions, topics and (empty) buckets."""
    from iris_cloud.cli.common import console
    from iris_cloud.provisioning import ProvisionError

    from iris_cloud_gcp import provision as gcp

    try:
        plan = gcp.build_plan(name, project=project)
        if not yes:
            click.confirm(f"Remove exchange {name} from project {project}?", abort=True)
        done = gcp.destroy(
            plan,
            project=project,
            pubsub_emulator_host=pubsub_emulator_host,
            storage_endpoint=storage_endpoint,
            force=force,
        )
    except ProvisionError as exc:
        raise click.ClickException(str(exc)) from None
    report_removed(name, done.done, done.kept)
    console.print("the service accounts are removed with gcloud iam service-accounts delete")
