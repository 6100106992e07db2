"""The ``provision aws`` and ``deprovision aws`` commands (see :mod:`iris_cloud_aws.provision`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from iris_cloud.cli.provision import (
    plan_options,
    removal_options,
    report,
    report_removed,
    show_plan,
    with_options,
)

__all__ = ["deprovision_aws", "provision_aws"]


def _caller(
    region: str | None,
    profile_name: str | None,
    endpoint_url: str | None,
    account: str | None,
    *,
    dry_run: bool,
) -> tuple[Any, str, str]:
    # The caller's own credentials come from boto3's default chain (or --profile-name).
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session(profile_name=profile_name, region_name=region)
    if not session.region_name:
        raise click.UsageError("no region: pass --region or configure one for boto3")
    if account is None:
        try:
            sts = session.client("sts", endpoint_url=endpoint_url)
            account = str(sts.get_caller_identity()["Account"])
        except (BotoCoreError, ClientError) as exc:
            if not dry_run:
                raise click.ClickException(
                    f"cannot find the caller's AWS account ({type(exc).__name__}): "
                    "check the credentials, or pass --account"
                ) from None
            account = "ACCOUNT_ID"
    return session, str(session.region_name), account


_common = with_options(
    click.argument("name"),
    click.option("--region", help="AWS region (default: boto3's configuration)."),
    click.option("--endpoint-url", help="A custom endpoint (moto, LocalStack, VPC endpoint)."),
    click.option("--profile-name", help="The AWS CLI profile whose credentials provision."),
    click.option("--account", help="The account id (default: asked of STS)."),
)


@click.command("aws")
@_common
@plan_options(
    ["table", "json", "cloudformation", "caller-policy"],
    "Where integrator.toml, iris.toml and their 0600 .env files go.",
)
@click.option("--max-receive-count", default=5, show_default=True, help="Receives before a DLQ.")
@click.option("--visibility-timeout", default=60, show_default=True, help="Seconds.")
@click.option("--claim-check-days", default=7, show_default=True, help="Payload expiry.")
@click.option("--versioning", is_flag=True, help="Version the images bucket.")
def provision_aws(
    name: str,
    region: str | None,
    endpoint_url: str | None,
    profile_name: str | None,
    account: str | None,
    dry_run: bool,
    fmt: str,
    out: Path,
    client_guid: str | None,
    max_receive_count: int,
    visibility_timeout: int,
    claim_check_days: int,
    versioning: bool,
) -> None:
    """Create exchange NAME on SQS + S3 with two least-privilege IAM users.

    Idempotent: running it again converges, and completes a run that stopped.
    Writes integrator.toml / iris.toml to --out, with each side's new access
    key in integrator.env / iris.env (0600; the secret is shown nowhere else).
    --format cloudformation prints the plan as a template, --format
    caller-policy the IAM policy whoever runs this command needs; neither
    creates anything.
    """
    from iris_cloud.cli.common import console
    from iris_cloud.provisioning import (
        ProvisionError,
        read_env_file,
        write_profiles,
    )

    from iris_cloud_aws import provision as aws

    session, region_name, account_id = _caller(
        region,
        profile_name,
        endpoint_url,
        account,
        dry_run=dry_run or fmt in ("cloudformation", "caller-policy"),
    )
    try:
        plan = aws.build_plan(
            name,
            region=region_name,
            account=account_id,
            endpoint_url=endpoint_url,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
            claim_check_days=claim_check_days,
            versioning=versioning,
        )
        if fmt == "cloudformation":
            click.echo(json.dumps(aws.cloudformation_template(plan), indent=2))
            return
        if fmt == "caller-policy":
            policy = aws.caller_policy(plan, region=region_name, account=account_id)
            click.echo(json.dumps(policy, indent=2))
            return
        if dry_run:
            show_plan(plan, fmt)
            return
        known = {}
        for side in plan.identities:
            env = out / f"{side}.env"
            if env.is_file():
                key_var = aws.env_names(name, side)[0]
                known[side] = read_env_file(env).get(key_var, "")
        done = aws.apply(plan, session, endpoint_url=endpoint_url, known_keys=known)
    except ProvisionError as exc:
        raise click.ClickException(str(exc)) from None
    data = aws.profiles(
        plan, region=region_name, endpoint_url=endpoint_url, client_guid=client_guid
    )
    written = write_profiles(
        out,
        data,
        done.keys,
        header=f"iris-cloud exchange {name} on AWS, written by `iris-cloud provision aws`.\n"
        "Secrets are environment references: `set -a; . ./<side>.env` before use.",
    )
    report(name, done.done, written)
    for side in plan.identities:
        if side not in done.keys:
            console.print(f"  {side}: kept the access key already in {out / (side + '.env')}")


@click.command("aws")
@_common
@removal_options
def deprovision_aws(
    name: str,
    region: str | None,
    endpoint_url: str | None,
    profile_name: str | None,
    account: str | None,
    force: bool,
    yes: bool,
) -> None:
    """Remove exchange NAME: its IAM users and keys, queues and (empty) buckets."""
    from iris_cloud.provisioning import ProvisionError

    from iris_cloud_aws import provision as aws

    session, region_name, account_id = _caller(
        region, profile_name, endpoint_url, account, dry_run=False
    )
    try:
        plan = aws.build_plan(
            name, region=region_name, account=account_id, endpoint_url=endpoint_url
        )
        what = "everything, emptying buckets" if force else "everything but buckets holding objects"
        if not yes:
            click.confirm(f"Remove exchange {name} ({what}) in {region_name}?", abort=True)
        removed = aws.destroy(plan, session, endpoint_url=endpoint_url, force=force)
    except ProvisionError as exc:
        raise click.ClickException(str(exc)) from None
    report_removed(name, removed.removed, removed.kept)
