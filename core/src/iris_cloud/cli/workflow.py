"""Workflow commands: submit, cancel, resend, upload, listen, grade, check, config.

Every command takes ``--profile NAME`` (default: ``IRIS_CLOUD_PROFILE``, else
the config file's ``default_profile``, else ``default``) and ``--config FILE``
(instead of ``./iris-cloud.toml``). Errors print the framework's message
(field paths, never values or secrets) and exit 1; configuration errors exit 2.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from rich.table import Table
from rich.text import Text

from iris_cloud.cli.common import console, err_console, markup, plain, print_rows
from iris_cloud.config import ROLES, Profile, load_profile, mask_url, profile_names
from iris_cloud.errors import (
    ConfigurationError,
    CredentialsRejected,
    FieldError,
    IrisCloudError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from iris_cloud.ports import MessageBroker

__all__ = ["EndpointCheck", "check_profile", "register"]

F = TypeVar("F", bound=Callable[..., Any])

PROBE_PREFIX = ".iris-cloud-check/"
PROBE_SUBJECT = "iris-cloud-probe"


# ------------------------------------------------------------------ plumbing


def _profile_options(fn: F) -> F:
    fn = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Config file to read instead of ./iris-cloud.toml (or IRIS_CLOUD_CONFIG).",
    )(fn)
    fn = click.option(
        "--profile",
        "-p",
        "profile_name",
        metavar="NAME",
        help="Profile to use (default: IRIS_CLOUD_PROFILE, the config's default_profile, "
        "else 'default').",
    )(fn)
    return fn


def _errors(fn: F) -> F:
    """Turn framework errors into a message and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigurationError as exc:
            err_console.print(markup("[red]configuration error:[/] {}", exc))
            raise SystemExit(2) from None
        except ValidationError as exc:
            err_console.print(markup("[red]refused:[/] {}", exc.title))
            for e in exc.errors:
                err_console.print(f"  {e}")
            raise SystemExit(1) from None
        except IrisCloudError as exc:
            err_console.print(markup("[red]{}:[/] {}", type(exc).__name__, exc))
            raise SystemExit(1) from None

    return cast(F, wrapper)


def _load(profile_name: str | None, config_file: Path | None) -> Profile:
    return load_profile(profile_name, config_file=config_file)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except ValueError:
        raise ValidationError(
            f"{path.name} is not JSON", [FieldError("", "json_invalid", "not a JSON document")]
        ) from None


# ------------------------------------------------------------------- orders


@click.command("submit")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--transaction-id", help="TransactionId / message id (one file only); for retries.")
@click.option("--no-image-check", is_flag=True, help="Do not check that referenced images exist.")
@click.option("--dry-run", is_flag=True, help="Validate only; send nothing.")
@_profile_options
@_errors
def submit_command(
    files: tuple[Path, ...],
    transaction_id: str | None,
    no_image_check: bool,
    dry_run: bool,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """Validate and send the OrderRequest(s) in FILES (JSON) to the orders queue.

    The OrderControlCode of each file is kept (NW, XO, CA, ResendResult).
    Orders are validated first and, for NW/XO, their Camera.Images must exist
    in the images store (or be in this machine's upload receipts).
    """
    from iris_cloud.client import IrisClient

    if transaction_id and len(files) > 1:
        raise click.UsageError("--transaction-id applies to one file only")
    profile = _load(profile_name, config_file)
    rows: list[tuple[Text, ...]] = []
    with IrisClient(profile) as iris:
        for path in files:
            data = _read_json(path)
            if dry_run:
                order = iris.validate_order(data)
                if not no_image_check:
                    from iris_cloud.workflows.image_first import (
                        check_images_exist,
                        image_references,
                    )

                    if image_references(order):
                        check_images_exist(order, iris.images, iris.receipts)
                rows.append(
                    (
                        plain(path.name),
                        plain(order.order_control_code),
                        plain(order.order.local_id),
                        plain("-"),
                    )
                )
                continue
            sent = iris.send_order(
                data,
                transaction_id=transaction_id,
                check_images=False if no_image_check else None,
            )
            rows.append(
                (
                    plain(path.name),
                    plain(sent.control_code or ""),
                    plain(sent.correlation_id),
                    plain(sent.message_id),
                )
            )
    print_rows(
        "orders" + (" (dry run: nothing sent)" if dry_run else " sent"),
        ("file", "code", "Order.LocalId", "message id"),
        rows,
    )


@click.command("cancel")
@click.argument("local_id")
@click.option("--site", "site_local_id", help="Site.LocalId of the order.")
@click.option("--transaction-id", help="TransactionId / message id, for retries.")
@_profile_options
@_errors
def cancel_command(
    local_id: str,
    site_local_id: str | None,
    transaction_id: str | None,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """Cancel (CA) the order whose Order.LocalId is LOCAL_ID."""
    from iris_cloud.client import IrisClient

    with IrisClient(_load(profile_name, config_file)) as iris:
        sent = iris.cancel_order(
            local_id, site_local_id=site_local_id, transaction_id=transaction_id
        )
    console.print(markup("cancel sent for [bold]{}[/] (message id {})", local_id, sent.message_id))


@click.command("resend")
@click.argument("local_id")
@click.option("--site", "site_local_id", help="Site.LocalId of the order.")
@_profile_options
@_errors
def resend_command(
    local_id: str, site_local_id: str | None, profile_name: str | None, config_file: Path | None
) -> None:
    """Ask IRIS to send the result of LOCAL_ID again (ResendResult)."""
    from iris_cloud.client import IrisClient

    with IrisClient(_load(profile_name, config_file)) as iris:
        sent = iris.resend(local_id, site_local_id=site_local_id)
    console.print(
        markup("resend requested for [bold]{}[/] (message id {})", local_id, sent.message_id)
    )


# ------------------------------------------------------------------- images


@click.command("upload")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--name", help="Object name (one file only; default: a new GUID name).")
@click.option("--order", "order_local_id", help="Order First: the order's LocalId to tag in.")
@click.option("--patient", "patient_local_id", help="Order First: the patient's LocalId.")
@click.option("--site", "site_local_id", help="Order First: the site's LocalId.")
@click.option("--laterality", type=click.Choice(["OD", "OS", "OU"]), help="Order First: which eye.")
@click.option("--json", "as_json", is_flag=True, help="Print Camera.Images entries as JSON.")
@click.option("--force", is_flag=True, help="Upload files that are not JPEG/PNG/TIFF/DICOM too.")
@_profile_options
@_errors
def upload_command(
    paths: tuple[Path, ...],
    name: str | None,
    order_local_id: str | None,
    patient_local_id: str | None,
    site_local_id: str | None,
    laterality: str | None,
    as_json: bool,
    force: bool,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """Upload images to the images store.

    Image First (default): each file gets a unique name; the output is the
    reference to put in Camera.Images[].AzureBlobStorage. Order First
    (--order): the order's identifiers are written into the image (EXIF for
    JPEG/PNG, DICOM tags) and into the object's metadata.
    """
    from rich.progress import Progress

    from iris_cloud.client import IrisClient

    if name and len(paths) > 1:
        raise click.UsageError("--name applies to one file only")
    if (patient_local_id or site_local_id or laterality) and not order_local_id:
        raise click.UsageError("--patient/--site/--laterality need --order (Order First)")
    refs = []
    with (
        IrisClient(_load(profile_name, config_file)) as iris,
        Progress(console=err_console, transient=True) as progress,
    ):
        task = progress.add_task("uploading", total=len(paths))
        for path in paths:
            if order_local_id:
                ref = iris.upload_exam_image(
                    path,
                    order=order_local_id,
                    patient_local_id=patient_local_id,
                    site_local_id=site_local_id,
                    laterality=laterality,
                    name=name,
                )
            else:
                ref = iris.upload_image(path, name=name, force=force)
            refs.append((path, ref))
            progress.advance(task)
    if as_json:
        entries = [
            {"AzureBlobStorage": {"Container": r.container, "FileName": r.file_name}}
            for _, r in refs
        ]
        click.echo(json.dumps(entries, indent=2))
        return
    print_rows(
        "uploaded" + (" (Order First)" if order_local_id else ""),
        ("file", "container", "file name", "bytes"),
        [
            (plain(path.name), plain(ref.container), plain(ref.file_name), plain(ref.size or ""))
            for path, ref in refs
        ],
    )


# ------------------------------------------------------------------- listen


@click.command("listen")
@click.argument("what", type=click.Choice(["events", "results"]))
@click.option(
    "--save",
    "save_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="results: save each document under DIR.",
)
@click.option(
    "--store",
    "save_to_store",
    is_flag=True,
    help="results: save each document to the profile's results_store.",
)
@click.option(
    "--template",
    default="{orderLocalId}.pdf",
    show_default=True,
    help="File-name template for saved documents (tokens: see docs/workflow.md).",
)
@click.option("--count", type=int, help="Stop after handling this many messages.")
@click.option("--timeout", type=float, help="Stop after this many seconds.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print each message as one line of JSON (NDJSON)."
)
@click.option(
    "--dedupe",
    metavar="PATH|URL",
    help="Remember handled ids: a SQLite file, or an object-store URL shared by hosts "
    "(s3://bucket/dedupe/).",
)
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    help="Serve /healthz and /readyz over HTTP on this port (docs/operations.md).",
)
@click.option(
    "--health-host",
    help="Address the health port binds (default 127.0.0.1; 0.0.0.0 for probes from outside).",
)
@click.option(
    "--metrics",
    is_flag=True,
    help="Serve Prometheus metrics at /metrics on the health port (iris-cloud[metrics]).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: stderr as one JSON object a line (role, message id, kind, delivery count, "
    "outcome); -v for a line per message.",
)
@_profile_options
@_errors
def listen_command(
    what: str,
    save_dir: Path | None,
    save_to_store: bool,
    template: str,
    count: int | None,
    timeout: float | None,
    as_json: bool,
    dedupe: str | None,
    health_port: int | None,
    health_host: str | None,
    metrics: bool,
    log_format: str,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """Receive events or results and print them; with --save, save result documents.

    Runs until Ctrl-C / SIGTERM (finishing and settling in-flight messages),
    --count messages or --timeout seconds. Messages that do not parse go to
    the dead-letter queue with the failing field paths as the reason. Exits 1
    when a handler failed during the run (e.g. a document could not be
    saved). --json prints one JSON document per line (NDJSON), one per
    message as it arrives. --health-port serves liveness and readiness probes;
    under systemd (NOTIFY_SOCKET set) it tells systemd READY=1, STOPPING=1 and
    WATCHDOG=1 (contrib/systemd/iris-cloud-listen.service).
    """
    from iris_cloud.consumer import Consumer, Context, IrisApp
    from iris_cloud.model import Event, OrderResult, shown_kind
    from iris_cloud.tempfiles import remove_stale_temp_files
    from iris_cloud.workflows.results import check_template, save_result

    if (save_dir or save_to_store) and what != "results":
        raise click.UsageError("--save/--store apply to 'listen results'")
    check_template(template)
    if save_dir is not None:
        _require_writable(save_dir)
        # What a save killed mid-write left behind (never a save in progress).
        remove_stale_temp_files(save_dir)
    profile = _load(profile_name, config_file)
    results_store = profile.open_store("results_store") if save_to_store else None
    app = IrisApp()

    @app.on(Event)
    def on_event(event: Event, ctx: Context) -> None:
        if as_json:
            click.echo(event.to_json())
            return
        ok = {True: "[green]ok[/]", False: "[red]failed[/]", None: ""}[event.success]
        # Every field is the sender's: plain text, escaped, capped.
        console.print(
            markup(
                "{} order={} iris={} " + ok + " {}",
                f"{event.result_object_type:<24}",
                event.order_local_id or "-",
                event.iris_order_id or "-",
                event.error_message or "",
            )
        )

    @app.on(OrderResult)
    def on_result(result: OrderResult, ctx: Context) -> None:
        saved = None
        if save_dir is not None:
            saved = save_result(result, save_dir, template)
        elif results_store is not None:
            saved = save_result(result, results_store, template)
        if saved:
            ctx.result_saved()
        if as_json:
            click.echo(result.to_json())
            return
        local_id = result.order.local_id if result.order else "-"
        console.print(
            markup(
                "OrderResult {}  order={}{}",
                result.result_code or "-",
                local_id,
                f"  saved {saved}" if saved else "  (no document)" if save_dir else "",
            )
        )

    @app.fallback
    def other(message: Any, ctx: Context) -> None:
        console.print(
            markup(
                "{} (not an {}) message_id={}",
                shown_kind(ctx.kind),
                what[:-1],
                ctx.message.message_id,
            )
        )

    say = _status_printer(log_format)
    service: dict[str, Any] = {}
    if log_format == "json":
        from iris_cloud.jsonlogs import DeliveryLog

        service["observers"] = [DeliveryLog()]
    if health_port is not None:
        service["health_port"] = health_port
    if health_host is not None:
        service["health_host"] = health_host
    if os.environ.get("NOTIFY_SOCKET"):
        service["systemd_notify"] = True
    if metrics:
        if health_port is None and profile.consumer.health_port is None:
            raise click.UsageError("--metrics is served on the health port: add --health-port")
        service["metrics"] = True
    consumer = Consumer.from_profile(app, profile, roles=(what,), dedupe=dedupe, **service)
    try:
        if consumer.health is not None:
            url = consumer.health.url
            also = f", metrics on {url}/metrics" if consumer.metrics else ""
            say(f"health checks on {url}/healthz and /readyz{also}")
        if count is None and timeout is None:
            say(f"listening on {what} (Ctrl-C to stop)")
            consumer.run()
        else:
            consumer.run_until(
                (lambda s: s.handled + s.dead_lettered >= count) if count else None,
                timeout=timeout,
            )
    finally:
        consumer.close()
        if results_store is not None:
            results_store.close()
    stats = consumer.snapshot()
    say(
        f"handled {stats.handled}, dead-lettered {stats.dead_lettered}, "
        f"retried {stats.retried}, duplicates {stats.duplicates}"
    )
    # Invalid messages (poison) are the sender's fault and do not fail the run;
    # a handler that failed (retried, or dead-lettered after its last try) does.
    failures = stats.retried + stats.dead_lettered - stats.poison
    if failures:
        say(f"handlers failed {failures} time(s): see the log")
        raise SystemExit(1)


def _status_printer(log_format: str) -> Callable[[str], None]:
    """Print status lines to stderr: as text, or as JSON lines among the JSON logs."""
    if log_format != "json":
        return lambda text: err_console.print(text, markup=False, highlight=False)
    import logging

    from iris_cloud.jsonlogs import use_json_logs

    formatter = use_json_logs()

    def say(text: str) -> None:
        record = logging.LogRecord("iris_cloud.cli", logging.INFO, __file__, 0, text, None, None)
        click.echo(formatter.format(record), err=True)

    return say


def _require_writable(directory: Path) -> None:
    """Fail at start, not on the first result, when ``--save`` cannot write to ``directory``."""
    import tempfile

    from iris_cloud.private import private_dir

    try:
        private_dir(directory)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise click.BadParameter(
            f"{directory} is not a writable directory ({exc.strerror or type(exc).__name__})",
            param_hint="--save",
        ) from None


# ------------------------------------------------------------------- grade


def _findings(values: tuple[str, ...], eye: str) -> list[dict[str, str]]:
    out = []
    for value in values:
        finding, sep, result = value.partition("=")
        if not finding.strip():
            raise click.BadParameter(f"{value!r}: expected FINDING=RESULT", param_hint=f"--{eye}")
        item = {"Finding": finding.strip()}
        if sep:
            item["Result"] = result.strip()
        out.append(item)
    return out


@click.command("grade")
@click.argument("local_id", required=False)
@click.option("--od", multiple=True, metavar="FINDING=RESULT", help="Right-eye finding.")
@click.option("--os", "os_", multiple=True, metavar="FINDING=RESULT", help="Left-eye finding.")
@click.option("--od-ungradable", metavar="REASON", help="Right eye is ungradable, for REASON.")
@click.option("--os-ungradable", metavar="REASON", help="Left eye is ungradable, for REASON.")
@click.option("--site", "site_local_id", help="Site.LocalId.")
@click.option(
    "--file",
    "grading_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this GradingSubmission JSON instead.",
)
@_profile_options
@_errors
def grade_command(
    local_id: str | None,
    od: tuple[str, ...],
    os_: tuple[str, ...],
    od_ungradable: str | None,
    os_ungradable: str | None,
    site_local_id: str | None,
    grading_file: Path | None,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """Send a GradingSubmission for LOCAL_ID (test environments).

    Example: iris-cloud grade ORD-1 --od "Diabetic Retinopathy=Mild" --os
    "Diabetic Retinopathy=None". An eye without findings is gradable with no
    pathology unless --od-ungradable/--os-ungradable is given.
    """
    from iris_cloud.client import IrisClient

    if grading_file is None and not local_id:
        raise click.UsageError("give LOCAL_ID or --file")
    with IrisClient(_load(profile_name, config_file)) as iris:
        if grading_file is not None:
            sent = iris.submit_grading(_read_json(grading_file))
        else:
            assert local_id is not None
            eyes: dict[str, dict[str, Any]] = {}
            for key, values, reason in (("OD", od, od_ungradable), ("OS", os_, os_ungradable)):
                if reason:
                    eyes[key] = {"Gradable": False, "UngradableReasons": [reason]}
                else:
                    eyes[key] = {"Gradable": True, "Findings": _findings(values, key.lower())}
            sent = iris.submit_grading(
                local_id=local_id, od=eyes["OD"], os=eyes["OS"], site_local_id=site_local_id
            )
    console.print(
        markup("grading sent for [bold]{}[/] (message id {})", sent.correlation_id, sent.message_id)
    )


# ------------------------------------------------------------------- check


VERIFIED, REFUSED, UNVERIFIED = "verified", "refused", "unverified"
"""What ``check`` found out about a right; anything else is ``error: CLASS``."""

_NEEDED = {
    "send": ("send",),
    "receive": ("receive",),
    "write": ("write",),
    "read": ("read",),
    "readwrite": ("read", "write"),
}


@dataclass
class EndpointCheck:
    """What the credentials of one endpoint may do: right -> verified / refused / unverified."""

    role: str
    url: str
    direction: str
    rights: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def needed(self) -> tuple[str, ...]:
        """The rights this side of the exchange needs on the endpoint."""
        return _NEEDED.get(self.direction, ())

    def ok(self, allow_unverified: bool = False) -> bool:
        """Whether every needed right was verified (or, if allowed, left unverified)."""
        accepted = (VERIFIED, UNVERIFIED) if allow_unverified else (VERIFIED,)
        return all(self.rights.get(r) in accepted for r in self.needed)


def _attempt(call: Callable[[], Any], check: EndpointCheck, right: str) -> Any:
    try:
        result = call()
    except PermissionDenied as exc:
        check.rights[right] = REFUSED
        if isinstance(exc, CredentialsRejected):
            _rejected(check)
        return None
    except IrisCloudError as exc:
        check.rights[right] = f"error: {type(exc).__name__}"
        return None
    check.rights[right] = VERIFIED
    return result


def _rejected(check: EndpointCheck) -> None:
    note = "the service did not accept the credentials (wrong key or secret, expired token)"
    if note not in check.notes:
        check.notes.append(note)


def _verify(broker: MessageBroker, check: EndpointCheck, right: str) -> None:
    if _attempt(lambda: broker.verify(right), check, right) is False:
        check.rights[right] = UNVERIFIED


def _check_receive(broker: MessageBroker, check: EndpointCheck, receive_probe: bool) -> None:
    if not receive_probe or broker.capabilities.peek:
        _verify(broker, check, "receive")
        if check.rights["receive"] == UNVERIFIED:
            check.notes.append(
                "the service cannot confirm receive without taking a message; "
                "--receive-probe takes one and gives it back"
            )
        return
    got = _attempt(lambda: broker.receive(max_messages=1, wait=0), check, "receive")
    for msg in got or []:
        broker.abandon(msg)
        check.notes.append("received 1 message and gave it back (its delivery count rose by 1)")


def _check_broker(
    profile: Profile, role: str, check: EndpointCheck, send_probe: bool, receive_probe: bool
) -> None:
    from iris_cloud.ports import Message

    with profile.open_broker(role) as broker:
        _check_receive(broker, check, receive_probe)
        if not send_probe:
            _verify(broker, check, "send")
            if check.rights["send"] == UNVERIFIED:
                check.notes.append(
                    "the service cannot confirm send without sending; --send-probe sends one"
                )
            return
        probe_id = f"iris-cloud-probe-{uuid.uuid4().hex}"
        probe = Message(
            body=json.dumps({"IrisCloudProbe": probe_id}).encode(),
            message_id=probe_id,
            subject=PROBE_SUBJECT,
            properties={"IrisCloudProbe": "1"},
        )
        if _attempt(lambda: broker.send(probe), check, "send") is None:
            return
        if check.rights.get("receive") != VERIFIED:
            check.notes.append(f"probe message {probe_id} left in the queue")
            return
        # Take our probe back; anything else goes back untouched.
        for _ in range(5):
            for msg in broker.receive(max_messages=10, wait=1.0):
                if msg.message_id == probe_id:
                    broker.complete(msg)
                    check.notes.append("probe sent and removed")
                    return
                broker.abandon(msg)
        check.notes.append(f"probe message {probe_id} not found again; it may be left")


def _check_store(profile: Profile, role: str, check: EndpointCheck, write_probe: bool) -> None:
    with profile.open_store(role) as store:
        _attempt(lambda: next(iter(store.list(PROBE_PREFIX)), None), check, "list")
        probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}.txt"
        wrote = False
        if write_probe:
            wrote = (
                _attempt(
                    lambda: store.put(probe, b"iris-cloud check probe", content_type="text/plain"),
                    check,
                    "write",
                )
                is not None
            )
        else:
            check.rights["write"] = UNVERIFIED
        if wrote:
            _attempt(lambda: store.get(probe), check, "read")
            _attempt(lambda: store.delete(probe), check, "delete")
            if check.rights.get("delete") != VERIFIED:
                check.notes.append(f"probe object {probe} left (no delete right)")
        else:

            def read_absent() -> None:
                # Reading a name that cannot exist needs read rights but changes nothing.
                with contextlib.suppress(NotFound):
                    store.info(f"{PROBE_PREFIX}{uuid.uuid4().hex}-absent")

            _attempt(read_absent, check, "read")
            check.rights["delete"] = UNVERIFIED


def check_profile(
    profile: Profile,
    *,
    send_probe: bool = False,
    write_probe: bool = True,
    receive_probe: bool = False,
) -> list[EndpointCheck]:
    """Connect to every endpoint of ``profile`` and find out what its credentials may do.

    Brokers: send and receive by :meth:`MessageBroker.verify` (nothing is
    sent or taken); where the service cannot tell, receive is tried only with
    ``receive_probe`` (one message is received and given back at once, which
    counts a delivery) and send only with ``send_probe`` (the probe is taken
    back where receiving is allowed).
    Stores: list, write a probe object (unless ``write_probe`` is false),
    read and delete only that probe.
    """
    checks = []
    for role in profile.roles():
        endpoint = profile.endpoint(role)
        check = EndpointCheck(role, mask_url(endpoint.url), profile.direction(role))
        try:
            if ROLES[role].kind == "broker":
                _check_broker(profile, role, check, send_probe, receive_probe)
            else:
                _check_store(profile, role, check, write_probe)
        except CredentialsRejected:
            check.rights.update(dict.fromkeys(check.needed, REFUSED))
            _rejected(check)
        except IrisCloudError as exc:
            check.notes.append(f"cannot open: {type(exc).__name__}: {exc}")
        # Library messages may quote an endpoint URL or key as given.
        check.notes = [endpoint.redact(note) for note in check.notes]
        checks.append(check)
    return checks


@click.command("check")
@click.option(
    "--send-probe",
    is_flag=True,
    help="Also send a probe message to each queue (taken back where receiving is allowed).",
)
@click.option(
    "--receive-probe",
    is_flag=True,
    help="Where the service cannot peek (SQS, Pub/Sub), test receive by taking one message "
    "and giving it back at once; this counts a delivery on it.",
)
@click.option("--no-write", is_flag=True, help="Do not write probe objects to stores.")
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Exit 0 when a needed right could not be verified (only a refused one fails).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_profile_options
@_errors
def check_command(
    send_probe: bool,
    receive_probe: bool,
    no_write: bool,
    allow_unverified: bool,
    as_json: bool,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """Report, per endpoint of the profile, what the credentials may do.

    Rights: send, receive (brokers); list, write, read, delete (stores), each
    verified, refused or unverified (the service cannot tell without a side
    effect that was not asked for). Nothing that is not the check's own is
    changed: rights are verified by calls that authenticate and then change
    nothing (a peek, a permissions query, a request the service refuses after
    checking the right); probe objects are written under .iris-cloud-check/
    and deleted when allowed; a message is sent or taken only with
    --send-probe / --receive-probe. Exits 1 unless every right this side
    needs (e.g. send on orders) is verified, or with --allow-unverified
    not refused.
    """
    profile = _load(profile_name, config_file)
    checks = check_profile(
        profile, send_probe=send_probe, write_probe=not no_write, receive_probe=receive_probe
    )
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "role": c.role,
                        "url": c.url,
                        "direction": c.direction,
                        "needs": list(c.needed),
                        "rights": c.rights,
                        "notes": c.notes,
                        "ok": c.ok(allow_unverified),
                    }
                    for c in checks
                ],
                indent=2,
            )
        )
    else:
        table = Table(title=f"profile {profile.name!r} ({profile.side} side)")
        rights = ("send", "receive", "list", "write", "read", "delete")
        table.add_column("role", no_wrap=True)
        table.add_column("needs", no_wrap=True)
        for r in rights:
            table.add_column(r, no_wrap=True, justify="center")
        shown = {VERIFIED: "[green]yes[/]", REFUSED: "[red]no[/]", UNVERIFIED: "[yellow]?[/]"}
        for c in checks:
            cells = [
                (markup(shown[v]) if v in shown else markup("[yellow]{}[/]", v))
                if (v := c.rights.get(r))
                else ""
                for r in rights
            ]
            good = c.ok(allow_unverified)
            needs = plain(c.direction) if good else markup("[red]{}[/]", c.direction)
            table.add_row(c.role, needs, *cells)
        console.print(table)
        console.print(
            markup("[dim]yes = verified, no = refused, ? = unverified (see the notes)[/]")
        )
        for c in checks:
            console.print(markup("[bold]{}[/]: {}", c.role, c.url), soft_wrap=True)
            for note in c.notes:
                console.print(f"  {note}", soft_wrap=True)
    if not all(c.ok(allow_unverified) for c in checks):
        raise SystemExit(1)


# ------------------------------------------------------------------- config


@click.group("config")
def config_group() -> None:
    """Inspect profiles (secrets are always masked)."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_profile_options
@_errors
def config_show(as_json: bool, profile_name: str | None, config_file: Path | None) -> None:
    """Show the resolved profile: endpoints, options, settings; secrets masked."""
    profile = _load(profile_name, config_file)
    data = profile.masked()
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    console.print(
        markup("profile [bold]{}[/] ({} side) from {}", profile.name, profile.side, profile.source)
    )
    console.print(f"client_guid: {profile.client_guid or '-'}", highlight=False)
    table = Table()
    table.add_column("role", no_wrap=True)
    table.add_column("does", no_wrap=True)
    table.add_column("url", overflow="fold")
    table.add_column("options", overflow="fold")
    for role in ROLES:
        ep = data[role]
        if ep is None:
            table.add_row(role, profile.direction(role), markup("[dim]not set[/]"), "")
            continue
        opts = ", ".join(f"{k}={v}" for k, v in ep.items() if k != "url")
        table.add_row(role, profile.direction(role), plain(ep["url"]), plain(opts), style=None)
    console.print(table)
    console.print(f"consumer: {data['consumer']}")
    console.print(f"client: {data['client']}")


@config_group.command("list")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file to read instead of ./iris-cloud.toml.",
)
@_errors
def config_list(config_file: Path | None) -> None:
    """List the profile names the config files define."""
    from iris_cloud.config import config_files

    for path in config_files(config_file):
        err_console.print(markup("[dim]{}[/]", path))
    for name in profile_names(config_file):
        click.echo(name)


def register(cli: click.Group) -> None:
    """Add the workflow commands to ``cli``."""
    for command in (
        submit_command,
        cancel_command,
        resend_command,
        upload_command,
        listen_command,
        grade_command,
        check_command,
        config_group,
    ):
        cli.add_command(command)
